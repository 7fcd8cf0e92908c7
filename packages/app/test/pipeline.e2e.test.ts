import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, layer } from "@effect/vitest"
import { ObjectStore } from "@telemetry/domain"
import { haEquipmentRow, haPayload } from "@telemetry/domain/testing"
import { count } from "@telemetry/infra/testing"
import { bearer, deviceToken, readerToken } from "@telemetry/ingest/testing/auth"
import { Chunk, Effect, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { gunzipSync, gzipSync } from "node:zlib"
import { embeddedStack, eventually, freePort } from "./support/stack.js"

const port = await freePort()
const base = `http://127.0.0.1:${port}`
const MAX_BODY = 1024 * 1024
const MAX_DECOMPRESSED = 4 * 1024 * 1024

/** A POST as the device `default`/`test-device`, unless `headers` send another token. */
const post = (body: string | Buffer, headers: Record<string, string> = {}, path = "/api/v1/telemetry/bulk") =>
  Effect.promise(async () => {
    const response = await fetch(base + path, {
      method: "POST",
      headers: { "content-type": "application/json", ...bearer(deviceToken()), ...headers },
      body: body as unknown as BodyInit
    })
    return { status: response.status, headers: response.headers, json: (await response.json()) as any }
  })

const getJson = (path: string) =>
  Effect.promise(async () => {
    const response = await fetch(base + path, { headers: bearer(readerToken()) })
    return { status: response.status, json: (await response.json()) as any }
  })

const storedObjects = Effect.flatMap(ObjectStore, (storage) =>
  Effect.map(Stream.runCollect(storage.list("telemetry/")), Chunk.toReadonlyArray))

const stack = embeddedStack(port, {
  MAX_BODY_BYTES: String(MAX_BODY),
  MAX_DECOMPRESSED_BYTES: String(MAX_DECOMPRESSED),
  DEFAULT_TIMEZONE: "America/Sao_Paulo"
})

describe("pipeline over HTTP on embedded parts", () => {
  layer(stack, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("a gzip body from the Home Assistant client is accepted, stored, loaded and served", () =>
      Effect.gen(function*() {
        const json = JSON.stringify(haPayload("ha-1"))
        const response = yield* post(gzipSync(json), {
          "content-encoding": "gzip",
          "x-device-id": "ha-device",
          ...bearer(deviceToken("default", "ha-device"))
        })
        expect(response.status).toBe(202)
        expect(response.json).toMatchObject({ status: "accepted", received: 1, readings: 3 })
        expect(response.json.claim_check).toMatch(
          /^telemetry\/\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z\/[0-9a-f-]{36}\.json\.gz$/
        )
        expect(response.json.claim_check).toContain(response.json.claim_id)
        expect(response.headers.get("x-request-id")).toBeTruthy()

        const sql = yield* SqlClient.SqlClient
        yield* eventually(count("claim_ledger", `claim_id = '${response.json.claim_id}'`), (n) => n === 1)
        const rows = yield* sql<{ time: Date; sensor: string; value: number | null; status: string | null; metadata: unknown }>`
          SELECT t.time, s.uuid AS sensor, t.value, t.status, t.metadata
          FROM telemetry_data t JOIN sensors s ON s.id = t.sensor_id JOIN equipments e ON e.id = t.equipment_id
          WHERE e.uuid = 'ha-1' ORDER BY t.time`
        // Naive local times are São Paulo time (UTC-3).
        expect(rows.map((r) => [new Date(r.time).toISOString(), r.sensor, r.value, r.status])).toEqual([
          ["2026-11-20T13:15:00.000Z", "ha-1-temp", -18.5, null],
          ["2026-11-20T13:20:00.000Z", "ha-1-door", null, "open"],
          ["2026-11-20T13:45:30.000Z", "ha-1-temp", -17.25, null]
        ])
        expect(rows[0]!.metadata).toEqual({ battery: 87, rssi: -61 })
        const [equipment] = yield* sql`SELECT name, location, status, collection_interval, siren_active, siren_time
          FROM equipments WHERE uuid = 'ha-1'`
        expect(equipment).toEqual(haEquipmentRow)

        const [object] = (yield* storedObjects).filter((o) => o.key === response.json.claim_check)
        expect(object!.metadata).toMatchObject({
          "device-id": "ha-device",
          "original-size": String(Buffer.byteLength(json)),
          "items-count": "1",
          "sensors-count": "3"
        })
        const storedBytes = yield* ObjectStore.pipe(
          Effect.flatMap((s) => Stream.runCollect(s.get(object!.key))),
          Effect.map((chunks) => Buffer.concat(Chunk.toReadonlyArray(chunks)))
        )
        expect(gunzipSync(storedBytes).toString()).toBe(json)

        const raw = yield* getJson(
          "/api/v1/analytics/equipment/ha-1/history?period=raw&start_date=2026-11-20T00:00:00Z&end_date=2026-11-21T00:00:00Z"
        )
        expect(raw.status).toBe(200)
        expect(raw.json.data.map((r: any) => [r.time, r.sensor_uuid, r.sensor_type, r.value, r.status])).toEqual([
          ["2026-11-20T13:15:00.000000Z", "ha-1-temp", "temperature", -18.5, null],
          ["2026-11-20T13:20:00.000000Z", "ha-1-door", "door", null, "open"],
          ["2026-11-20T13:45:30.000000Z", "ha-1-temp", "temperature", -17.25, null]
        ])
        const hourly = yield* getJson(
          "/api/v1/analytics/equipment/ha-1/history?period=hour&start_date=2026-11-20T00:00:00Z&end_date=2026-11-21T00:00:00Z&sensor_type=temperature"
        )
        expect(hourly.json.data).toEqual([{
          time: "2026-11-20T13:00:00.000Z",
          sensor_uuid: "ha-1-temp",
          sensor_name: "Temperature",
          sensor_type: "temperature",
          sensor_unit: "°C",
          avg_value: -17.875,
          max_value: -17.25,
          min_value: -18.5,
          sample_count: 2,
          active_minutes: 2,
          stddev_value: expect.closeTo(1.25 / Math.SQRT2, 12),
          median_value: -17.875,
          p95_value: -17.3125,
          p99_value: -17.2625
        }])
      }))

    it.effect("a plain body is stored gzip-compressed; the Portuguese alias route works", () =>
      Effect.gen(function*() {
        const json = JSON.stringify(haPayload("plain-1"))
        const response = yield* post(json, {}, "/api/v1/telemetria/bulk")
        expect(response.status).toBe(202)
        yield* eventually(count("claim_ledger", `claim_id = '${response.json.claim_id}'`), (n) => n === 1)
        const storage = yield* ObjectStore
        const bytes = Buffer.concat(Chunk.toReadonlyArray(yield* Stream.runCollect(storage.get(response.json.claim_check))))
        expect(bytes[0]).toBe(0x1f)
        expect(gunzipSync(bytes).toString()).toBe(json)
        expect(yield* count("telemetry_data t JOIN equipments e ON e.id = t.equipment_id", "e.uuid = 'plain-1'")).toBe(3)
      }))

    it.effect("bad input gets 4xx with the path, and nothing is stored or loaded", () =>
      Effect.gen(function*() {
        const objectsBefore = (yield* storedObjects).length
        const claimsBefore = yield* count("claim_ledger")
        const valid = haPayload("bad-1")
        const withReading = (reading: Record<string, unknown>) => [{ ...valid[0], sensor: [reading] }]
        const cases: Array<[string, string | Buffer, Record<string, string>, number, string | undefined]> = [
          ["malformed JSON", '[{"equip_uuid": "x", ', {}, 400, undefined],
          ["gzip that is not gzip", "not gzip at all", { "content-encoding": "gzip" }, 400, undefined],
          ["not an array", JSON.stringify(valid[0]), {}, 400, undefined],
          ["empty array", "[]", {}, 400, undefined],
          ["missing equip_uuid", JSON.stringify([{ sensor: valid[0]!.sensor }]), {}, 400, "[0].equip_uuid"],
          ["empty sensor", JSON.stringify([{ equip_uuid: "e", sensor: [] }]), {}, 400, "[0].sensor"],
          [
            "missing sensor_uuid",
            JSON.stringify([valid[0], { ...valid[0], sensor: [valid[0]!.sensor[0], { valor: 1 }] }]),
            {},
            400,
            "[1].sensor[1].sensor_uuid"
          ],
          ["valor of the wrong type", JSON.stringify(withReading({ sensor_uuid: "s", valor: "hot" })), {}, 400, "[0].sensor[0].valor"],
          ["sensor not an array", JSON.stringify([{ equip_uuid: "e", sensor: {} }]), {}, 400, "[0].sensor"],
          [
            "bad reading time",
            JSON.stringify(withReading({ sensor_uuid: "s", valor: 1, sensor_datahora_coleta: "2026-02-30T10:00:00" })),
            {},
            400,
            "[0].sensor[0].sensor_datahora_coleta"
          ],
          ["content type", JSON.stringify(valid), { "content-type": "text/plain" }, 415, undefined],
          ["charset", JSON.stringify(valid), { "content-type": "application/json; charset=latin1" }, 415, undefined],
          ["content encoding", JSON.stringify(valid), { "content-encoding": "br" }, 415, undefined],
          ["body over the limit", "[" + " ".repeat(MAX_BODY) + "]", {}, 413, undefined],
          [
            "gzip body over the limit",
            // Valid items of incompressible text, each under the string limit: only the body's size is wrong.
            gzipSync(JSON.stringify(Array.from({ length: 96 }, () => ({
              equip_uuid: randomBytes(16 * 1024).toString("base64"),
              sensor: [{ sensor_uuid: "s", valor: 1 }]
            })))),
            { "content-encoding": "gzip" },
            413,
            undefined
          ],
          [
            "decompressed body over the limit",
            gzipSync("[" + " ".repeat(MAX_DECOMPRESSED) + "]"),
            { "content-encoding": "gzip" },
            413,
            undefined
          ]
        ]
        for (const [name, body, headers, status, path] of cases) {
          const response = yield* post(body, headers)
          expect([name, response.status]).toEqual([name, status])
          expect(response.json.error, name).toBeTypeOf("string")
          expect(response.json.message, name).toBeTypeOf("string")
          if (path !== undefined) expect([name, response.json.path]).toEqual([name, path])
        }
        // A valid request afterwards still works, and is the only thing that was stored and loaded; in ASCII, which
        // is UTF-8 as it is.
        const ok = yield* post(JSON.stringify(valid), { "content-type": "application/json; charset=US-ASCII" })
        expect(ok.status).toBe(202)
        yield* eventually(count("claim_ledger"), (n) => n === claimsBefore + 1)
        expect((yield* storedObjects).length).toBe(objectsBefore + 1)
        expect(yield* count("equipments", "uuid = 'e'")).toBe(0)
      }))

    it.effect("history validates its parameters", () =>
      Effect.gen(function*() {
        const path = "/api/v1/analytics/equipment/ha-1/history"
        const reversed = yield* getJson(`${path}?start_date=2026-11-21T00:00:00Z&end_date=2026-11-20T00:00:00Z`)
        expect(reversed.status).toBe(400)
        const badDate = yield* getJson(`${path}?start_date=yesterday`)
        expect([badDate.status, badDate.json.path]).toEqual([400, "start_date"])
        const badPeriod = yield* getJson(`${path}?period=week`)
        expect([badPeriod.status, badPeriod.json.path]).toEqual([400, "period"])
        const unknown = yield* getJson("/api/v1/analytics/equipment/nobody/history")
        expect([unknown.status, unknown.json.data]).toEqual([200, []])
        const health = yield* getJson("/api/v1/health")
        expect(health.json).toMatchObject({ status: "healthy" })
      }))
  })
})
