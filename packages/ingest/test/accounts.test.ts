import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, layer } from "@effect/vitest"
import { haPayload } from "@telemetry/domain/testing"
import { count, databases, nextClaim, storeOn } from "@telemetry/infra/testing"
import { freePort } from "@telemetry/testbed/FreePort"
import * as PostgresDatabase from "@telemetry/testbed/PostgresDatabase"
import { ConfigProvider, Effect, Layer, Option } from "effect"
import { decodeJwt } from "jose"
import { connect } from "node:net"
import { Accounts, type NewAccount } from "../src/auth/Accounts.js"
import * as SqlAccounts from "../src/auth/SqlAccounts.js"
import { Tokens } from "../src/auth/Tokens.js"
import { authEnv, bearer, claimsOf, signToken } from "./support/auth.js"
import { type Answer, send } from "./support/client.js"
import { serverOn } from "./support/server.js"

const env = { AUTH_TOKEN_TTL: "2 hours", LOGIN_MAX_FAILURES: "3", LOGIN_LOCKOUT_WINDOW: "1 hour" }
const DAY = "start_date=2026-11-20T00:00:00Z&end_date=2026-11-21T00:00:00Z"

const device = (username: string, overrides: Partial<NewAccount> = {}): NewAccount => ({
  kind: "device",
  tenantId: "tenant-h",
  username,
  password: `${username}-password`,
  timeZone: "America/Sao_Paulo",
  ...overrides
})

const added = (account: NewAccount) => Effect.flatMap(Accounts, (accounts) => accounts.add(account))

const ports = await Promise.all(databases.map(() => freePort()))

