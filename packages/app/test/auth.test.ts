import * as SqlClient from "@effect/sql/SqlClient"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it, layer, vi } from "@effect/vitest"
import { ObjectStore } from "@telemetry/domain"
import { haPayload } from "@telemetry/domain/testing"
import { count, inMemoryStore } from "@telemetry/infra/testing"
import {
  authEnv,
  bearer,
  claimsOf,
  deviceToken,
  readerToken,
  signToken,
  TEST_SECRET
} from "@telemetry/ingest/testing/auth"
import { Tokens } from "@telemetry/ingest/auth/Tokens"
import { send } from "@telemetry/ingest/testing/client"
import { serverOn } from "@telemetry/ingest/testing/server"
import { Chunk, ConfigProvider, Effect, Layer, Stream } from "effect"
import { decodeJwt, exportJWK, exportSPKI, generateKeyPair, SignJWT } from "jose"
import { existsSync, readFileSync, statSync } from "node:fs"
import { createServer } from "node:http"
import { join } from "node:path"
import { runCli } from "./support/cli.js"
import { askingFirst } from "./support/uploads.js"
import * as App from "../src/App.js"
import { healthy, started, startPipeline, until } from "./support/process.js"
import { deployment, embeddedStack, eventually, freePort, tempDir } from "./support/stack.js"

const DAY = "start_date=2026-11-20T00:00:00Z&end_date=2026-11-21T00:00:00Z"

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly json: any
}

const call = (base: string, path: string, init: RequestInit = {}) =>
  Effect.promise(async (): Promise<Answer> => {
    const response = await fetch(base + path, init)
    return { status: response.status, headers: response.headers, json: await response.json() }
  })

/** POSTs the Home Assistant payload of `equipment` with `headers` (the token among them). */
const ingest = (base: string, equipment: string, headers: Record<string, string> = {}, path = "/api/v1/telemetry/bulk") =>
  call(base, path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(haPayload(equipment))
  })

/** The raw readings of `equipment` on the payload's day, as the reader of `token` sees them. */
const readings = (base: string, equipment: string, headers: Record<string, string>) =>
  call(base, `/api/v1/analytics/equipment/${equipment}/history?period=raw&${DAY}`, { headers })

/** `pnpm token`'s program as a child process. */
const mintWithCli = (args: ReadonlyArray<string>, env: Record<string, string>) => runCli("token", args, env)

// An identity provider: its RS256 public key served as a JSON Web Key Set (AUTH_JWKS_URL).
const provider = await generateKeyPair("RS256")
const stranger = await generateKeyPair("RS256")
const jwksPort = await freePort()
const jwks = Layer.scopedDiscard(Effect.acquireRelease(
  Effect.promise(async () => {
    const keys = [{ ...(await exportJWK(provider.publicKey)), kid: "idp-1", alg: "RS256", use: "sig" }]
    const server = createServer((_, response) => {
      response.setHeader("content-type", "application/json")
      response.end(JSON.stringify({ keys }))
    })
    await new Promise<void>((resolve) => server.listen(jwksPort, "127.0.0.1", resolve))
    return server
  }),
  (server) => Effect.promise(() => new Promise((resolve) => server.close(resolve)))
))
const ISSUER = "https://idp.example.test"
const AUDIENCE = "telemetry-api"
/** A token of the identity provider, for this API (its issuer and our audience) unless `claims` say otherwise. */
const providerToken = (key: CryptoKey, claims: Record<string, unknown>) =>
  Effect.promise(() =>
    new SignJWT({ iss: ISSUER, aud: AUDIENCE, ...claims }).setProtectedHeader({ alg: "RS256", kid: "idp-1" }).sign(key)
  )

const port = await freePort()
const base = `http://127.0.0.1:${port}`
const providerEnv = { AUTH_JWKS_URL: `http://127.0.0.1:${jwksPort}/jwks.json`, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE }
const stack = Layer.merge(embeddedStack(port, providerEnv), jwks)

