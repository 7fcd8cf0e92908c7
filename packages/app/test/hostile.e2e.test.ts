import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, layer, type Vitest } from "@effect/vitest"
import { ClaimQueue, type ObjectStore } from "@telemetry/domain"
import { bearer, claimsOf, deviceToken, readerToken } from "@telemetry/ingest/testing/auth"
import { send } from "@telemetry/ingest/testing/client"
import * as IdentityProvider from "@telemetry/ingest/testing/identityProvider"
import { readingsPayload, refusedAs, stash } from "@telemetry/worker/testing/claims"
import { Chunk, Duration, Effect, Fiber, Layer, Option, Schedule, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { gzipSync } from "node:zlib"
import { startPipeline } from "./support/process.js"
import { eventually, freePort } from "./support/stack.js"
import {
  embedded,
  footprint,
  goodPayloadLoads,
  NOTHING,
  readingsOfTenant,
  settled,
  Target,
  TestBed,
  testBed
} from "./support/targets.js"
import { postBytes, postJson, trickle } from "./support/uploads.js"

// Issue 11: every attack of its table as a regression test, through real HTTP and the real worker, on the embedded
// stack and on the Kafka/S3/PostgreSQL test bed; after each, another tenant's payload is loaded within seconds.

const MiB = 1024 * 1024

/** Limits small enough for a test to reach, in a window long enough that nothing refills during the run. */
const LIMITS = {
  MIN_BODY_RATE: "1024",
  BODY_RATE_GRACE: "2 seconds",
  MAX_UPLOADS_PER_DEVICE: "2",
  RATE_LIMIT_PER_DEVICE: "3",
  RATE_LIMIT_PER_READER: "3",
  RATE_LIMIT_UNAUTHENTICATED: "3",
  RATE_LIMIT_WINDOW: "1 hour",
  HEALTH_MAX_CLAIM_AGE: "2 seconds"
}

type Services = Target | SqlClient.SqlClient | ObjectStore | ClaimQueue | IdentityProvider.IdentityProvider

/**
 * An equipment or sensor uuid of exactly `length` characters (code points: its emoji is one, of two UTF-16 units),
 * with what a URL or COPY must escape.
 */
const uuidOf = (length: number, prefix = "eq") => {
  const start = `${prefix}/ä?#%&+ "\\\t😀`
  return start + "x".repeat(length - [...start].length)
}

let readers = 0
/** A reader of its own for each request: RATE_LIMIT_PER_READER is small. */
const freshReader = (tenant: string) => bearer(readerToken(tenant, `reader-${++readers}`))

const get = (base: string, path: string, headers: Record<string, string> = {}, localAddress?: string) =>
  Effect.promise(() => send(`${base}${path}`, { headers, ...(localAddress ? { localAddress } : {}) }))

/** A 400 with the contract's error body, naming the field at `path`. */
const invalidAt = (path: string) => ({ status: 400, json: { error: "invalid_payload", path } })

/** What the Home Assistant integration sends with each reading besides its sensor, value and time (contract §6). */
const HA_ATTRIBUTES = {
  sensor_nome: "Freezer Principal Temperatura",
  sensor_status: "ATIVO",
  sensor_tipo: "temperature",
  sensor_unidade: "°C",
  sensor_bateria_pct: 87,
  sensor_sinal_lqi: null,
  sensor_sinal_rssi: -61,
  sensor_voltagem_bateria: 3.005,
  sensor_voltagem: null,
  sensor_corrente: null,
  sensor_potencia: null,
  sensor_fabricante: "LUMI",
  sensor_modelo: "lumi.weather",
  sensor_firmware: "0x0000001b",
  sensor_id_hardware: "00:15:8d:00:04:5a:1b:01",
  sensor_via_hub: true
}

const reading = { sensor_uuid: "s", valor: 1, sensor_datahora_coleta: "2026-12-01T10:00:00Z" }

const attacks = (it: Vitest.MethodsNonLive<Services, true>) => {
  it.effect("a lone surrogate in equip_uuid, or in a key: 400 with its path, nothing stored", () =>
    Effect.gen(function*() {
      const { base } = yield* Target
      const token = deviceToken("attacker", "surrogates")
      // As sent on the wire: JSON escapes that parse in JavaScript but are not Unicode.
      const inUuid = String.raw`[{"equip_uuid":"lone-\ud800-eq","sensor":[{"sensor_uuid":"u-s","valor":1}]}]`
      const inKey = String.raw`[{"equip_uuid":"lone-key-eq","sensor":[{"sensor_uuid":"u-s","valor":1,"sensor_\udfff":2}]}]`
      expect(yield* postBytes(base, inUuid, token)).toMatchObject(invalidAt("[0].equip_uuid"))
      expect(yield* footprint("attacker")).toEqual(NOTHING)
      yield* goodPayloadLoads("a lone surrogate in equip_uuid")
      expect(yield* postBytes(base, gzipSync(inKey), token, { "content-encoding": "gzip" })).toMatchObject(invalidAt("[0].sensor[0]"))
      expect(yield* footprint("attacker")).toEqual(NOTHING)
      yield* goodPayloadLoads("a lone surrogate in a key")
    }), { timeout: 60_000 })

  it.effect("NUL in a text, a 60 KB uuid, a 129-character uuid: 400 with the path; a 128-character uuid: 202, loaded, readable percent-encoded", () =>
    Effect.gen(function*() {
      const { base } = yield* Target
      const refused: ReadonlyArray<readonly [unknown, string]> = [
        [[{ equip_uuid: "nul-eq", equip_nome: "freezer\u0000", sensor: [reading] }], "[0].equip_nome"],
        [[{ equip_uuid: "nul-eq", sensor: [reading, { ...reading, status: "ok\u0000" }] }], "[0].sensor[1].status"],
        [[{ equip_uuid: "x".repeat(60_000), sensor: [reading] }], "[0].equip_uuid"],
        [[{ equip_uuid: uuidOf(129), sensor: [reading] }], "[0].equip_uuid"],
        [[{ equip_uuid: "eq", sensor: [{ ...reading, sensor_uuid: uuidOf(129, "s") }] }], "[0].sensor[0].sensor_uuid"]
      ]
      for (const [n, [payload, path]] of refused.entries()) {
        // A device each: refused requests count against RATE_LIMIT_PER_DEVICE too.
        expect(yield* postJson(base, payload, deviceToken("attacker", `refused-${n}`))).toMatchObject(invalidAt(path))
        expect(yield* footprint("attacker")).toEqual(NOTHING)
        yield* goodPayloadLoads(`a refused payload (${path})`)
      }

      const equipment = uuidOf(128)
      const sensor = uuidOf(128, "s")
      const at = new Date(Date.now() - 3_600_000).toISOString()
      const accepted = yield* postJson(base, [{ equip_uuid: equipment, sensor: [{ sensor_uuid: sensor, valor: 21.5, sensor_datahora_coleta: at }] }], deviceToken("long-ids", "d"))
      expect(accepted.status).toBe(202)
      yield* eventually(readingsOfTenant("long-ids"), (n) => n === 1)
      const byEquipment = yield* get(base, `/api/v1/analytics/equipment/${encodeURIComponent(equipment)}/history?period=raw`, freshReader("long-ids"))
      expect([byEquipment.status, byEquipment.json.equipment_uuid]).toEqual([200, equipment])
      expect(byEquipment.json.data).toEqual([expect.objectContaining({ sensor_uuid: sensor, value: 21.5 })])
      const bySensor = yield* get(base, `/api/v1/analytics/sensor/${encodeURIComponent(sensor)}/history?period=raw&equipment_uuid=${encodeURIComponent(equipment)}`, freshReader("long-ids"))
      expect([bySensor.status, bySensor.json.data.length]).toEqual([200, 1])
    }), { timeout: 60_000 })

  it.effect("a uuid or text beginning with U+FEFF (a byte-order mark, which the embedded database reads back without) is refused with its path; one inside is stored as sent", () =>
    Effect.gen(function*() {
      const { base } = yield* Target
      const at = new Date(Date.now() - 3_600_000).toISOString()
      const item = (fields: Record<string, unknown>, reading: Record<string, unknown> = {}) =>
        [{ equip_uuid: "bom-eq", ...fields, sensor: [{ sensor_uuid: "bom-s", valor: 1, sensor_datahora_coleta: at, ...reading }] }]
      const refusals = [
        [item({ equip_uuid: "\ufeffbom-eq" }), "[0].equip_uuid"],
        [item({ equip_nome: "\ufeffFreezer" }), "[0].equip_nome"],
        [item({}, { sensor_uuid: "\ufeffbom-s" }), "[0].sensor[0].sensor_uuid"],
        [item({}, { status: "\ufeffok" }), "[0].sensor[0].status"]
      ] as const
      // A device each, so that the per-device rate of this stack is not what answers.
      for (const [k, [payload, path]] of refusals.entries()) {
        const refused = yield* postJson(base, payload, deviceToken("bom", `d${k}`))
        expect([refused.status, refused.json.path]).toEqual([400, path])
      }
      expect(yield* readingsOfTenant("bom")).toBe(0)
      const inside = yield* postJson(base, item({}, { status: "o\ufeffk" }), deviceToken("bom", "d-inside"))
      expect(inside.status).toBe(202)
      expect(yield* settled(inside.json.claim_id, Duration.seconds(30))).toEqual({ loaded: { readings: 1, duplicates: 0, expired: 0 } })
      const history = yield* get(base, `/api/v1/analytics/equipment/bom-eq/history?period=raw`, freshReader("bom"))
      expect([history.status, history.json.data]).toEqual([200, [expect.objectContaining({ sensor_uuid: "bom-s", status: "o\ufeffk" })]])
      yield* goodPayloadLoads("text beginning with a byte-order mark")
    }), { timeout: 60_000 })

  it.effect("poison stored past ingest (its claim queued directly) is dead-lettered with its reason; the claims behind it load", () =>
    Effect.gen(function*() {
      const queue = yield* ClaimQueue
      const poisons = {
        "a lone surrogate": [{ equip_uuid: "lone-\ud800-eq", sensor: [{ sensor_uuid: "u-s", valor: 1 }] }],
        "a NUL": [{ equip_uuid: "poison-nul", equip_nome: "freezer\u0000", sensor: [reading] }],
        // Random, so that the database could not compress it under its limit on an index row.
        "a 60 KB uuid": [{ equip_uuid: `poison-${randomBytes(30_000).toString("hex")}`, sensor: [reading] }]
      }
      const expected: Array<readonly [string, string]> = []
      const behind: Array<string> = []
      for (const [what, payload] of Object.entries(poisons)) {
        // One device: on Kafka, its claims share a partition, so the good claim waits behind the poison.
        const poison = yield* stash(payload, { tenantId: "poisoner", deviceId: "poison-device" })
        yield* queue.publish(poison.claim)
        expected.push([poison.claim.claim_id, yield* refusedAs(payload)])
        const tenant = `behind-${what.replace(/\W+/g, "-")}`
        behind.push(tenant)
        yield* queue.publish((yield* stash(readingsPayload(`${tenant}-eq`, 5, Date.now() - 3_600_000), { tenantId: tenant, deviceId: "poison-device", receivedAt: new Date() })).claim)
      }
      for (const tenant of behind) yield* eventually(readingsOfTenant(tenant), (n) => n === 5)
      const deadLetters = Stream.runCollect(queue.deadLetters({})).pipe(
        Effect.map((letters) =>
          Chunk.toReadonlyArray(letters).flatMap((l) => expected.some(([id]) => id === l.claim?.claim_id) ? [[l.claim!.claim_id, l.reason] as const] : [])
        )
      )
      yield* eventually(deadLetters, (letters) => letters.length === expected.length, Duration.seconds(60))
      expect([...yield* deadLetters].sort()).toEqual([...expected].sort())
      expect(yield* readingsOfTenant("poisoner")).toBe(0)
      const bed = yield* Effect.serviceOption(TestBed)
      if (Option.isSome(bed)) expect(bed.value.worker.child.exitCode).toBeNull()
      yield* goodPayloadLoads("poison claims")
    }), { timeout: 120_000 })

  it.effect("slow uploads: past MAX_UPLOADS_PER_DEVICE 429, each slow one 408 after BODY_RATE_GRACE, another tenant loads meanwhile; a Content-Length of 5 GB: 413 unread", () =>
    Effect.gen(function*() {
      const { base } = yield* Target
      const body = Buffer.from(JSON.stringify(readingsPayload("slow-eq", 50)))
      const slowpoke = deviceToken("slow", "slowpoke")
      // A byte a second, three at once from one device that may stream two.
      const slow = yield* Effect.fork(Effect.all(Array.from({ length: 3 }, () => trickle(base, body, slowpoke, { everyMs: 1000 })), { concurrency: "unbounded" }))
      yield* goodPayloadLoads("slow uploads holding their slots")
      const replies = yield* Fiber.join(slow)
      expect(replies.map((r) => r.status).sort()).toEqual([408, 408, 429])
      expect(replies.find((r) => r.status === 429)!.json).toMatchObject({ error: "rate_limited", message: expect.stringContaining("uploads in flight") })
      // The bytes that did come are counted (they once sat unread, and the answer said 0).
      expect(replies.find((r) => r.status === 408)!.json).toMatchObject({
        error: "request_timeout",
        message: expect.stringMatching(/\([1-9]\d* bytes in /)
      })

      // Only headers and a byte of a body declared as 5 GB: the answer comes without the rest.
      const declared = yield* trickle(base, body, deviceToken("slow", "declares-too-much"), { declaredLength: 5_000_000_000 })
      expect(declared).toMatchObject({ status: 413, json: { error: "payload_too_large" } })
      expect(yield* footprint("slow")).toEqual(NOTHING)
      yield* goodPayloadLoads("slow uploads")
    }), { timeout: 60_000 })

  it.effect("a body in small pieces at 4 × MIN_BODY_RATE, for longer than BODY_RATE_GRACE: accepted and loaded", () =>
    Effect.gen(function*() {
      const { base } = yield* Target
      // ~18 KB in 512-byte pieces, 4 KiB a second: a slow link, not a slow client. Pieces this small once sat
      // unread until 64 KiB had come, and the body was cut as if nothing had.
      const body = Buffer.from(JSON.stringify(readingsPayload("steady-eq", 200)))
      const reply = yield* trickle(base, body, deviceToken("steady", "slow-link"), { bytesEach: 512, everyMs: 125 })
      expect(reply.status).toBe(202)
      yield* eventually(readingsOfTenant("steady"), (n) => n === 200, Duration.seconds(30))
    }), { timeout: 60_000 })

  it.effect("8 concurrent uploads of a 6 MiB item: all accepted and loaded once each; health answers meanwhile", () =>
    Effect.gen(function*() {
      const { base } = yield* Target
      const sql = yield* SqlClient.SqlClient
      // Readings with every attribute the Home Assistant integration sends: 6 MiB are ~12 000 of them.
      const readings = 12_000
      const bodies = Array.from({ length: 8 }, (_, i) =>
        JSON.stringify(readingsPayload(`big-${i}`, readings, Date.now() - 86_400_000).map((item) => ({
          ...item,
          sensor: item.sensor.map((r) => ({ ...HA_ATTRIBUTES, ...r, sensor_telemetria: String(r.valor) }))
        }))))
      expect(bodies[0]!.length).toBeGreaterThan(6 * MiB)
      const health = Effect.promise(() =>
        Promise.all(["/api/v1/health", "/api/v1/health/ready"].map((path) => fetch(`${base}${path}`).then((r) => r.status)))
      )
      const answered: Array<ReadonlyArray<number>> = []
      const probing = (done: () => boolean) =>
        health.pipe(Effect.tap((s) => answered.push(s)), Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: done }))

      const uploads = yield* Effect.fork(Effect.all(bodies.map((body, i) => postBytes(base, body, deviceToken("big", `big-${i}`))), { concurrency: "unbounded" }))
      yield* probing(() => uploads.unsafePoll() !== null)
      const replies = yield* Fiber.join(uploads)
      expect(replies.map((r) => [r.status, r.json.readings])).toEqual(bodies.map(() => [202, readings]))
      const loaded = sql<{ claims: number; distinct_claims: number; rows: number; distinct_rows: number }>`SELECT
          (SELECT count(*)::int FROM claim_ledger WHERE tenant_id = 'big') AS claims,
          (SELECT count(DISTINCT claim_id)::int FROM claim_ledger WHERE tenant_id = 'big') AS distinct_claims,
          (SELECT count(*)::int FROM telemetry_data t JOIN equipments e ON e.id = t.equipment_id WHERE e.tenant_id = 'big') AS rows,
          (SELECT count(DISTINCT (t.sensor_id, t.time))::int FROM telemetry_data t JOIN equipments e ON e.id = t.equipment_id
            WHERE e.tenant_id = 'big') AS distinct_rows`.pipe(Effect.map((rows) => rows[0]!))
      let done = false
      yield* Effect.zip(
        eventually(loaded, (l) => l.rows === 8 * readings, Duration.seconds(120)).pipe(Effect.ensuring(Effect.sync(() => (done = true)))),
        probing(() => done),
        { concurrent: true }
      )
      expect(yield* loaded).toEqual({ claims: 8, distinct_claims: 8, rows: 8 * readings, distinct_rows: 8 * readings })
      expect(answered.length).toBeGreaterThan(0)
      expect(answered.filter(([live, ready]) => live !== 200 || ready !== 200)).toEqual([])
      yield* goodPayloadLoads("concurrent large items")
    }), { timeout: 180_000 })

  it.effect("a gzip body followed by zero bytes: 400, nothing stored; a body of two gzip members: 202 and loaded", () =>
    Effect.gen(function*() {
      const { base } = yield* Target
      const json = JSON.stringify(readingsPayload("gzip-eq", 6, Date.now() - 3_600_000))
      const gzip = { "content-encoding": "gzip" }
      const padded = yield* postBytes(base, Buffer.concat([gzipSync(json), Buffer.alloc(MiB)]), deviceToken("gzip", "padded"), gzip)
      expect(padded).toMatchObject({ status: 400, json: { error: "invalid_payload", message: expect.stringContaining("after the end of its gzip data") } })
      expect(yield* footprint("gzip")).toEqual(NOTHING)
      yield* goodPayloadLoads("a padded gzip body")

      const members = Buffer.concat([gzipSync(json.slice(0, 50)), gzipSync(json.slice(50))])
      expect(yield* postBytes(base, members, deviceToken("gzip", "members"), gzip)).toMatchObject({ status: 202, json: { readings: 6 } })
      yield* eventually(readingsOfTenant("gzip"), (n) => n === 6)
    }), { timeout: 60_000 })

  it.effect("RS256 tokens of the identity provider (AUTH_JWKS_URL): another issuer or audience 401; its own 202", () =>
    Effect.gen(function*() {
      const { base } = yield* Target
      const idp = yield* IdentityProvider.IdentityProvider
      const claims = claimsOf("device", "idp-tenant", "idp-device")
      const ingest = (token: string) =>
        Effect.promise(() =>
          send(`${base}/api/v1/telemetry/bulk`, {
            headers: bearer(token),
            body: readingsPayload("idp-eq", 3, Date.now() - 3_600_000),
            // Its own address: the 401s count against RATE_LIMIT_UNAUTHENTICATED.
            localAddress: "127.0.0.61"
          })
        )
      const otherIssuer = yield* ingest(yield* Effect.promise(() => idp.token({ ...claims, iss: "https://evil.test" })))
      expect([otherIssuer.status, otherIssuer.json.error]).toEqual([401, "unauthorized"])
      expect(otherIssuer.json.message).toContain("\"iss\" claim")
      const otherAudience = yield* ingest(yield* Effect.promise(() => idp.token({ ...claims, aud: "another-api" })))
      expect([otherAudience.status, otherAudience.json.error]).toEqual([401, "unauthorized"])
      expect(otherAudience.json.message).toContain("\"aud\" claim")
      expect(yield* readingsOfTenant("idp-tenant")).toBe(0)
      yield* goodPayloadLoads("tokens of another issuer or audience")
      expect((yield* ingest(yield* Effect.promise(() => idp.token(claims)))).status).toBe(202)
      yield* eventually(readingsOfTenant("idp-tenant"), (n) => n === 3)
    }), { timeout: 60_000 })

  it.effect("NUL or a lone surrogate in a path or query, a date of year 0: 400 with the contract's body, not 500", () =>
    Effect.gen(function*() {
      const { base } = yield* Target
      const paths = [
        "/api/v1/analytics/equipment/eq%00x/history",
        "/api/v1/analytics/sensor/s%00/history?period=raw",
        "/api/v1/analytics/equipment/eq/history?sensor_type=%00",
        "/api/v1/analytics/equipment/eq/stats?sensor_type=a%00b",
        "/api/v1/analytics/home-assistant/eq%00",
        "/api/v1/analytics/equipment/%ED%A0%80/history",
        "/api/v1/analytics/equipment/eq/history?start_date=0000-01-01",
        "/api/v1/analytics/equipment/eq/history?period=raw&end_date=9999-12-31T00:00:00Z"
      ]
      for (const path of paths) {
        const answer = yield* get(base, path, freshReader("paths"))
        expect([path, answer.status, answer.json?.error]).toEqual([path, 400, "invalid_parameter"])
      }
      yield* goodPayloadLoads("bad paths and queries")
    }), { timeout: 60_000 })

  it.effect("rate-limit keys cannot collide (tenant a/b + device c is not tenant a + device b/c); unauthenticated addresses and reader tokens are limited", () =>
    Effect.gen(function*() {
      const { base } = yield* Target
      const post = (token: string, equipment: string) => Effect.map(postJson(base, readingsPayload(equipment, 2), token), (r) => r.status)
      const first = deviceToken("a/b", "c")
      const second = deviceToken("a", "b/c")
      for (let i = 0; i < 3; i++) expect(yield* post(first, `ab-c-${i}`)).toBe(202)
      expect(yield* post(first, "ab-c-over")).toBe(429)
      for (let i = 0; i < 3; i++) expect(yield* post(second, `a-bc-${i}`)).toBe(202)

      const history = "/api/v1/analytics/equipment/eq/history"
      for (let i = 0; i < 3; i++) expect((yield* get(base, history, {}, "127.0.0.51")).status).toBe(401)
      const unauthenticated = yield* get(base, history, {}, "127.0.0.51")
      expect([unauthenticated.status, unauthenticated.json.error]).toEqual([429, "rate_limited"])
      expect(Number(unauthenticated.headers["retry-after"])).toBeGreaterThanOrEqual(1)

      const busy = bearer(readerToken("r", "busy-reader"))
      for (let i = 0; i < 3; i++) expect((yield* get(base, history, busy)).status).toBe(200)
      const reader = yield* get(base, history, busy)
      expect([reader.status, reader.json.error]).toEqual([429, "rate_limited"])
      yield* goodPayloadLoads("rate limits")
    }), { timeout: 60_000 })
}