for (const [i, database] of databases.entries()) {
  describe(`accounts and logins on ${database.name}`, () => {
    const port = ports[i]!
    const base = `http://127.0.0.1:${port}`
    const db = storeOn(database, 1_000)
    const config = Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({ ...authEnv, ...env }))))
    // The server, and beside it the accounts and tokens over the same database and secret, for the tests to look.
    const context = Layer.mergeAll(serverOn(db, port, env), SqlAccounts.layer, Tokens.Default).pipe(
      Layer.provideMerge(db),
      Layer.provide(config)
    )

    /** A login as the client of `localAddress` (every test has its own: failed logins are counted by address). */
    const login = (localAddress: string, username: string, password: string, path = "/api/v1/auth/device/login") =>
      Effect.promise(() => send(`${base}${path}`, { body: { username, password }, localAddress }))
    const refresh = (localAddress: string, headers: Record<string, string>) =>
      Effect.promise(() => send(`${base}/api/v1/auth/refresh`, { method: "POST", headers, localAddress }))
    const bulk = (token: string, equipment: string) =>
      Effect.promise(() => send(`${base}/api/v1/telemetry/bulk`, { body: haPayload(equipment), headers: bearer(token) }))

    /** The issued token's claims, after checking the answer's shape. */
    const issued = (answer: Answer) => {
      expect(answer.status, JSON.stringify(answer.json)).toBe(200)
      expect(answer.json).toEqual({
        access_token: expect.any(String),
        token_type: "Bearer",
        expires_in: 7200,
        expires_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/)
      })
      const claims = decodeJwt(answer.json.access_token)
      expect(new Date(answer.json.expires_at).getTime()).toBe(claims.exp! * 1000)
      expect(claims.exp! - claims.iat!).toBe(7200)
      return claims
    }

    layer(context, { timeout: 120_000, excludeTestServices: true })((it) => {
      it.effect("a device logs in: a device token of its account's tenant and time zone, which ingests as that device", () =>
        Effect.gen(function*() {
          yield* added(device("ha-home"))
          const answer = yield* login("127.0.0.31", "ha-home", "ha-home-password")
          expect(issued(answer)).toMatchObject({
            tenant_id: "tenant-h",
            user_type: "device",
            sub: "ha-home",
            tz: "America/Sao_Paulo"
          })
          // The principal the server takes from that token carries the zone.
          const principal = yield* Effect.flatMap(Tokens, (tokens) => tokens.verify(answer.json.access_token))
          expect(principal).toEqual({ tenantId: "tenant-h", userType: "device", subject: "ha-home", timeZone: "America/Sao_Paulo" })
          const accepted = yield* bulk(answer.json.access_token, "login-eq")
          expect(accepted.status).toBe(202)
          expect(yield* count("ingest_requests", "tenant_id = 'tenant-h' AND device_id = 'ha-home'")).toBe(1)
          // Logging in again (the heartbeat) gives another valid token.
          const again = yield* login("127.0.0.31", "ha-home", "ha-home-password")
          expect(issued(again).sub).toBe("ha-home")
        }))

      it.effect("an account without a zone logs in with DEFAULT_TIMEZONE in its token: its uploads go on while the accounts cannot be read", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* added(device("ha-zoneless", { timeZone: null }))
          const answer = yield* login("127.0.0.37", "ha-zoneless", "ha-zoneless-password")
          expect(issued(answer).tz).toBe("UTC")
          while (Option.isSome(yield* nextClaim)) continue
          yield* sql`ALTER TABLE accounts RENAME TO accounts_away`
          const accepted = yield* bulk(answer.json.access_token, "zoneless-eq").pipe(
            Effect.ensuring(Effect.orDie(sql`ALTER TABLE accounts_away RENAME TO accounts`))
          )
          expect(accepted.status).toBe(202)
          const claim = Option.getOrThrow(yield* nextClaim)
          expect([claim.claim_id, claim.metadata.timeZone]).toEqual([accepted.json.claim_id, "UTC"])
        }))

      it.effect("a device token without a zone (as pnpm token mints one) reads naive times in its account's zone", () =>
        Effect.gen(function*() {
          // The claims of earlier tests first, so that each upload's is the next one.
          while (Option.isSome(yield* nextClaim)) continue
          /** The time zone the claim of an accepted upload carries: how its naive times are read. */
          const zoneOf = (answer: Answer) =>
            Effect.gen(function*() {
              expect(answer.status).toBe(202)
              const claim = Option.getOrThrow(yield* nextClaim)
              expect(claim.claim_id).toBe(answer.json.claim_id)
              return claim.metadata.timeZone
            })
          yield* added(device("ha-no-zone"))
          const token = signToken(claimsOf("device", "tenant-h", "ha-no-zone"))
          expect(yield* zoneOf(yield* bulk(token, "no-zone-eq"))).toBe("America/Sao_Paulo")
          // The same name in another tenant is not that account: the default zone.
          const stranger = signToken(claimsOf("device", "tenant-x", "ha-no-zone"))
          expect(yield* zoneOf(yield* bulk(stranger, "no-zone-eq"))).toBe("UTC")
          // A zone in the token is the one used.
          const zoned = signToken(claimsOf("device", "tenant-h", "ha-no-zone", { tz: "Europe/Lisbon" }))
          expect(yield* zoneOf(yield* bulk(zoned, "no-zone-eq-2"))).toBe("Europe/Lisbon")
        }))

      it.effect("while the accounts cannot be read, a login and a zone-less token's upload get 503 to retry; nothing is queued", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* added(device("ha-outage"))
          while (Option.isSome(yield* nextClaim)) continue
          const unavailable = { error: "database_unavailable", message: "the database is unavailable, retry later" }
          yield* sql`ALTER TABLE accounts RENAME TO accounts_away`
          const [loggingIn, zoneless, zoned] = yield* Effect.all([
            login("127.0.0.36", "ha-outage", "ha-outage-password"),
            bulk(signToken(claimsOf("device", "tenant-h", "ha-outage")), "outage-eq"),
            bulk(signToken(claimsOf("device", "tenant-h", "ha-outage", { tz: "Europe/Lisbon" })), "outage-eq")
          ]).pipe(Effect.ensuring(Effect.orDie(sql`ALTER TABLE accounts_away RENAME TO accounts`)))
          for (const answer of [loggingIn, zoneless]) {
            expect([answer.status, answer.headers["retry-after"], answer.json]).toEqual([503, "5", unavailable])
          }
          // Its zone in the token, the upload needs no account: accepted, and the only claim queued.
          expect(zoned.status).toBe(202)
          expect(Option.getOrThrow(yield* nextClaim).claim_id).toBe(zoned.json.claim_id)
          expect(Option.isNone(yield* nextClaim)).toBe(true)
          // Back, the account logs in.
          expect((yield* login("127.0.0.36", "ha-outage", "ha-outage-password")).status).toBe(200)
        }))

      it.effect("a reader logs in at /api/v1/auth/login and reads its tenant's analytics; the two kinds do not mix", () =>
        Effect.gen(function*() {
          yield* added({ kind: "reader", tenantId: "tenant-h", username: "dashboard", password: "dashboard-pw", timeZone: null })
          const answer = yield* login("127.0.0.32", "dashboard", "dashboard-pw", "/api/v1/auth/login")
          expect(issued(answer)).toMatchObject({ tenant_id: "tenant-h", user_type: "reader", sub: "dashboard" })
          expect(decodeJwt(answer.json.access_token).tz).toBeUndefined()
          const history = yield* Effect.promise(() =>
            send(`${base}/api/v1/analytics/equipment/login-eq/history?period=raw&${DAY}`, {
              headers: bearer(answer.json.access_token)
            })
          )
          expect(history.status).toBe(200)
          expect((yield* bulk(answer.json.access_token, "reader-eq")).status).toBe(403)
          // A reader account is no device, and a device account no reader.
          expect((yield* login("127.0.0.32", "dashboard", "dashboard-pw")).status).toBe(401)
          yield* added(device("ha-kinds"))
          expect((yield* login("127.0.0.33", "ha-kinds", "ha-kinds-password", "/api/v1/auth/login")).status).toBe(401)
        }))

      it.effect("an unknown username and a wrong password get the same 401", () =>
        Effect.gen(function*() {
          yield* added(device("ha-wrong"))
          const unknown = yield* login("127.0.0.34", "nobody-here", "ha-wrong-password")
          const wrong = yield* login("127.0.0.34", "ha-wrong", "not-the-password")
          expect([unknown.status, unknown.json]).toEqual([401, { error: "invalid_credentials", message: "invalid username or password" }])
          expect([wrong.status, wrong.json]).toEqual([unknown.status, unknown.json])
          expect(wrong.headers["www-authenticate"]).toBe(unknown.headers["www-authenticate"])
          // A name no account can have (the database cannot hold a NUL) is just as unknown, not a database failure.
          const unholdable = yield* login("127.0.0.37", "ha-wrong\u0000", "ha-wrong-password")
          expect([unholdable.status, unholdable.json]).toEqual([unknown.status, unknown.json])
        }))

      it.effect("a login body that is not JSON gets 400, one over 64 KiB 413, and the answer never quotes a password, nor all of a long username", () =>
        Effect.gen(function*() {
          const raw = (text: string, headers: Record<string, string> = {}) =>
            Effect.promise(() => send(`${base}/api/v1/auth/device/login`, { text, headers, localAddress: "127.0.0.40" }))
          for (const text of ["username=ha&password=SECRET-1", "{not json", "{\"username\":\"ha\",\"password\":\"SECRET-1\""]) {
            const answer = yield* raw(text)
            expect([answer.status, answer.json]).toEqual([400, { error: "invalid_payload", message: "the body is not valid JSON" }])
          }
          const huge = yield* raw(JSON.stringify({ username: "ha", password: "SECRET-2".repeat(10_000) }))
          expect([huge.status, huge.json]).toEqual([413, { error: "payload_too_large", message: "the body is over 65536 bytes" }])
          const long = yield* raw(JSON.stringify({ username: "ha", password: "SECRET-3".repeat(200) }))
          expect(long.status).toBe(400)
          expect(long.json).toMatchObject({ error: "invalid_parameter", path: "password" })
          expect(JSON.stringify(long.json)).not.toContain("SECRET")
          // A username over its bound is quoted in part only: the answer stays small whatever was sent.
          const name = yield* raw(JSON.stringify({ username: "u".repeat(60_000), password: "SECRET-5" }))
          expect(name.status).toBe(400)
          expect(name.json).toMatchObject({ error: "invalid_parameter", path: "username", message: expect.stringMatching(/^username: .*…$/) })
          expect(name.json.message.length).toBeLessThanOrEqual(300)
          // Sent as text: refused before it is read, without quoting it.
          const text = yield* raw(JSON.stringify({ username: "ha", password: "SECRET-4" }), { "content-type": "text/plain" })
          expect([text.status, text.json]).toEqual([415, {
            error: "unsupported_media_type",
            message: "Content-Type must be application/json (UTF-8, as JSON is), got \"text/plain\""
          }])
        }))

      it.effect("a disabled account's right password gets 403 with a message; a wrong one the usual 401", () =>
        Effect.gen(function*() {
          yield* added(device("ha-disabled"))
          const accounts = yield* Accounts
          yield* accounts.setDisabled("device", "ha-disabled", true)
          const refused = yield* login("127.0.0.35", "ha-disabled", "ha-disabled-password")
          expect([refused.status, refused.json]).toEqual([403, {
            error: "account_disabled",
            message: "the device account \"ha-disabled\" is disabled; ask the administrator to enable it"
          }])
          expect((yield* login("127.0.0.35", "ha-disabled", "wrong-password")).status).toBe(401)
          yield* accounts.setDisabled("device", "ha-disabled", false)
          expect((yield* login("127.0.0.35", "ha-disabled", "ha-disabled-password")).status).toBe(200)
        }))

      it.effect("a changed password takes effect at once, though the old one was just verified (and cached)", () =>
        Effect.gen(function*() {
          yield* added(device("ha-passwd"))
          expect((yield* login("127.0.0.36", "ha-passwd", "ha-passwd-password")).status).toBe(200)
          yield* (yield* Accounts).setPassword("device", "ha-passwd", "a-new-password")
          expect((yield* login("127.0.0.36", "ha-passwd", "ha-passwd-password")).status).toBe(401)
          expect((yield* login("127.0.0.36", "ha-passwd", "a-new-password")).status).toBe(200)
        }))

      it.effect("repeated failures lock the username out (429 with Retry-After), from any address, the right password too", () =>
        Effect.gen(function*() {
          yield* added(device("ha-locked"))
          yield* added(device("ha-neighbour"))
          for (const address of ["127.0.0.41", "127.0.0.42", "127.0.0.43"]) {
            expect((yield* login(address, "ha-locked", "guess")).status).toBe(401)
          }
          const locked = yield* login("127.0.0.44", "ha-locked", "ha-locked-password")
          expect([locked.status, locked.json.error]).toEqual([429, "rate_limited"])
          expect(locked.json.message).toContain("too many failed logins")
          // The window is an hour, started by the first failure.
          expect(Number(locked.headers["retry-after"])).toBeGreaterThan(3000)
          expect(Number(locked.headers["retry-after"])).toBeLessThanOrEqual(3600)
          // Other accounts log in from the same address.
          expect((yield* login("127.0.0.44", "ha-neighbour", "ha-neighbour-password")).status).toBe(200)
        }))

      it.effect("repeated failures from one address lock that address out, whatever username it tries", () =>
        Effect.gen(function*() {
          yield* added(device("ha-victim"))
          for (const username of ["guess-1", "guess-2", "ha-victim"]) {
            expect((yield* login("127.0.0.51", username, "guess")).status).toBe(401)
          }
          const locked = yield* login("127.0.0.51", "ha-victim", "ha-victim-password")
          expect([locked.status, Number(locked.headers["retry-after"]) > 0]).toEqual([429, true])
          expect((yield* login("127.0.0.51", "another-name", "guess")).status).toBe(429)
          // ha-victim had one failure: from elsewhere it logs in.
          expect((yield* login("127.0.0.52", "ha-victim", "ha-victim-password")).status).toBe(200)
        }))

      it.effect("guesses sent at once count as they are tried: of a burst, LOGIN_MAX_FAILURES are tried and the rest refused", () =>
        Effect.gen(function*() {
          yield* added(device("ha-burst"))
          const answers = yield* Effect.forEach(
            Array.from({ length: 12 }, (_, i) => `guess-${i}`),
            (password) => login("127.0.0.55", "ha-burst", password),
            { concurrency: "unbounded" }
          )
          const statuses = answers.map((answer) => answer.status).sort()
          expect(statuses).toEqual([...Array(3).fill(401), ...Array(9).fill(429)])
          expect((yield* login("127.0.0.56", "ha-burst", "ha-burst-password")).status).toBe(429)
        }))

      it.effect("more devices than LOGIN_MAX_FAILURES logging in at once from one address (a NAT) all get in", () =>
        Effect.gen(function*() {
          const usernames = Array.from({ length: 8 }, (_, i) => `ha-nat-${i}`)
          yield* Effect.forEach(usernames, (username) => added(device(username)))
          const answers = yield* Effect.forEach(
            usernames,
            (username) => login("127.0.0.57", username, `${username}-password`),
            { concurrency: "unbounded" }
          )
          expect(answers.map((answer) => answer.status)).toEqual(Array(8).fill(200))
        }))

      it.effect("a device that logged in from an address still logs in there while its username is locked out elsewhere", () =>
        Effect.gen(function*() {
          yield* added(device("ha-known"))
          expect((yield* login("127.0.0.91", "ha-known", "ha-known-password")).status).toBe(200)
          // Someone who knows the username fails from elsewhere until it is locked out.
          for (let i = 0; i < 3; i++) expect((yield* login("127.0.0.92", "ha-known", "guess")).status).toBe(401)
          expect((yield* login("127.0.0.92", "ha-known", "guess")).status).toBe(429)
          expect((yield* login("127.0.0.91", "ha-known", "ha-known-password")).status).toBe(200)
          // That address, and any other the account never logged in from, stay locked out, the right password too.
          for (const address of ["127.0.0.92", "127.0.0.93"]) {
            const locked = yield* login(address, "ha-known", "ha-known-password")
            expect([locked.status, locked.json.message]).toEqual([429, expect.stringContaining("too many failed logins")])
          }
        }))

      it.effect("a known account and address are locked out by their own failures, not by the username's elsewhere", () =>
        Effect.gen(function*() {
          yield* added(device("ha-known-fails"))
          expect((yield* login("127.0.0.94", "ha-known-fails", "ha-known-fails-password")).status).toBe(200)
          for (const address of ["127.0.0.94", "127.0.0.94", "127.0.0.95"]) {
            expect((yield* login(address, "ha-known-fails", "guess")).status).toBe(401)
          }
          expect((yield* login("127.0.0.96", "ha-known-fails", "ha-known-fails-password")).status).toBe(429)
          // Two of the username's three failures were from the known address: it still logs in there, until a third.
          expect((yield* login("127.0.0.94", "ha-known-fails", "ha-known-fails-password")).status).toBe(200)
          expect((yield* login("127.0.0.94", "ha-known-fails", "guess")).status).toBe(401)
          const locked = yield* login("127.0.0.94", "ha-known-fails", "ha-known-fails-password")
          expect([locked.status, Number(locked.headers["retry-after"]) > 0]).toEqual([429, true])
        }))

      it.effect("an address locked out by others' failures (a shared NAT) still lets the accounts known there log in", () =>
        Effect.gen(function*() {
          yield* added(device("ha-behind-nat"))
          yield* added(device("ha-new-behind-nat"))
          expect((yield* login("127.0.0.97", "ha-behind-nat", "ha-behind-nat-password")).status).toBe(200)
          for (const username of ["misconfigured-1", "misconfigured-2", "misconfigured-3"]) {
            expect((yield* login("127.0.0.97", username, "guess")).status).toBe(401)
          }
          expect((yield* login("127.0.0.97", "misconfigured-4", "guess")).status).toBe(429)
          expect((yield* login("127.0.0.97", "ha-behind-nat", "ha-behind-nat-password")).status).toBe(200)
          // An account that never logged in from there is refused like any other.
          expect((yield* login("127.0.0.97", "ha-new-behind-nat", "ha-new-behind-nat-password")).status).toBe(429)
        }))

      it.effect("a login's body is JSON: a form (as another site's page would post), text or gzip gets 415, and no token", () =>
        Effect.gen(function*() {
          yield* added(device("ha-form"))
          const posted = (contentType: string, text: string, headers: Record<string, string> = {}) =>
            Effect.promise(() =>
              send(`${base}/api/v1/auth/device/login`, { text, headers: { "content-type": contentType, ...headers }, localAddress: "127.0.0.59" })
            )
          const json = JSON.stringify({ username: "ha-form", password: "ha-form-password" })
          for (
            const refused of [
              yield* posted("application/x-www-form-urlencoded", "username=ha-form&password=ha-form-password"),
              yield* posted("text/plain", json),
              yield* posted("application/json; charset=latin1", json),
              yield* posted("application/json", json, { "content-encoding": "gzip" })
            ]
          ) {
            expect([refused.status, refused.json.error]).toEqual([415, "unsupported_media_type"])
            expect(refused.json.access_token).toBeUndefined()
          }
          expect((yield* posted("application/json; charset=utf-8", json)).status).toBe(200)
        }))

      it.effect("answers, tokens and refusals alike, are not to be stored, sniffed or framed", () =>
        Effect.gen(function*() {
          yield* added(device("ha-headers"))
          const answers = [
            yield* login("127.0.0.58", "ha-headers", "ha-headers-password"),
            yield* login("127.0.0.58", "ha-headers", "wrong-password"),
            yield* Effect.promise(() => send(`${base}/api/v1/health`, { method: "GET" }))
          ]
          for (const answer of answers) {
            expect(answer.headers).toMatchObject({ "cache-control": "no-store", "x-content-type-options": "nosniff", "x-frame-options": "DENY" })
          }
          expect(answers.map((answer) => answer.status)).toEqual([200, 401, 200])
        }))

      it.effect("a request Node cannot parse gets the contract's JSON error: headers over the limit 431, malformed HTTP 400, an expectation it cannot meet 417", () =>
        Effect.gen(function*() {
          /** What the server answers `raw`, sent as it is, until it closes the connection. */
          const exchange = (raw: string) =>
            Effect.promise(() =>
              new Promise<string>((resolve, reject) => {
                const socket = connect(port, "127.0.0.1", () => socket.end(raw))
                let answer = ""
                socket.setEncoding("utf8").on("data", (text) => (answer += text)).on("end", () => resolve(answer)).on("error", reject)
              })
            )
          const parts = (answer: string) => {
            const [head, body] = answer.split("\r\n\r\n")
            return { status: head!.split(" ")[1], head: head!.toLowerCase(), json: JSON.parse(body!) }
          }
          const huge = parts(yield* exchange(`GET /api/v1/health HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(20_000)}\r\n\r\n`))
          expect([huge.status, huge.json.error]).toEqual(["431", "headers_too_large"])
          const garbled = parts(yield* exchange("NOT HTTP AT ALL\r\n\r\n"))
          expect([garbled.status, garbled.json]).toEqual(["400", { error: "invalid_request", message: "the request is not valid HTTP/1.1" }])
          const expecting = parts(yield* exchange("GET /api/v1/health HTTP/1.1\r\nhost: x\r\nexpect: foo\r\nconnection: close\r\n\r\n"))
          expect([expecting.status, expecting.json]).toEqual([
            "417",
            { error: "expectation_failed", message: "Expect: foo cannot be met; only 100-continue can" }
          ])
          for (const answer of [huge, garbled, expecting]) {
            expect(answer.head).toContain("content-type: application/json")
            expect(answer.head).toContain("x-content-type-options: nosniff")
          }
        }))

      it.effect("refresh: a valid token gets a fresh one of the same principal; a disabled account's is refused", () =>
        Effect.gen(function*() {
          yield* added(device("ha-refresh"))
          const first = yield* login("127.0.0.61", "ha-refresh", "ha-refresh-password")
          const fresh = yield* refresh("127.0.0.61", bearer(first.json.access_token))
          expect(issued(fresh)).toMatchObject({
            tenant_id: "tenant-h",
            user_type: "device",
            sub: "ha-refresh",
            tz: "America/Sao_Paulo"
          })
          expect((yield* bulk(fresh.json.access_token, "refresh-eq")).status).toBe(202)
          // A token of `pnpm token` (no account) is refreshed as it is.
          const minted = signToken(claimsOf("reader", "tenant-z", "grafana"))
          expect(issued(yield* refresh("127.0.0.61", bearer(minted)))).toMatchObject({
            tenant_id: "tenant-z",
            user_type: "reader",
            sub: "grafana"
          })
          const now = Math.floor(Date.now() / 1000)
          const expired = signToken(claimsOf("device", "tenant-h", "ha-refresh", { iat: now - 7200, exp: now - 10 }))
          const late = yield* refresh("127.0.0.61", bearer(expired))
          expect([late.status, late.json.message]).toEqual([401, "the token has expired"])
          expect((yield* refresh("127.0.0.61", {})).status).toBe(401)
          yield* (yield* Accounts).setDisabled("device", "ha-refresh", true)
          const disabled = yield* refresh("127.0.0.61", bearer(first.json.access_token))
          expect([disabled.status, disabled.json.error]).toEqual([403, "account_disabled"])
        }))

      it.effect("the admin routes take our short-lived admin tokens only, and answer in the contract's shape", () =>
        Effect.gen(function*() {
          const now = Math.floor(Date.now() / 1000)
          const admin = (extra: Record<string, unknown> = {}) => bearer(signToken(claimsOf("device", "*", "cli", { user_type: "admin", ...extra })))
          const accounts = (headers: Record<string, string>, body?: unknown) =>
            Effect.promise(() => send(`${base}/api/v1/admin/accounts${body ? "" : "?kind=device&tenant_id=tenant-a"}`, { headers, body, localAddress: "127.0.0.71" }))
          expect((yield* accounts({})).status).toBe(401)
          const device = yield* accounts(bearer(signToken(claimsOf("device", "tenant-a", "ha"))))
          expect([device.status, device.json.message]).toEqual([403, "only admin tokens (minted by `pnpm device` and `pnpm user`) manage accounts; this is a device token"])
          // Its type is told whatever its age: the admin tokens' 5 minutes are theirs alone.
          const oldDevice = yield* accounts(bearer(signToken(claimsOf("device", "tenant-a", "ha", { iat: now - 600, exp: now + 3600 }))))
          expect([oldDevice.status, oldDevice.json.message]).toEqual([403, device.json.message])
          const old = yield* accounts(admin({ iat: now - 600, exp: now + 60 }))
          expect([old.status, old.json.message]).toEqual([401, "the token has expired"])
          expect((yield* accounts(admin({ iat: undefined }))).status).toBe(401)

          const body = { kind: "device", tenant_id: "tenant-a", username: "ha-admin", password: "admin-made-pw", time_zone: "Asia/Tokyo" }
          const created = yield* accounts(admin(), body)
          expect([created.status, created.json]).toEqual([201, {
            kind: "device",
            tenant_id: "tenant-a",
            username: "ha-admin",
            time_zone: "Asia/Tokyo",
            disabled: false,
            created_at: expect.stringMatching(/^\d{4}-/),
            updated_at: expect.stringMatching(/^\d{4}-/)
          }])
          const taken = yield* accounts(admin(), body)
          expect([taken.status, taken.json]).toEqual([409, { error: "account_exists", message: "a device account named \"ha-admin\" already exists" }])
          const listed = yield* accounts(admin())
          expect([listed.status, listed.json.accounts.map((a: any) => a.username)]).toEqual([200, ["ha-admin"]])
          const missing = yield* Effect.promise(() =>
            send(`${base}/api/v1/admin/accounts/device/nobody/disable`, { method: "POST", headers: admin(), localAddress: "127.0.0.71" })
          )
          expect([missing.status, missing.json]).toEqual([404, { error: "not_found", message: "no device account is named \"nobody\"" }])
          expect((yield* login("127.0.0.71", "ha-admin", "admin-made-pw")).status).toBe(200)
        }))

      it.effect("usernames are unique per kind; listing shows the accounts without their hashes", () =>
        Effect.gen(function*() {
          const accounts = yield* Accounts
          yield* added(device("ha-unique", { tenantId: "tenant-u" }))
          const again = yield* Effect.flip(added(device("ha-unique", { tenantId: "tenant-v" })))
          expect(again.message).toBe("a device account named \"ha-unique\" already exists")
          yield* added({ kind: "reader", tenantId: "tenant-u", username: "ha-unique", password: "reader-pw-1", timeZone: null })
          const listed = yield* accounts.list("device", Option.some("tenant-u"))
          expect(listed).toEqual([{
            kind: "device",
            tenantId: "tenant-u",
            username: "ha-unique",
            timeZone: "America/Sao_Paulo",
            disabled: false,
            createdAt: expect.any(Date),
            updatedAt: expect.any(Date)
          }])
        }))

      // Last: the pool it leaves has its connections cut. PostgreSQL only: the embedded database is in-process.
      it.effect.skipIf(database.edition !== "none")("while the database is down, the admin, analytics and equipments routes answer 503 to retry, not 500", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const [{ name }] = (yield* sql<{ name: string }>`SELECT current_database() AS name`) as [{ name: string }]
          const outage = PostgresDatabase.outage(name)
          const admin = bearer(signToken(claimsOf("device", "*", "cli", { user_type: "admin" })))
          const reader = bearer(signToken(claimsOf("reader", "tenant-h", "outage-reader")))
          const get = (path: string, headers: Record<string, string>) =>
            Effect.promise(() => send(`${base}${path}`, { headers, localAddress: "127.0.0.81" }))
          const routes = [
            get("/api/v1/admin/accounts?kind=device", admin),
            get(`/api/v1/analytics/equipment/login-eq/history?${DAY}`, reader),
            get("/api/v1/equipments", reader)
          ] as const
          yield* Effect.promise(outage.down)
          const answers = yield* Effect.all(routes).pipe(Effect.ensuring(Effect.promise(outage.up)))
          for (const answer of answers) {
            expect([answer.status, answer.headers["retry-after"], answer.json]).toEqual([
              503,
              "5",
              { error: "database_unavailable", message: "the database is unavailable, retry later" }
            ])
          }
          // Back, they answer.
          expect((yield* Effect.all(routes)).map((answer) => answer.status)).toEqual([200, 200, 200])
        }))
    })
  })
}