const storedObjects = Effect.flatMap(ObjectStore, (storage) =>
  Effect.map(Stream.runCollect(storage.list("telemetry/")), Chunk.toReadonlyArray))

/** What storage and the database hold, to show that a refused request left nothing behind. */
const footprint = Effect.all({ objects: Effect.map(storedObjects, (o) => o.length), claims: count("claim_ledger") })

const ANALYTICS = [
  `/api/v1/analytics/equipment/eq/history?${DAY}`,
  `/api/v1/analytics/sensor/s/history?${DAY}`,
  "/api/v1/analytics/equipment/eq/stats",
  "/api/v1/analytics/home-assistant/eq"
]

describe("bearer tokens on the embedded pipeline", () => {
  layer(stack, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("a device token cannot read analytics; a reader token cannot ingest, and nothing is stored", () =>
      Effect.gen(function*() {
        for (const path of ANALYTICS) {
          const refused = yield* call(base, path, { headers: bearer(deviceToken("tenant-a", "dev-a")) })
          expect([path, refused.status, refused.json.error]).toEqual([path, 403, "forbidden"])
          expect(refused.json.message, path).toContain("reader tokens")
          expect((yield* call(base, path, { headers: bearer(readerToken("tenant-a")) })).status, path).toBe(200)
        }
        const before = yield* footprint
        for (const path of ["/api/v1/telemetry/bulk", "/api/v1/telemetria/bulk"]) {
          const refused = yield* ingest(base, "reader-eq", bearer(readerToken("tenant-a")), path)
          expect([path, refused.status, refused.json]).toEqual([path, 403, {
            error: "forbidden",
            message: "only device tokens may ingest; this is a reader token"
          }])
        }
        expect(yield* footprint).toEqual(before)
      }))

    it.effect("the tenant comes from the token alone: a device writes only its tenant's rows, readers see only theirs", () =>
      Effect.gen(function*() {
        // A tenant named anywhere but in the token is ignored.
        const a = yield* ingest(base, "shared-eq", {
          ...bearer(deviceToken("tenant-a", "dev-a")),
          "x-tenant-id": "tenant-b",
          "x-tenant": "tenant-b",
          tenant: "tenant-b"
        })
        expect(a.status).toBe(202)
        const b = yield* ingest(base, "b-only-eq", bearer(deviceToken("tenant-b", "dev-b")))
        expect(b.status).toBe(202)
        const sql = yield* SqlClient.SqlClient
        yield* eventually(
          count("claim_ledger", `claim_id IN ('${a.json.claim_id}', '${b.json.claim_id}')`),
          (n) => n === 2
        )
        const owners = yield* sql<{ uuid: string; tenant_id: string }>`SELECT uuid, tenant_id FROM equipments
          WHERE uuid IN ('shared-eq', 'b-only-eq') ORDER BY uuid`
        expect(owners).toEqual([{ uuid: "b-only-eq", tenant_id: "tenant-b" }, { uuid: "shared-eq", tenant_id: "tenant-a" }])
        const ledger = yield* sql<{ tenant_id: string }>`SELECT tenant_id FROM claim_ledger WHERE claim_id = ${a.json.claim_id}`
        expect(ledger).toEqual([{ tenant_id: "tenant-a" }])
        // The device is the token's subject: it names the stored object's device.
        const [object] = (yield* storedObjects).filter((o) => o.key === a.json.claim_check)
        expect(object!.metadata).toMatchObject({ "device-id": "dev-a" })

        const sensors = (answer: Answer) => answer.json.data.map((row: any) => row.sensor_uuid)
        const ofA = yield* readings(base, "shared-eq", bearer(readerToken("tenant-a")))
        expect(sensors(ofA)).toEqual(["shared-eq-temp", "shared-eq-door", "shared-eq-temp"])
        expect((yield* readings(base, "shared-eq", bearer(readerToken("tenant-b")))).json.data).toEqual([])
        expect((yield* readings(base, "b-only-eq", bearer(readerToken("tenant-a")))).json.data).toEqual([])
        expect(sensors(yield* readings(base, "b-only-eq", bearer(readerToken("tenant-b"))))).toHaveLength(3)
        const stats = yield* call(base, "/api/v1/analytics/equipment/shared-eq/stats?period=1y", {
          headers: bearer(readerToken("tenant-b"))
        })
        expect([stats.status, stats.json.sensors]).toEqual([200, []])
      }))

    it.effect("a missing, malformed, forged, tampered or expired token gets 401 with WWW-Authenticate, and nothing is stored", () =>
      Effect.gen(function*() {
        const valid = deviceToken("tenant-a", "dev-a")
        const [header, , signature] = valid.split(".")
        const otherTenant = Buffer.from(JSON.stringify(claimsOf("device", "tenant-b", "dev-a"))).toString("base64url")
        const hs512 = yield* Effect.promise(() =>
          new SignJWT(claimsOf("device", "tenant-a", "dev-a")).setProtectedHeader({ alg: "HS512" })
            .sign(new TextEncoder().encode(TEST_SECRET))
        )
        const now = Math.floor(Date.now() / 1000)
        const { exp: _, ...withoutExp } = claimsOf("device", "tenant-a", "dev-a")
        const { tenant_id: __, ...withoutTenant } = claimsOf("device", "tenant-a", "dev-a")
        const publicKeyPem = yield* Effect.promise(() => exportSPKI(provider.publicKey))
        const future = { iat: now + 600, exp: now + 4200 }
        const cases: ReadonlyArray<readonly [string, Record<string, string>, string]> = [
          ["no Authorization header", {}, "missing"],
          ["another scheme", { authorization: "Basic ZGV2LWE6c2VjcmV0" }, "Bearer"],
          ["not a JWT", bearer("not-a-jwt"), "malformed"],
          ["signed with another secret", bearer(signToken(claimsOf("device", "tenant-a", "dev-a"), { secret: "x".repeat(40) })), "signature"],
          ["payload changed to another tenant", bearer(`${header}.${otherTenant}.${signature}`), "signature"],
          ["alg none", bearer(`${Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url")}.${otherTenant}.`), "algorithm"],
          ["HS512 with the right secret", bearer(hs512), "algorithm"],
          ["HS256 keyed with the identity provider's public key", bearer(signToken(claimsOf("device", "tenant-a", "dev-a"), { secret: publicKeyPem })), "signature"],
          ["RS256 from a key not in the JWKS", bearer(yield* providerToken(stranger.privateKey, claimsOf("device", "tenant-a", "dev-a"))), "signature"],
          ["expired", bearer(signToken(claimsOf("device", "tenant-a", "dev-a", { iat: now - 7200, exp: now - 60 }))), "expired"],
          ["without exp", bearer(signToken(withoutExp)), "\"exp\" claim is missing"],
          ["without tenant_id", bearer(signToken(withoutTenant)), "tenant_id"],
          ["an unknown user_type", bearer(signToken(claimsOf("device", "tenant-a", "dev-a", { user_type: "superuser" }))), "user_type"],
          // Signed right, but the database could not store them: the uploads would be answered and never loaded.
          ["a tenant with a NUL", bearer(signToken(claimsOf("device", "tenant-a\0", "dev-a"))), "tenant_id"],
          ["a device with a lone surrogate", bearer(signToken(claimsOf("device", "tenant-a", "dev-\ud800"))), "sub"],
          ["RS256 for another audience", bearer(yield* providerToken(provider.privateKey, claimsOf("device", "tenant-a", "dev-a", { aud: "another-app" }))), "\"aud\" claim"],
          ["RS256 without audience", bearer(yield* providerToken(provider.privateKey, claimsOf("device", "tenant-a", "dev-a", { aud: undefined }))), "\"aud\" claim"],
          ["RS256 of another issuer", bearer(yield* providerToken(provider.privateKey, claimsOf("device", "tenant-a", "dev-a", { iss: "https://evil.test" }))), "\"iss\" claim"],
          ["HS256 issued ten minutes in the future", bearer(signToken(claimsOf("device", "tenant-a", "dev-a", future))), "\"iat\" claim lies in the future"],
          ["RS256 issued ten minutes in the future", bearer(yield* providerToken(provider.privateKey, claimsOf("device", "tenant-a", "dev-a", future))), "\"iat\" claim lies in the future"]
        ]
        const before = yield* footprint
        for (const [name, headers, reason] of cases) {
          for (const answer of [
            yield* ingest(base, "forged-eq", headers),
            yield* readings(base, "shared-eq", headers)
          ]) {
            expect([name, answer.status, answer.json.error]).toEqual([name, 401, "unauthorized"])
            expect(answer.json.message, name).toContain(reason)
            expect(answer.headers.get("www-authenticate"), name).toBe("Bearer")
          }
        }
        expect(yield* footprint).toEqual(before)
        expect(yield* count("equipments", "uuid = 'forged-eq'")).toBe(0)
      }))

    it.effect("a device cannot pose as another: an x-device-id other than the token's device gets 403", () =>
      Effect.gen(function*() {
        const before = yield* footprint
        const posing = yield* ingest(base, "posing-eq", { ...bearer(deviceToken("tenant-a", "dev-a")), "x-device-id": "dev-b" })
        expect([posing.status, posing.json]).toEqual([403, {
          error: "forbidden",
          message: "x-device-id \"dev-b\" is not the token's device \"dev-a\""
        }])
        expect(yield* footprint).toEqual(before)
        const itself = yield* ingest(base, "posing-eq", { ...bearer(deviceToken("tenant-a", "dev-a")), "x-device-id": "dev-a" })
        expect(itself.status).toBe(202)
      }))

    it.effect("RS256 tokens of the identity provider at AUTH_JWKS_URL are accepted, with its issuer and our audience", () =>
      Effect.gen(function*() {
        const token = yield* providerToken(provider.privateKey, claimsOf("reader", "tenant-a", "dashboard"))
        const answer = yield* readings(base, "shared-eq", bearer(token))
        expect([answer.status, answer.json.data.length]).toEqual([200, 3])
        // An audience list that names us is ours too.
        const listed = yield* providerToken(provider.privateKey, claimsOf("reader", "tenant-a", "dashboard", { aud: ["other", AUDIENCE] }))
        expect((yield* readings(base, "shared-eq", bearer(listed))).status).toBe(200)
        // The provider refreshes its own tokens, and grants no admin.
        const refreshed = yield* call(base, "/api/v1/auth/refresh", { method: "POST", headers: bearer(token) })
        expect([refreshed.status, refreshed.json.message]).toEqual([401, "the token is not signed with an accepted algorithm"])
        const admin = yield* providerToken(provider.privateKey, claimsOf("reader", "*", "idp-admin", { user_type: "admin" }))
        expect((yield* call(base, "/api/v1/admin/accounts?kind=device", { headers: bearer(admin) })).status).toBe(401)
      }))

    it.effect("an iat ahead of the clock by less than AUTH_CLOCK_SKEW (60 s) is accepted: clocks differ a little", () =>
      Effect.gen(function*() {
        const now = Math.floor(Date.now() / 1000)
        const ahead = { iat: now + 30, exp: now + 3600 }
        expect((yield* ingest(base, "skew-eq", bearer(signToken(claimsOf("device", "tenant-a", "dev-a", ahead))))).status).toBe(202)
        const token = yield* providerToken(provider.privateKey, claimsOf("reader", "tenant-a", "dashboard", ahead))
        expect((yield* readings(base, "shared-eq", bearer(token))).status).toBe(200)
      }))

    it.effect("admin tokens (account administration only) can neither ingest nor read analytics", () =>
      Effect.gen(function*() {
        const admin = bearer(signToken(claimsOf("device", "tenant-a", "cli", { user_type: "admin" })))
        const refused = yield* ingest(base, "admin-eq", admin)
        expect([refused.status, refused.json.message]).toEqual([403, "only device tokens may ingest; this is an admin token"])
        const read = yield* readings(base, "shared-eq", admin)
        expect([read.status, read.json.message]).toEqual([403, "only reader tokens may read analytics; this is an admin token"])
        expect(yield* count("equipments", "uuid = 'admin-eq'")).toBe(0)
      }))

    it.effect("a client that asks before sending its body (Expect: 100-continue) sends none when refused, and goes on when it may upload", () =>
      Effect.gen(function*() {
        const body = JSON.stringify(haPayload("asks-first"))
        const before = yield* footprint
        const anonymous = yield* askingFirst(base, "/api/v1/telemetry/bulk", body)
        expect(anonymous).toMatchObject({ status: 401, continued: false })
        const reader = yield* askingFirst(base, "/api/v1/telemetry/bulk", body, bearer(readerToken("tenant-a")))
        expect(reader).toMatchObject({ status: 403, continued: false })
        expect(yield* footprint).toEqual(before)

        const device = yield* askingFirst(base, "/api/v1/telemetry/bulk", body, bearer(deviceToken("tenant-a", "asks-first")))
        expect(device).toMatchObject({ status: 202, continued: true, json: { status: "accepted" } })
        // Other routes read their small bodies whole: told to go on at once, as Node does.
        const login = yield* askingFirst(base, "/api/v1/auth/device/login", JSON.stringify({ username: "nobody", password: "wrong" }))
        expect(login).toMatchObject({ status: 401, continued: true, json: { error: "invalid_credentials" } })
      }))

    it.effect("health and the API's documents need no token", () =>
      Effect.gen(function*() {
        for (const path of ["/api/v1/health", "/api/v1/health/detailed", "/api/v1/openapi.json"]) {
          expect([path, (yield* call(base, path)).status]).toEqual([path, 200])
        }
      }))

    it.effect("pnpm token mints device and reader tokens that the server accepts", () =>
      Effect.gen(function*() {
        const mint = (type: string, subject: string, ...more: ReadonlyArray<string>) =>
          Effect.promise(() =>
            mintWithCli(["--type", type, "--tenant", "tenant-c", "--subject", subject, "--expires", "2h", ...more], authEnv)
          )
        // Lisbon keeps UTC in November: the payload's naive times land on the same day either way.
        const device = yield* mint("device", "cli-device", "--timezone", "Europe/Lisbon")
        expect([device.code, device.stderr]).toEqual([0, expect.stringContaining('device token of tenant "tenant-c"')])
        expect(decodeJwt(device.stdout.trim()).tz).toBe("Europe/Lisbon")
        const accepted = yield* ingest(base, "cli-eq", bearer(device.stdout.trim()))
        expect(accepted.status).toBe(202)
        yield* eventually(count("claim_ledger", `claim_id = '${accepted.json.claim_id}'`), (n) => n === 1)
        const reader = yield* mint("reader", "cli-reader")
        const answer = yield* readings(base, "cli-eq", bearer(reader.stdout.trim()))
        expect([answer.status, answer.json.data.length]).toEqual([200, 3])
        // A lifetime that ends before the token is made mints nothing.
        for (const lifetime of ["0s", "-5m"]) {
          const expired = yield* Effect.promise(() =>
            mintWithCli(["--type", "reader", "--tenant", "tenant-c", "--subject", "r", "--expires", lifetime], authEnv)
          )
          expect([expired.code, expired.stdout, expired.stderr]).toEqual([
            1,
            "",
            expect.stringContaining(`expiry "${lifetime}": the token would be expired when minted`)
          ])
        }
      }))
  })
})

