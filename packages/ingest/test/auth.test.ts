import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it, layer } from "@effect/vitest"
import { ObjectStore } from "@telemetry/domain"
import { count } from "@telemetry/domain/testing"
import { Chunk, Effect, Layer, Stream } from "effect"
import { execFile } from "node:child_process"
import { existsSync, readFileSync, statSync } from "node:fs"
import { createServer } from "node:http"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from "jose"
import { authEnv, bearer, claimsOf, deviceToken, readerToken, signToken, TEST_SECRET } from "./support/auth.js"
import { haPayload } from "./support/payloads.js"
import { healthy, type PipelineProcess, startPipeline, until } from "./support/process.js"
import { embeddedStack, eventually, freePort, tempDir } from "./support/stack.js"

const root = fileURLToPath(new URL("../../../", import.meta.url))
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

/** `pnpm token`'s program as a child process; resolves with its stdout. */
const mintWithCli = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "packages/ingest/src/cli/token.ts", ...args],
      { cwd: root, env: { ...process.env, ...env } },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr })
    )
  })

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
const providerToken = (key: CryptoKey, claims: Record<string, unknown>) =>
  Effect.promise(() => new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: "idp-1" }).sign(key))

const port = await freePort()
const base = `http://127.0.0.1:${port}`
const stack = Layer.merge(embeddedStack(port, { AUTH_JWKS_URL: `http://127.0.0.1:${jwksPort}/jwks.json` }), jwks)

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
          ["an unknown user_type", bearer(signToken(claimsOf("device", "tenant-a", "dev-a", { user_type: "admin" }))), "user_type"]
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

    it.effect("RS256 tokens of the identity provider at AUTH_JWKS_URL are accepted", () =>
      Effect.gen(function*() {
        const token = yield* providerToken(provider.privateKey, claimsOf("reader", "tenant-a", "dashboard"))
        const answer = yield* readings(base, "shared-eq", bearer(token))
        expect([answer.status, answer.json.data.length]).toEqual([200, 3])
      }))

    it.effect("health and the API's documents need no token", () =>
      Effect.gen(function*() {
        for (const path of ["/api/v1/health", "/api/v1/health/detailed", "/api/v1/openapi.json"]) {
          expect([path, (yield* call(base, path)).status]).toEqual([path, 200])
        }
      }))

    it.effect("pnpm token mints device and reader tokens that the server accepts", () =>
      Effect.gen(function*() {
        const mint = (type: string, subject: string) =>
          Effect.promise(() => mintWithCli(["--type", type, "--tenant", "tenant-c", "--subject", subject, "--expires", "2h"], authEnv))
        const device = yield* mint("device", "cli-device")
        expect([device.code, device.stderr]).toEqual([0, expect.stringContaining('device token of tenant "tenant-c"')])
        const accepted = yield* ingest(base, "cli-eq", bearer(device.stdout.trim()))
        expect(accepted.status).toBe(202)
        yield* eventually(count("claim_ledger", `claim_id = '${accepted.json.claim_id}'`), (n) => n === 1)
        const reader = yield* mint("reader", "cli-reader")
        const answer = yield* readings(base, "cli-eq", bearer(reader.stdout.trim()))
        expect([answer.status, answer.json.data.length]).toEqual([200, 3])
      }))
  })
})

/** A process that is killed with the scope. */
const started = (env: Record<string, string>) =>
  Effect.acquireRelease(Effect.sync(() => startPipeline(env)), (p) => Effect.sync(() => p.child.kill("SIGKILL")))

const printed = (pipeline: PipelineProcess, name: string) => new RegExp(`^\\s*${name}=(\\S+)$`, "m").exec(pipeline.output())?.[1]

describe("secure by default", () => {
  it.scopedLive("an embedded start without AUTH_SECRET generates a secret file, prints tokens that work, and pnpm token uses it", () =>
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
      const pipeline = yield* started(env)
      yield* Effect.promise(() => healthy(pipeline, base))
      yield* Effect.promise(() => until(pipeline, async () => printed(pipeline, "READER_TOKEN") !== undefined, 10_000, "tokens"))
      expect(statSync(secretFile).mode & 0o777).toBe(0o600)
      expect(readFileSync(secretFile, "utf8").trim().length).toBeGreaterThanOrEqual(32)
      expect(pipeline.output()).toContain(`signed with the secret in ${secretFile} (generated now)`)

      expect((yield* ingest(base, "local-eq", {})).status).toBe(401)
      expect((yield* ingest(base, "local-eq", bearer(deviceToken()))).status).toBe(401)
      const accepted = yield* ingest(base, "local-eq", bearer(printed(pipeline, "DEVICE_TOKEN")!))
      expect(accepted.status).toBe(202)
      const reader = bearer(printed(pipeline, "READER_TOKEN")!)
      yield* Effect.promise(() =>
        until(pipeline, async () => (await Effect.runPromise(readings(base, "local-eq", reader))).json.data.length === 3, 30_000, "the readings")
      )
      expect((yield* readings(base, "local-eq", {})).status).toBe(401)

      // The CLI, in the same environment, signs with the same secret.
      const minted = yield* Effect.promise(() =>
        mintWithCli(["--type", "reader", "--tenant", "default", "--subject", "me"], { AUTH_SECRET_FILE: secretFile })
      )
      const answer = yield* readings(base, "local-eq", bearer(minted.stdout.trim()))
      expect([answer.status, answer.json.data.length]).toEqual([200, 3])
    }), { timeout: 120_000 })

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
      const pipeline = yield* started(env)
      expect(yield* Effect.promise(() => pipeline.exited)).toBe(1)
      expect(pipeline.output()).toContain("AUTH_SECRET is not set, but KAFKA_BROKERS is")
      const cli = yield* Effect.promise(() => mintWithCli(["--type", "device", "--tenant", "t", "--subject", "d"], env))
      expect([cli.code, cli.stdout]).toEqual([1, ""])
      expect(cli.stderr).toContain("AUTH_SECRET is not set")
      expect(existsSync(env.AUTH_SECRET_FILE)).toBe(false)
    }), { timeout: 60_000 })
})