/** A deployment that trusts the test's identity provider, with `LIMITS`. */
const trusting = <A, E>(deploy: (env: Readonly<Record<string, string>>) => Layer.Layer<A, E>) =>
  Layer.unwrapEffect(Effect.map(IdentityProvider.IdentityProvider, (idp) => deploy({ ...LIMITS, ...idp.env }))).pipe(
    Layer.provideMerge(IdentityProvider.layer)
  )

describe("issue 11's attacks on the embedded stack (files, in-process queue, PGlite)", () => {
  layer(trusting(embedded), { timeout: 120_000, excludeTestServices: true })((it) => attacks(it))
})

describe("issue 11's attacks on the test bed (ingest and a worker as processes; mock Kafka, s3rver, PostgreSQL 15)", () => {
  layer(trusting((env) => testBed(env)), { timeout: 180_000, excludeTestServices: true })((it) => {
    attacks(it)

    it.effect("detailed health is degraded while the worker is stuck, ready is 503 while storage is down; then claims load again", () =>
      Effect.gen(function*() {
        const { base } = yield* Target
        const bed = yield* TestBed
        const detailed = Effect.map(get(base, "/api/v1/health/detailed"), (a) => ({ code: a.status, ...a.json }))
        const ready = Effect.map(get(base, "/api/v1/health/ready"), (a) => ({ code: a.status, ...a.json }))
        const token = deviceToken("stuck", "d")

        // A worker that takes no claims (stopped, as a hung process is): its group's lag does not move.
        bed.worker.child.kill("SIGSTOP")
        const resumed = Effect.sync(() => bed.worker.child.kill("SIGCONT"))
        yield* Effect.gen(function*() {
          expect((yield* postJson(base, readingsPayload("stuck-eq", 4, Date.now() - 3_600_000), token)).status).toBe(202)
          const degraded = yield* eventually(detailed, (h) => h.status === "degraded", Duration.seconds(30)).pipe(Effect.zipRight(detailed))
          expect(degraded).toMatchObject({ code: 200, status: "degraded", checks: { queue: { status: "degraded", backlog: { pending: 1 } } } })
          // On Kafka, where: the claim's partition.
          expect(degraded.checks.queue.reason).toMatch(/^1 claim\(s\) not loaded, (partition \d \(1 of them\) without progress|the oldest waiting) for \d+s/)
          // Ingest itself can still take uploads.
          expect(yield* ready).toMatchObject({ code: 200, status: "ready" })
        }).pipe(Effect.ensuring(resumed))
        yield* eventually(readingsOfTenant("stuck"), (n) => n === 4, Duration.seconds(60))
        yield* eventually(detailed, (h) => h.status === "healthy", Duration.seconds(30))

        yield* Effect.promise(() => bed.s3.down())
        yield* Effect.gen(function*() {
          expect(yield* ready).toMatchObject({ code: 503, status: "not_ready", reasons: [expect.stringMatching(/^storage is down: /)] })
          expect(yield* detailed).toMatchObject({ code: 503, status: "unhealthy", checks: { storage: { status: "down" } } })
          const refused = deviceToken("refused-while-storage-is-down", "d")
          expect(yield* postJson(base, readingsPayload("refused-eq", 4), refused)).toMatchObject({ status: 503, json: { error: "storage_unavailable" } })
        }).pipe(Effect.ensuring(Effect.promise(() => bed.s3.up())))
        yield* eventually(ready, (r) => r.code === 200, Duration.seconds(30))
        expect(yield* footprint("refused-while-storage-is-down")).toEqual(NOTHING)
        yield* goodPayloadLoads("a stuck worker and a storage outage")
      }), { timeout: 120_000 })

    it.effect("with AUTH_JWKS_URL and neither AUTH_ISSUER nor AUTH_AUDIENCE, ingest refuses to start (exit code 1)", () =>
      Effect.gen(function*() {
        const bed = yield* TestBed
        const idp = yield* IdentityProvider.IdentityProvider
        const port = yield* Effect.promise(freePort)
        const refused = startPipeline({ ...bed.env, PORT: String(port), RUN_WORKER: "false", AUTH_JWKS_URL: idp.jwksUrl })
        yield* Effect.addFinalizer(() => Effect.sync(() => refused.child.kill("SIGKILL")))
        expect(yield* Effect.promise(() => refused.exited)).toBe(1)
        expect(refused.output()).toContain("AUTH_JWKS_URL is set without AUTH_ISSUER or AUTH_AUDIENCE")
      }).pipe(Effect.scoped), { timeout: 60_000 })
  })
})