describe("secure by default", () => {
  it.scopedLive("on a terminal's pretty logs, an embedded start without AUTH_SECRET prints a device and a reader token of that secret", () =>
    Effect.gen(function*() {
      const secretFile = join(yield* tempDir("auth-pretty"), "auth-secret")
      const printed: Array<string> = []
      const log = vi.spyOn(console, "log").mockImplementation((...args) => void printed.push(args.join(" ")))
      yield* Effect.addFinalizer(() => Effect.sync(() => log.mockRestore()))
      const tokens = yield* Tokens.pipe(
        Effect.provide(App.authentication.pipe(
          Layer.provide(NodeContext.layer),
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromJson({ AUTH_SECRET_FILE: secretFile, LOG_FORMAT: "pretty" })))
        ))
      )
      const [device, reader] = ["DEVICE_TOKEN", "READER_TOKEN"].map((name) => new RegExp(`^\\s*${name}=(\\S+)$`, "m").exec(printed.join("\n"))?.[1])
      expect(yield* tokens.verify(device!)).toMatchObject({ tenantId: "default", userType: "device", subject: "local-device" })
      expect(yield* tokens.verify(reader!)).toMatchObject({ tenantId: "default", userType: "reader" })
      expect(printed.join("\n")).toContain(`signed with the secret in ${secretFile} (generated now)`)
    }))

  it.scopedLive("an embedded start without AUTH_SECRET generates a secret file, logs no token (JSON, for machines), and pnpm token uses it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("auth")
      const port = yield* Effect.promise(freePort)
      const base = `http://127.0.0.1:${port}`
      const secretFile = join(dir, "data", "auth-secret")
      const env = {
        PORT: String(port),
        STORAGE_DIR: join(dir, "objects"),
        EMBEDDED_DB_DIR: join(dir, "pg"),
        AUTH_SECRET_FILE: secretFile
      }
      const pipeline = yield* started(() => startPipeline(env))
      yield* Effect.promise(() => healthy(pipeline, base))
      expect(statSync(secretFile).mode & 0o777).toBe(0o600)
      expect(readFileSync(secretFile, "utf8").trim().length).toBeGreaterThanOrEqual(32)
      // Its logs are JSON (not a terminal), as under Docker: shipped and kept, they hold no token.
      expect(pipeline.output()).toContain(`signed with the secret in ${secretFile} (generated now). Tokens are printed only with LOG_FORMAT=pretty`)
      expect(pipeline.output()).not.toMatch(/eyJ[\w-]+\.[\w-]+\./)
      const cli = (type: string, subject: string) =>
        Effect.promise(() => mintWithCli(["--type", type, "--tenant", "default", "--subject", subject], { AUTH_SECRET_FILE: secretFile }))

      expect((yield* ingest(base, "local-eq", {})).status).toBe(401)
      expect((yield* ingest(base, "local-eq", bearer(deviceToken()))).status).toBe(401)
      const accepted = yield* ingest(base, "local-eq", bearer((yield* cli("device", "local-device")).stdout.trim()))
      expect(accepted.status).toBe(202)
      const reader = bearer((yield* cli("reader", "me")).stdout.trim())
      yield* Effect.promise(() =>
        until(pipeline, async () => (await Effect.runPromise(readings(base, "local-eq", reader))).json.data.length === 3, 30_000, "the readings")
      )
      expect((yield* readings(base, "local-eq", {})).status).toBe(401)

      // The CLI, in the same environment, signs with the same secret, and says nothing of it.
      expect((yield* cli("reader", "me")).stderr).not.toContain("warning")
      // Elsewhere (no secret file there), it says that the secret it generated is no server's.
      const elsewhere = yield* Effect.promise(() =>
        mintWithCli(["--type", "reader", "--tenant", "default", "--subject", "me"], { AUTH_SECRET_FILE: join(dir, "other", "auth-secret") })
      )
      expect(elsewhere.stderr).toContain("a new secret was generated there, which no running server knows")
      expect((yield* readings(base, "local-eq", bearer(elsewhere.stdout.trim()))).status).toBe(401)
    }), { timeout: 120_000 })

  it.scopedLive("with AUTH_JWKS_URL but neither AUTH_ISSUER nor AUTH_AUDIENCE, the server refuses to start", () =>
    Effect.gen(function*() {
      const deployed = yield* deployment("auth-jwks")
      const pipeline = yield* started(() => startPipeline({ ...deployed.env, AUTH_JWKS_URL: `http://127.0.0.1:${jwksPort}/jwks.json` }))
      expect(yield* Effect.promise(() => pipeline.exited)).toBe(1)
      expect(pipeline.output()).toContain("AUTH_JWKS_URL is set without AUTH_ISSUER or AUTH_AUDIENCE")
    }), { timeout: 60_000 })

  it.scopedLive("with a real service configured and no AUTH_SECRET, neither the server nor pnpm token starts", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("auth-refused")
      const env = {
        PORT: String(yield* Effect.promise(freePort)),
        KAFKA_BROKERS: "127.0.0.1:9",
        STORAGE_DIR: join(dir, "objects"),
        EMBEDDED_DB_DIR: join(dir, "pg"),
        AUTH_SECRET_FILE: join(dir, "auth-secret")
      }
      const pipeline = yield* started(() => startPipeline(env))
      expect(yield* Effect.promise(() => pipeline.exited)).toBe(1)
      expect(pipeline.output()).toContain("AUTH_SECRET is not set, but KAFKA_BROKERS is")
      const cli = yield* Effect.promise(() => mintWithCli(["--type", "device", "--tenant", "t", "--subject", "d"], env))
      expect([cli.code, cli.stdout]).toEqual([1, ""])
      expect(cli.stderr).toContain("AUTH_SECRET is not set")
      expect(existsSync(env.AUTH_SECRET_FILE)).toBe(false)
    }), { timeout: 60_000 })
})

