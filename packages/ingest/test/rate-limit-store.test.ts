import * as RateLimiter from "@effect/experimental/RateLimiter"
import { describe, expect, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import { countedAddress } from "../src/auth/AuthLimits.js"
import * as RateLimitStore from "../src/limits/RateLimitStore.js"

const limiterOn = Effect.gen(function*() {
  const { size, store } = yield* RateLimitStore.make
  const limiter = yield* Effect.provideService(RateLimiter.make, RateLimiter.RateLimiterStore, store)
  return { limiter, size }
})

describe("the rate limits' in-memory store", () => {
  it.scoped("limits as the library's store does, and forgets a key once its counter is back where a new one starts", () =>
    Effect.gen(function*() {
      const { limiter, size } = yield* limiterOn
      const bucket = (key: string) => limiter.consume({ algorithm: "token-bucket", key, limit: 3, window: "1 minute" })
      const failures = (key: string, tokens: number) =>
        limiter.consume({ algorithm: "fixed-window", key, limit: 2, window: "15 minutes", tokens })
      // What an attacker's many addresses and usernames leave behind.
      for (let i = 0; i < 1_000; i++) yield* bucket(`address ${i}`)
      for (let i = 0; i < 1_000; i++) yield* failures(`user ${i}`, 1)
      // Asking without taking (a login's lockout check) keeps nothing.
      for (let i = 0; i < 1_000; i++) yield* failures(`asked ${i}`, 0)
      expect(yield* size).toBe(2_000)

      // The limits hold as before.
      yield* bucket("busy").pipe(Effect.repeatN(2))
      expect(yield* Effect.flip(bucket("busy"))).toMatchObject({ _tag: "RateLimiterError", reason: "Exceeded" })
      yield* failures("locked", 2)
      expect((yield* failures("locked", 0)).remaining).toBe(0)

      // A minute on, the sweep has dropped the buckets refilled and the windows over; the lockout holds.
      yield* TestClock.adjust("1 minute")
      expect(yield* size).toBe(1_000 + 1)
      expect((yield* failures("locked", 0)).remaining).toBe(0)
      yield* TestClock.adjust("30 minutes")
      expect(yield* size).toBe(0)
      expect((yield* failures("locked", 0)).remaining).toBe(2)
    }))

  it("counts an IPv6 client by its /64 and an IPv4-mapped address as IPv4", () => {
    expect(countedAddress("2001:db8:1:2:3:4:5:6")).toBe("2001:db8:1:2::/64")
    expect(countedAddress("2001:DB8:1:2::9")).toBe("2001:db8:1:2::/64")
    expect(countedAddress("::ffff:10.1.2.3")).toBe("10.1.2.3")
    expect(countedAddress("192.0.2.1")).toBe("192.0.2.1")
    expect(countedAddress("unknown")).toBe("unknown")
  })
})
