import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Layer, Schema, TestClock } from "effect"
import { randomBytes, scryptSync } from "node:crypto"
import { Password, Username } from "../src/auth/Accounts.js"
import { keyOf } from "../src/auth/AuthLimits.js"
import { CredentialCache } from "../src/auth/CredentialCache.js"
import { Passwords } from "../src/auth/Passwords.js"

describe("password hashes", () => {
  it.effect("are salted scrypt with their parameters in the string, and verify only their password", () =>
    Effect.gen(function*() {
      const passwords = yield* Passwords
      const first = yield* passwords.hash("correct horse battery")
      const second = yield* passwords.hash("correct horse battery")
      expect(first).toMatch(/^scrypt\$32768\$8\$1\$[\w-]{22}\$[\w-]{43}$/)
      // A salt of its own each time: equal passwords do not give equal hashes.
      expect(second).not.toBe(first)
      expect(yield* passwords.verify("correct horse battery", first)).toBe(true)
      expect(yield* passwords.verify("correct horse battery", second)).toBe(true)
      expect(yield* passwords.verify("correct horse batterY", first)).toBe(false)
      expect(yield* passwords.verify("", first)).toBe(false)
      // The hash is of the characters, not of how they were typed: é composed or decomposed.
      const accented = yield* passwords.hash("caf\u00e9-au-lait")
      expect(yield* passwords.verify("cafe\u0301-au-lait", accented)).toBe(true)
      // The dummy hash matches nothing a client sends.
      expect(yield* passwords.verify("correct horse battery", yield* passwords.dummy)).toBe(false)
    }).pipe(Effect.provide(Passwords.Default)))

  it.effect("hashes made with other parameters still verify, as their string says; unreadable ones match nothing", () =>
    Effect.gen(function*() {
      const passwords = yield* Passwords
      const salt = randomBytes(16)
      const key = scryptSync("older password", salt, 32, { N: 2 ** 14, r: 8, p: 2 })
      const older = `scrypt$16384$8$2$${salt.toString("base64url")}$${key.toString("base64url")}`
      expect(yield* passwords.verify("older password", older)).toBe(true)
      expect(yield* passwords.verify("other password", older)).toBe(false)
      for (
        const stored of [
          "",
          "plain text",
          older.replace("scrypt$", "bcrypt$"),
          older.replace("$16384$", "$16000$"), // N must be a power of two
          older.replace("$16384$", "$2097152$"), // a corrupt row must not ask for gigabytes
          older.replace("$8$2$", "$8$0$"),
          `${older}$extra`,
          older.slice(0, older.lastIndexOf("$") + 4) // a truncated hash
        ]
      ) {
        expect([stored, yield* passwords.verify("older password", stored)]).toEqual([stored, false])
      }
    }).pipe(Effect.provide(Passwords.Default)))
})

const cacheWith = (ttl: string) =>
  CredentialCache.Default.pipe(
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["AUTH_LOGIN_CACHE_TTL", ttl]]))))
  )

const device = { kind: "device", username: "ha-home", password: "s3cret-passw0rd" }

describe("the cache of verified credentials", () => {
  it.effect("holds only credentials remembered against the same stored hash", () =>
    Effect.gen(function*() {
      const cache = yield* CredentialCache
      expect(yield* cache.holds(device, "hash-1")).toBe(false)
      yield* cache.remember(device, "hash-1")
      expect(yield* cache.holds(device, "hash-1")).toBe(true)
      expect(yield* cache.holds({ ...device, password: "s3cret-passw0rD" }, "hash-1")).toBe(false)
      expect(yield* cache.holds({ ...device, username: "ha-other" }, "hash-1")).toBe(false)
      expect(yield* cache.holds({ ...device, kind: "reader" }, "hash-1")).toBe(false)
      // The password was changed: the stored hash differs, and the entry is gone for good.
      expect(yield* cache.holds(device, "hash-2")).toBe(false)
      expect(yield* cache.holds(device, "hash-1")).toBe(false)
    }).pipe(Effect.provide(cacheWith("10 minutes"))))

  it.effect("keeps an entry while it is used, and drops it after AUTH_LOGIN_CACHE_TTL unused", () =>
    Effect.gen(function*() {
      const cache = yield* CredentialCache
      yield* cache.remember(device, "hash-1")
      // A heartbeat every two minutes keeps it, however long.
      for (let cycle = 0; cycle < 20; cycle++) {
        yield* TestClock.adjust(Duration.minutes(2))
        expect(yield* cache.holds(device, "hash-1")).toBe(true)
      }
      yield* TestClock.adjust(Duration.minutes(10))
      expect(yield* cache.holds(device, "hash-1")).toBe(false)
    }).pipe(Effect.provide(cacheWith("10 minutes"))))

  it.effect("AUTH_LOGIN_CACHE_TTL=0 turns it off", () =>
    Effect.gen(function*() {
      const cache = yield* CredentialCache
      yield* cache.remember(device, "hash-1")
      expect(yield* cache.holds(device, "hash-1")).toBe(false)
    }).pipe(Effect.provide(cacheWith("0 seconds"))))
})

describe("rate-limit keys", () => {
  it("cannot collide, whatever the names hold, and differ from limit to limit", () => {
    expect(keyOf("reader rate", "a/b", "c")).not.toBe(keyOf("reader rate", "a", "b/c"))
    expect(keyOf("reader rate", "a\",\"b", "c")).not.toBe(keyOf("reader rate", "a", "b\",\"c"))
    expect(keyOf("reader rate", "t", "x")).not.toBe(keyOf("unauthenticated", "t", "x"))
  })
})

describe("account names and passwords", () => {
  it("usernames are letters, digits and . _ @ -, up to 128; passwords have at least 8 characters", () => {
    const username = Schema.is(Username)
    for (const name of ["ha-home", "freezer_1", "shop.kitchen", "ha@casa", "A".repeat(128)]) expect([name, username(name)]).toEqual([name, true])
    for (const name of ["", "-leading", "with space", "a/b", "ação", "A".repeat(129), "x\u0000"]) {
      expect([name, username(name)]).toEqual([name, false])
    }
    expect(Schema.is(Password)("1234567")).toBe(false)
    expect(Schema.is(Password)("12345678")).toBe(true)
  })
})