// Limits small enough to reach, in a window long enough that nothing refills during a test; behind one proxy.
const limitsPort = await freePort()
const limited = `http://127.0.0.1:${limitsPort}`
const limits = { RATE_LIMIT_PER_READER: "3", RATE_LIMIT_UNAUTHENTICATED: "3", RATE_LIMIT_WINDOW: "1 hour", TRUSTED_PROXY_HOPS: "1" }

const history = (localAddress: string, headers: Record<string, string> = {}) =>
  Effect.promise(() => send(`${limited}/api/v1/analytics/equipment/eq/history?${DAY}`, { headers, localAddress }))

/** A 429 with the contract's body and a Retry-After of whole seconds. */
const expectLimited = (answer: Awaited<ReturnType<typeof send>>, about: string) => {
  expect([answer.status, answer.json.error]).toEqual([429, "rate_limited"])
  expect(answer.json.message).toContain(about)
  expect(Number(answer.headers["retry-after"])).toBeGreaterThanOrEqual(1)
}

layer(serverOn(inMemoryStore(1_000), limitsPort, limits), { timeout: 120_000, excludeTestServices: true })("rate limits", (it) => {
  it.effect("each reader token has its rate on analytics (RATE_LIMIT_PER_READER): then 429 with Retry-After; other readers are not affected", () =>
    Effect.gen(function*() {
      const alice = bearer(readerToken("tenant-r", "alice"))
      for (let i = 0; i < 3; i++) expect((yield* history("127.0.0.10", alice)).status).toBe(200)
      expectLimited(yield* history("127.0.0.10", alice), "reader \"alice\" is over its limit of 3 requests per 1h")
      // From another address too: the limit is the token's.
      expect((yield* history("127.0.0.11", alice)).status).toBe(429)
      expect((yield* history("127.0.0.10", bearer(readerToken("tenant-r", "bob")))).status).toBe(200)
      expect((yield* history("127.0.0.10", bearer(readerToken("tenant-s", "alice")))).status).toBe(200)
    }))

  it.effect("rate-limit keys cannot collide: tenant \"a/b\" with reader \"c\" is not tenant \"a\" with reader \"b/c\"", () =>
    Effect.gen(function*() {
      const first = bearer(readerToken("a/b", "c"))
      for (let i = 0; i < 3; i++) expect((yield* history("127.0.0.12", first)).status).toBe(200)
      expect((yield* history("127.0.0.12", first)).status).toBe(429)
      const second = bearer(readerToken("a", "b/c"))
      for (let i = 0; i < 3; i++) expect((yield* history("127.0.0.12", second)).status).toBe(200)
    }))

  it.effect("requests without a valid token are limited per address (RATE_LIMIT_UNAUTHENTICATED); valid tokens, health and the documents are not", () =>
    Effect.gen(function*() {
      const forged = bearer(signToken(claimsOf("reader", "tenant-r", "carol"), { secret: "x".repeat(40) }))
      for (const headers of [{}, forged, { authorization: "Basic abc" }]) {
        expect((yield* history("127.0.0.20", headers)).status).toBe(401)
      }
      expectLimited(yield* history("127.0.0.20", {}), "too many requests without a valid token")
      expectLimited(yield* history("127.0.0.20", forged), "too many requests without a valid token")
      // A token of ours that only expired still gets its 401, which tells its client to log in again (a forged
      // one, expired too, is limited).
      const now = Math.floor(Date.now() / 1000)
      const lapsed = claimsOf("device", "tenant-r", "dave", { iat: now - 7200, exp: now - 60 })
      const expired = yield* history("127.0.0.20", bearer(signToken(lapsed)))
      expect([expired.status, expired.json.message]).toEqual([401, "the token has expired"])
      expectLimited(yield* history("127.0.0.20", bearer(signToken(lapsed, { secret: "x".repeat(40) }))), "too many requests")
      const bulk = yield* Effect.promise(() =>
        send(`${limited}/api/v1/telemetry/bulk`, { body: [], localAddress: "127.0.0.20" })
      )
      expect(bulk.status).toBe(429)
      // The same address with a valid token is served, and so are the open routes.
      expect((yield* history("127.0.0.20", bearer(readerToken("tenant-r", "carol")))).status).toBe(200)
      for (let i = 0; i < 5; i++) {
        for (const path of ["/api/v1/health", "/api/v1/health/detailed", "/api/v1/openapi.json", "/api/v1/docs"]) {
          const open = yield* Effect.promise(() => send(`${limited}${path}`, { localAddress: "127.0.0.20" }))
          expect([path, open.status]).toEqual([path, 200])
        }
      }
      // Another address still gets its 401s.
      expect((yield* history("127.0.0.21", {})).status).toBe(401)
    }))

  it.effect("behind TRUSTED_PROXY_HOPS proxies, clients are told apart by the address the proxy appended to X-Forwarded-For", () =>
    Effect.gen(function*() {
      const proxy = "127.0.0.30"
      const from = (forwardedFor: string) => history(proxy, { "x-forwarded-for": forwardedFor })
      for (let i = 0; i < 3; i++) expect((yield* from("203.0.113.7")).status).toBe(401)
      expect((yield* from("203.0.113.7")).status).toBe(429)
      // What the client wrote itself, left of what the proxy appended, changes nothing.
      expect((yield* from("198.51.100.1, 203.0.113.7")).status).toBe(429)
      // Another client behind the same proxy is another address.
      expect((yield* from("203.0.113.8")).status).toBe(401)
    }))

  it.effect("an IPv6 client is counted by its /64: a host has them all, so a new address per request gains nothing", () =>
    Effect.gen(function*() {
      const from = (forwardedFor: string) => history("127.0.0.31", { "x-forwarded-for": forwardedFor })
      for (const suffix of ["1", "2", "abcd:1:2"]) expect((yield* from(`2001:db8:7:8::${suffix}`)).status).toBe(401)
      expectLimited(yield* from("2001:db8:7:8:ffff::4"), "too many requests without a valid token from 2001:db8:7:8::/64")
      expect((yield* from("2001:db8:7:9::1")).status).toBe(401)
      // An IPv4 address written as IPv6 is that IPv4 address.
      for (let i = 0; i < 3; i++) expect((yield* from("203.0.113.9")).status).toBe(401)
      expect((yield* from("::ffff:203.0.113.9")).status).toBe(429)
    }))
})
