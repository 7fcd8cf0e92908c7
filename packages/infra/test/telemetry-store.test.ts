import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it, layer } from "@effect/vitest"
import { ClaimCheck, InvalidPayload, TelemetryStore } from "@telemetry/domain"
import type { Equipment, Reading, Sensor } from "@telemetry/domain"
import {
  claim,
  equipment,
  item,
  percentileCont,
  reading,
  sampleStddev,
  sensor,
  series,
  uid
} from "@telemetry/domain/testing"
import { Data, Deferred, Duration, Effect, Fiber, Layer, Ref, Schedule, Stream } from "effect"
import { randomUUID } from "node:crypto"
import { BulkCopy, copyTimestamp } from "../src/db/BulkCopy.js"
import * as ClaimAttempts from "../src/db/ClaimAttempts.js"
import * as DatabaseErrors from "../src/db/DatabaseErrors.js"
import * as SqlTelemetryStore from "../src/db/SqlTelemetryStore.js"
import { databases, migrated, postgres, storeOn } from "./support/databases.js"
import { dataOf, type DataRow } from "./support/testing.js"

const BATCH_READINGS = 3

// --- queries --------------------------------------------------------------------------------------------------

const sqlClient = SqlClient.SqlClient

const countOf = (equipUuid: string) =>
  Effect.flatMap(sqlClient, (sql) =>
    sql<{ n: number }>`SELECT count(*)::int AS n FROM telemetry_data t JOIN equipments e ON e.id = t.equipment_id
      WHERE e.uuid = ${equipUuid}`).pipe(Effect.map((rows) => rows[0]!.n))

const ledgerOf = (claimId: string) =>
  Effect.flatMap(sqlClient, (sql) =>
    sql<{ claim_id: string; object_key: string; tenant_id: string; request_id: string | null; items: number | null; readings: number | null }>`
      SELECT claim_id, object_key, tenant_id, request_id, items, readings FROM claim_ledger WHERE claim_id = ${claimId}`)

const equipmentRows = (equipUuid: string) =>
  Effect.flatMap(sqlClient, (sql) =>
    sql<{ tenant_id: string; name: string | null; location: string | null; status: string; collection_interval: number; siren_active: boolean; siren_time: number }>`
      SELECT tenant_id, name, location, status, collection_interval, siren_active, siren_time
      FROM equipments WHERE uuid = ${equipUuid} ORDER BY tenant_id`)

const sensorRow = (equipUuid: string, sensorUuid: string) =>
  Effect.flatMap(sqlClient, (sql) =>
    sql<Record<string, unknown>>`SELECT s.name, s.type, s.unit, s.status, s.manufacturer, s.model, s.firmware,
        s.hardware_id, s.via_hub
      FROM sensors s JOIN equipments e ON e.id = s.equipment_id
      WHERE e.uuid = ${equipUuid} AND s.uuid = ${sensorUuid}`).pipe(Effect.map((rows) => {
        expect(rows).toHaveLength(1)
        return rows[0]!
      }))

/** The store, and a new equipment's uuid (starting with `prefix`) with the uuid of a sensor of it. */
const freshEquipment = (prefix: string) =>
  Effect.map(TelemetryStore, (store) => {
    const eq = uid(prefix)
    return { store, eq, s: `${eq}-s` }
  })

const iso = (rows: ReadonlyArray<DataRow>) => rows.map((r) => new Date(r.time).toISOString())

describe("copyTimestamp", () => {
  it("writes the instant toISOString writes, with microseconds, in the form COPY reads", () => {
    let seed = 3
    const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000)
    const times = [0, 999_999, Date.UTC(2024, 1, 29, 23, 59, 59, 999) * 1000 + 999, Date.UTC(2099, 11, 31, 23, 59, 59, 999) * 1000 + 1]
    for (let k = 0; k < 2000; k++) times.push(Math.floor(random() * Date.UTC(2100, 0, 1) * 1000))
    for (const micros of times) {
      const iso = new Date(Math.floor(micros / 1000)).toISOString()
      const expected = iso.replace("T", " ").replace("Z", `${String(micros % 1000).padStart(3, "0")}+00`)
      expect(copyTimestamp(micros), String(micros)).toBe(expected)
    }
  })
})

/** A failure of the payload's stream part-way (storage cut off, say). */
class StreamCut extends Data.TaggedError("StreamCut")<{}> {}

describe.each(databases)("SqlTelemetryStore committing each batch on $name", (database) => {
  // Live services: a test waits for a batch's commit in real time.
  layer(storeOn(database, BATCH_READINGS, true), { timeout: 120_000, excludeTestServices: true })("one fresh database", (it) => {
    /** A claim of `readings` readings, as ingest counts them: more than one batch is committed batch by batch. */
    const claimOf = (readings: number) => {
      const c = claim()
      return new ClaimCheck({ ...c, metadata: { ...c.metadata, totalSensors: readings } })
    }
    /** Three items of one batch each, on one sensor of a new equipment. */
    const threeBatches = (prefix: string) =>
      Effect.map(freshEquipment(prefix), ({ eq, s, store }) => {
        const start = Date.UTC(2025, 7, 1)
        const all = series(s, 3 * BATCH_READINGS, start)
        const items = [0, 1, 2].map((k) =>
          item(equipment(eq), [sensor(s)], all.slice(k * BATCH_READINGS, (k + 1) * BATCH_READINGS))
        )
        return { store, eq, items, days: [Math.floor(start / 86_400_000)], earliest: start }
      })
    /** A stream of `items` whose runs after the first are `later` (the first run is the check of the payload). */
    const secondRun = <E>(items: ReadonlyArray<ReturnType<typeof item>>, later: Stream.Stream<ReturnType<typeof item>, E>) =>
      Effect.map(Ref.make(0), (runs) =>
        Stream.unwrap(Effect.map(Ref.getAndUpdate(runs, (n) => n + 1), (run) => (run === 0 ? Stream.fromIterable(items) : later))))
    const ledger = (claimId: string) =>
      Effect.flatMap(sqlClient, (sql) =>
        sql<{ partial: boolean; items: number; readings: number; duplicates: number }>`SELECT partial, items, readings,
          duplicates FROM claim_ledger WHERE claim_id = ${claimId}`)

    it.effect("between batches the session is free: others see the claim partial, loaded only once its last batch is", () =>
      Effect.gen(function*() {
        const { days, earliest, eq, items, store } = yield* threeBatches("eq-batches")
        const gate = yield* Deferred.make<void>()
        // A batch is cut when the next item comes: the load holds its first batch's commit while waiting for the third.
        const stream = yield* secondRun(items, Stream.concat(
          Stream.fromIterable(items.slice(0, 2)),
          Stream.concat(Stream.fromEffect(Deferred.await(gate)).pipe(Stream.drain), Stream.fromIterable(items.slice(2)))
        ))
        const c = claimOf(3 * BATCH_READINGS)
        const loading = yield* Effect.fork(store.load(c, stream))

        // Answered while the claim is loading (on the embedded database, only if the load let go of its session).
        const [partway] = yield* ledger(c.claim_id).pipe(
          Effect.filterOrFail((rows) => (rows[0]?.readings ?? 0) > 0, () => new Error("no batch committed apart")),
          Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo(Duration.seconds(20))))
        )
        expect(partway).toEqual({ partial: true, items: 1, readings: BATCH_READINGS, duplicates: 0 })
        expect(yield* countOf(eq)).toBe(BATCH_READINGS)
        expect(yield* store.loadedClaims([c.claim_id])).toEqual(new Set())

        yield* Deferred.succeed(gate, undefined)
        expect(yield* loading).toEqual({ _tag: "Loaded", items: 3, readings: 3 * BATCH_READINGS, duplicates: 0, expired: 0, days, earliest })
        expect(yield* ledger(c.claim_id)).toEqual([{ partial: false, items: 3, readings: 3 * BATCH_READINGS, duplicates: 0 }])
        expect(yield* countOf(eq)).toBe(3 * BATCH_READINGS)
        expect(yield* store.loadedClaims([c.claim_id])).toEqual(new Set([c.claim_id]))
        expect(yield* store.load(c, Stream.fromIterable(items))).toEqual({ _tag: "AlreadyLoaded", days })
      }))

    it.effect("a delivery stopped part-way is resumed by the next: only the rest is loaded, the totals those of one load", () =>
      Effect.gen(function*() {
        const { days, earliest, eq, items, store } = yield* threeBatches("eq-resume")
        const c = claimOf(3 * BATCH_READINGS)
        const cut = yield* secondRun(items, Stream.concat(Stream.fromIterable(items), Stream.fail(new StreamCut())))
        expect(yield* Effect.flip(store.load(c, cut))).toBeInstanceOf(StreamCut)
        // The two batches completed before the cut were committed; the third, waiting for the stream's end, was not.
        expect(yield* ledger(c.claim_id)).toEqual([{ partial: true, items: 2, readings: 2 * BATCH_READINGS, duplicates: 0 }])
        expect(yield* countOf(eq)).toBe(2 * BATCH_READINGS)

        // No duplicates: the readings of the committed batches were skipped, not loaded again.
        expect(yield* store.load(c, Stream.fromIterable(items))).toEqual({
          _tag: "Loaded",
          items: 3,
          readings: 3 * BATCH_READINGS,
          duplicates: 0,
          expired: 0,
          days,
          earliest
        })
        expect(yield* countOf(eq)).toBe(3 * BATCH_READINGS)
        expect((yield* dataOf(eq)).map((r) => r.value)).toEqual(Array.from({ length: 3 * BATCH_READINGS }, (_, k) => k))
      }))

    it.effect("expired readings are counted once across a delivery stopped part-way and the one that resumes it", () =>
      Effect.gen(function*() {
        const { days, earliest, eq, items, store } = yield* threeBatches("eq-expired")
        // Each batch's item with readings older than the retention too, left out by the decoder (keepFrom).
        const withExpired = items.map((i, k) => ({ ...i, expired: k + 1 }))
        const c = claimOf(3 * BATCH_READINGS + 6)
        const cut = yield* secondRun(withExpired, Stream.concat(Stream.fromIterable(withExpired), Stream.fail(new StreamCut())))
        expect(yield* Effect.flip(store.load(c, cut))).toBeInstanceOf(StreamCut)
        const expiredOf = Effect.flatMap(sqlClient, (sql) =>
          sql<{ expired: number }>`SELECT expired FROM claim_ledger WHERE claim_id = ${c.claim_id}`)
        expect(yield* expiredOf).toEqual([{ expired: 1 + 2 }])

        expect(yield* store.load(c, Stream.fromIterable(withExpired))).toEqual({
          _tag: "Loaded",
          items: 3,
          readings: 3 * BATCH_READINGS,
          duplicates: 0,
          expired: 1 + 2 + 3,
          days,
          earliest
        })
        expect(yield* expiredOf).toEqual([{ expired: 6 }])
        expect((yield* dataOf(eq)).map((r) => r.value)).toEqual(Array.from({ length: 3 * BATCH_READINGS }, (_, k) => k))
      }))

    it.effect("a delivery that commits a batch was no crash, nor were the deliveries before it: their counts are dropped", () =>
      Effect.gen(function*() {
        const { items, store } = yield* threeBatches("eq-progress")
        const c = claimOf(3 * BATCH_READINGS)
        // Two deliveries that took their process down, and this one.
        for (let k = 0; k < 3; k++) yield* ClaimAttempts.begin(c.claim_id)
        expect(yield* store.load(c, Stream.fromIterable(items))).toMatchObject({ _tag: "Loaded", readings: 3 * BATCH_READINGS })
        const [row] = yield* Effect.flatMap(sqlClient, (sql) =>
          sql<{ attempts: number }>`SELECT attempts FROM claim_attempts WHERE claim_id = ${c.claim_id}`)
        expect(row).toEqual({ attempts: 1 })
      }))

    it.effect("a payload failing part-way stores nothing, not even the batches before the failure", () =>
      Effect.gen(function*() {
        const { eq, items, store } = yield* threeBatches("eq-invalid")
        const c = claimOf(3 * BATCH_READINGS)
        const invalid = Stream.concat(Stream.fromIterable(items), Stream.fail(new InvalidPayload({ message: "x", path: "[3]" })))
        expect(yield* Effect.flip(store.load(c, invalid))).toMatchObject({ _tag: "InvalidPayload", path: "[3]" })
        expect(yield* ledger(c.claim_id)).toEqual([])
        expect(yield* countOf(eq)).toBe(0)
        expect(yield* equipmentRows(eq)).toEqual([])
      }))

    it.effect("a resend's readings stored already are counted as duplicates, across its batches", () =>
      Effect.gen(function*() {
        const { eq, items, store } = yield* threeBatches("eq-batch-resend")
        yield* store.load(claimOf(BATCH_READINGS), Stream.fromIterable(items.slice(1, 2)))
        const outcome = yield* store.load(claimOf(3 * BATCH_READINGS), Stream.fromIterable(items))
        expect(outcome).toMatchObject({ _tag: "Loaded", items: 3, readings: 3 * BATCH_READINGS, duplicates: BATCH_READINGS })
        expect(yield* countOf(eq)).toBe(3 * BATCH_READINGS)
      }))
  })
})

describe.each(databases)("SqlTelemetryStore on $name", (database) => {
  it.layer(storeOn(database, BATCH_READINGS), { timeout: 120_000 })("one fresh database", (it) => {
    it.effect("a load spanning several COPY batches stores every reading exactly once", () =>
      Effect.gen(function*() {
        const store = yield* TelemetryStore
        const eqA = uid("eq-a")
        const eqB = uid("eq-b")
        const start = Date.UTC(2025, 0, 15, 8, 0, 0)
        // 4 + 2 + 5 + 1 = 12 readings, batches of 3: several batches, items larger than a batch, an equipment
        // appearing in more than one item.
        const items = [
          item(equipment(eqA), [sensor(`${eqA}-t`, { type: "temperature" })], series(`${eqA}-t`, 4, start)),
          item(equipment(eqB), [sensor(`${eqB}-t`), sensor(`${eqB}-d`)], [
            reading(`${eqB}-t`, start, 1.5, { metadata: JSON.stringify({ battery: 87, rssi: -61 }) }),
            reading(`${eqB}-d`, start + 1000, null, { status: "open" })
          ]),
          item(equipment(eqA), [sensor(`${eqA}-t`, { type: "temperature" })], series(`${eqA}-t`, 5, start + 4 * 60_000)),
          item(equipment(eqB), [sensor(`${eqB}-t`)], [reading(`${eqB}-t`, start + 60_000, -0.25)])
        ]
        const c = claim({ requestId: "req-multi" })
        const outcome = yield* store.load(c, Stream.fromIterable(items))
        expect(outcome).toEqual({
          _tag: "Loaded",
          items: 4,
          readings: 12,
          duplicates: 0,
          expired: 0,
          days: [Math.floor(start / 86_400_000)],
          earliest: start
        })

        const a = yield* dataOf(eqA)
        expect(a).toHaveLength(9)
        expect(a.map((r) => r.value)).toEqual([0, 1, 2, 3, 0, 1, 2, 3, 4])
        expect(iso(a)).toEqual(Array.from({ length: 9 }, (_, k) => new Date(start + k * 60_000).toISOString()))
        expect(a.every((r) => r.sensor === `${eqA}-t` && r.status === null && r.metadata === null)).toBe(true)

        const b = yield* dataOf(eqB)
        expect(b.map((r) => [new Date(r.time).toISOString(), r.sensor, r.value, r.status, r.metadata])).toEqual([
          [new Date(start).toISOString(), `${eqB}-t`, 1.5, null, { battery: 87, rssi: -61 }],
          [new Date(start + 1000).toISOString(), `${eqB}-d`, null, "open", null],
          [new Date(start + 60_000).toISOString(), `${eqB}-t`, -0.25, null, null]
        ])

        const sql = yield* sqlClient
        const [counts] = yield* sql<{ equipments: number; sensors: number }>`SELECT
          (SELECT count(*)::int FROM equipments WHERE uuid IN (${eqA}, ${eqB})) AS equipments,
          (SELECT count(*)::int FROM sensors s JOIN equipments e ON e.id = s.equipment_id
            WHERE e.uuid IN (${eqA}, ${eqB})) AS sensors`
        expect(counts).toEqual({ equipments: 2, sensors: 3 })
        expect(yield* sensorRow(eqB, `${eqB}-t`)).toMatchObject({ type: "unknown" })
        expect(yield* sensorRow(eqA, `${eqA}-t`)).toMatchObject({ type: "temperature" })

        expect(yield* ledgerOf(c.claim_id)).toEqual([{
          claim_id: c.claim_id,
          object_key: c.claim_check,
          tenant_id: "default",
          request_id: "req-multi",
          items: 4,
          readings: 12
        }])
      }))

    it.effect("values, times, statuses and metadata are stored as given", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-values")
        const readings = [
          reading(s, "2025-02-01T00:00:00.001Z", 0.1 + 0.2),
          reading(s, "2025-02-01T00:00:01.999Z", -1e-7),
          reading(s, "2025-02-01T00:00:02.000Z", 1.5e100),
          reading(s, "2025-02-01T00:00:03.000Z", 0),
          reading(s, "2025-02-01T00:00:04.000Z", null, { status: "closed" }),
          reading(s, "2025-02-01T00:00:05.000Z", 12, {
            metadata: JSON.stringify({ battery: 55.5, rssi: -70, lqi: 120, battery_voltage: 3.01 })
          })
        ]
        yield* store.load(claim(), Stream.make(item(equipment(eq), [sensor(s)], readings)))
        const rows = yield* dataOf(eq)
        expect(rows.map((r) => [new Date(r.time).toISOString(), r.value, r.status, r.metadata])).toEqual([
          ["2025-02-01T00:00:00.001Z", 0.30000000000000004, null, null],
          ["2025-02-01T00:00:01.999Z", -1e-7, null, null],
          ["2025-02-01T00:00:02.000Z", 1.5e100, null, null],
          ["2025-02-01T00:00:03.000Z", 0, null, null],
          ["2025-02-01T00:00:04.000Z", null, "closed", null],
          ["2025-02-01T00:00:05.000Z", 12, null, { battery: 55.5, rssi: -70, lqi: 120, battery_voltage: 3.01 }]
        ])
      }))

    it.effect("a claim loaded twice loads once: the second load answers AlreadyLoaded", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-twice")
        const items = [item(equipment(eq), [sensor(s)], series(s, 7))]
        const c = claim()
        const first = yield* store.load(c, Stream.fromIterable(items))
        expect(first).toMatchObject({ _tag: "Loaded", items: 1, readings: 7 })
        expect(yield* countOf(eq)).toBe(7)

        // The same claim again, even with different content, is not loaded a second time; the time range of
        // its readings is answered as its load recorded it (for the late-data refresh of a redelivery).
        const more = [...items, item(equipment(eq), [sensor(s)], series(s, 2, Date.UTC(2025, 5, 1)))]
        expect(yield* store.load(c, Stream.fromIterable(more))).toEqual({
          _tag: "AlreadyLoaded",
          days: first._tag === "Loaded" ? first.days : "not loaded"
        })
        expect(yield* countOf(eq)).toBe(7)
        expect(yield* ledgerOf(c.claim_id)).toMatchObject([{ items: 1, readings: 7 }])

        // A claim rebuilt from its JSON (as the worker gets it from the queue) is the same claim.
        const copy = new ClaimCheck({ ...c })
        expect(yield* store.load(copy, Stream.fromIterable(items))).toMatchObject({ _tag: "AlreadyLoaded" })
        expect(yield* countOf(eq)).toBe(7)
      }))

    it.effect("the same claim loaded concurrently loads once", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-concurrent")
        const items = [item(equipment(eq), [sensor(s)], series(s, 5))]
        const c = claim()
        const outcomes = yield* Effect.all(
          Array.from({ length: 4 }, () => store.load(c, Stream.fromIterable(items))),
          { concurrency: "unbounded" }
        )
        expect(outcomes.filter((o) => o._tag === "Loaded")).toHaveLength(1)
        expect(outcomes.filter((o) => o._tag === "AlreadyLoaded")).toHaveLength(3)
        expect(yield* countOf(eq)).toBe(5)
      }))

    it.effect("a reading is stored once whatever claims bring it: a resend stores only its new readings, the first value wins", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-resend")
        const start = Date.UTC(2025, 3, 1, 8)
        const first = item(equipment(eq), [sensor(s)], series(s, 5, start))
        expect(yield* store.load(claim(), Stream.make(first))).toMatchObject({ readings: 5, duplicates: 0 })
        // A resend with the same five readings (other values: the first stored wins) and three new ones, in a
        // claim of its own, as a device that never saw its acknowledgement sends them.
        const resent = item(equipment(eq), [sensor(s)], [
          ...series(s, 5, start).map((r) => ({ ...r, value: (r.value ?? 0) + 100 })),
          ...series(s, 3, start + 5 * 60_000)
        ])
        const c = claim()
        expect(yield* store.load(c, Stream.make(resent))).toMatchObject({ _tag: "Loaded", readings: 8, duplicates: 5 })
        const rows = yield* dataOf(eq)
        expect(rows.map((r) => r.value)).toEqual([0, 1, 2, 3, 4, 0, 1, 2])
        expect(rows.map((r) => new Date(r.time).getTime())).toEqual(Array.from({ length: 8 }, (_, k) => start + k * 60_000))
        const [ledger] = yield* Effect.flatMap(sqlClient, (sql) =>
          sql<{ readings: number; duplicates: number }>`SELECT readings, duplicates FROM claim_ledger WHERE claim_id = ${c.claim_id}`)
        expect(ledger).toEqual({ readings: 8, duplicates: 5 })
      }))

    it.effect("a reading repeated within one claim, across its batches, is stored once", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-repeat")
        const readings = series(s, 2 * BATCH_READINGS, Date.UTC(2025, 3, 2))
        const outcome = yield* store.load(claim(), Stream.make(item(equipment(eq), [sensor(s)], [...readings, ...readings])))
        expect(outcome).toMatchObject({ readings: 4 * BATCH_READINGS, duplicates: 2 * BATCH_READINGS })
        expect(yield* countOf(eq)).toBe(2 * BATCH_READINGS)
      }))

    it.effect("overlapping claims loaded at the same time store each reading once", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-overlap")
        const start = Date.UTC(2025, 3, 3)
        // Four claims, each with readings 0..9 shifted by 3 per claim: 19 distinct instants in all.
        const claims = Array.from({ length: 4 }, (_, k) => item(equipment(eq), [sensor(s)], series(s, 10, start + 3 * k * 60_000)))
        const outcomes = yield* Effect.all(claims.map((i) => store.load(claim(), Stream.make(i))), { concurrency: "unbounded" })
        expect(outcomes.reduce((n, o) => n + (o._tag === "Loaded" ? o.readings - o.duplicates : 0), 0)).toBe(19)
        expect(yield* countOf(eq)).toBe(19)
      }))

    it.effect("reading times keep their microseconds", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-micros")
        const at = Date.UTC(2026, 11, 3, 0, 15, 19) * 1000 + 700_760
        const r = { ...reading(s, 0, 1), timeMicros: at }
        yield* store.load(claim(), Stream.make(item(equipment(eq), [sensor(s)], [r, { ...r, timeMicros: at + 1, value: 2 }])))
        const rows = yield* Effect.flatMap(sqlClient, (sql) =>
          sql<{ at: string }>`SELECT to_char(t.time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS at
            FROM telemetry_data t JOIN equipments e ON e.id = t.equipment_id WHERE e.uuid = ${eq} ORDER BY t.time`)
        expect(rows.map((row) => row.at)).toEqual(["2026-12-03T00:15:19.700760", "2026-12-03T00:15:19.700761"])
      }))

    it.effect("a stream failing part-way loads nothing and leaves no ledger row; the claim loads afterwards", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-fail")
        const eqLater = uid("eq-fail-later")
        const first = item(equipment(eq), [sensor(s)], series(s, 2))
        // More readings than one batch before the failure: batches may already be written when it comes.
        const second = item(equipment(eqLater), [sensor(`${eqLater}-s`)], series(`${eqLater}-s`, 4))
        const c = claim()
        const failing = Stream.concat(
          Stream.make(first, second),
          Stream.fail(new InvalidPayload({ message: "x", path: "[2].sensor[0].sensor_uuid" }))
        )
        const error = yield* Effect.flip(store.load(c, failing))
        expect(error).toBeInstanceOf(InvalidPayload)
        expect(error).toMatchObject({ _tag: "InvalidPayload", message: "x" })

        expect(yield* ledgerOf(c.claim_id)).toEqual([])
        expect(yield* countOf(eq)).toBe(0)
        expect(yield* countOf(eqLater)).toBe(0)
        expect(yield* equipmentRows(eq)).toEqual([])
        expect(yield* equipmentRows(eqLater)).toEqual([])
        expect(yield* store.loadedClaims([c.claim_id])).toEqual(new Set())

        // Nothing of the failed attempt is left over: the same claim loads whole afterwards.
        expect(yield* store.load(c, Stream.make(first, second))).toMatchObject({ _tag: "Loaded", items: 2, readings: 6 })
        expect(yield* countOf(eq)).toBe(2)
        expect(yield* countOf(eqLater)).toBe(4)
        expect(yield* ledgerOf(c.claim_id)).toMatchObject([{ items: 2, readings: 6 }])
      }))

    it.effect("a database error part-way fails with LoadError and loads nothing", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-dberr")
        const bad = uid("eq-dberr-bad")
        const c = claim()
        const items = Stream.make(
          item(equipment(eq), [sensor(s)], series(s, 4)),
          // collection_interval is an integer column: this one is out of its range.
          item(equipment(bad, { collectionInterval: 2 ** 40 }), [sensor(`${bad}-s`)], series(`${bad}-s`, 1))
        )
        const error = yield* Effect.flip(store.load(c, items))
        expect(error).toMatchObject({ _tag: "LoadError", claimId: c.claim_id })
        expect(yield* ledgerOf(c.claim_id)).toEqual([])
        expect(yield* countOf(eq)).toBe(0)
        expect(yield* equipmentRows(eq)).toEqual([])
      }))

    it.effect("loadedClaims answers exactly the loaded claims among those asked", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-ledger")
        const loaded = [claim(), claim(), claim()]
        for (const c of loaded) {
          yield* store.load(c, Stream.make(item(equipment(eq), [sensor(s)], series(s, 1))))
        }
        const failed = claim()
        yield* Effect.exit(store.load(failed, Stream.fail(new InvalidPayload({ message: "x" }))))
        const never = randomUUID()

        const answer = yield* store.loadedClaims([loaded[0]!.claim_id, never, loaded[2]!.claim_id, failed.claim_id])
        expect(answer).toEqual(new Set([loaded[0]!.claim_id, loaded[2]!.claim_id]))
        expect(yield* store.loadedClaims(loaded.map((c) => c.claim_id))).toEqual(new Set(loaded.map((c) => c.claim_id)))
        expect(yield* store.loadedClaims([never])).toEqual(new Set())
        expect(yield* store.loadedClaims([])).toEqual(new Set())
      }))

    it.effect("equipment attributes: a later null keeps the stored value, a changed value updates it", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-attrs")
        const load = (e: Equipment) =>
          store.load(claim(), Stream.make(item(e, [sensor(s)], [reading(s, Date.UTC(2025, 0, 1), 1)])))

        // The row of `equipments` holding `e`'s attributes.
        const rowOf = (e: Equipment) => ({
          tenant_id: "default",
          name: e.name,
          location: e.location,
          status: e.status,
          collection_interval: e.collectionInterval,
          siren_active: e.sirenActive,
          siren_time: e.sirenTime
        })

        const first = equipment(eq, { name: "Freezer 1", location: "Kitchen", status: "active", collectionInterval: 30, sirenActive: true, sirenTime: 90 })
        yield* load(first)
        expect(yield* equipmentRows(eq)).toEqual([rowOf(first)])

        yield* load({ ...first, name: null, location: null })
        expect(yield* equipmentRows(eq)).toEqual([rowOf(first)])

        const changed = equipment(eq, { name: "Freezer 2", location: null, status: "blocked", collectionInterval: 45, sirenActive: false, sirenTime: 10 })
        yield* load(changed)
        expect(yield* equipmentRows(eq)).toEqual([rowOf({ ...changed, location: "Kitchen" })])
      }))

    it.effect("sensor attributes: a later null keeps the stored value, a changed value updates it", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-sensor-attrs")
        const load = (attrs: Partial<Sensor>) =>
          store.load(claim(), Stream.make(item(equipment(eq), [sensor(s, attrs)], [reading(s, Date.UTC(2025, 0, 1), 1)])))

        yield* load({})
        expect(yield* sensorRow(eq, s)).toEqual({
          name: null,
          type: "unknown",
          unit: null,
          status: null,
          manufacturer: null,
          model: null,
          firmware: null,
          hardware_id: null,
          via_hub: null
        })

        const full = {
          name: "Temperature",
          type: "temperature",
          unit: "°C",
          status: "ok",
          manufacturer: "Acme",
          model: "T-1",
          firmware: "1.0.0",
          hardwareId: "hw-1",
          viaHub: "true"
        }
        yield* load(full)
        // The same values, under the columns' names.
        const { hardwareId, viaHub, ...named } = full
        const stored = { ...named, hardware_id: hardwareId, via_hub: viaHub }
        expect(yield* sensorRow(eq, s)).toEqual(stored)

        // Nothing told: everything stays, including the type (not reset to "unknown").
        yield* load({})
        expect(yield* sensorRow(eq, s)).toEqual(stored)

        yield* load({ firmware: "1.1.0", status: "low battery", name: null, type: null })
        expect(yield* sensorRow(eq, s)).toEqual({ ...stored, firmware: "1.1.0", status: "low battery" })
      }))

    it.effect("attributes of a sensor seen in several items of one claim do not depend on batching", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-merge")
        // Two items of one claim, small enough to share one batch: the first tells the manufacturer and the
        // equipment name, the second does not (null = not carried). Loading them in order must keep both, as it
        // does when they land in different batches (or different claims).
        const items = Stream.make(
          item(equipment(eq, { name: "Freezer", location: "Lab" }), [sensor(s, { manufacturer: "Acme", model: "T-1" })],
            [reading(s, Date.UTC(2025, 0, 1, 0, 0), 1)]),
          item(equipment(eq, { name: null, location: null }), [sensor(s, { model: "T-2" })],
            [reading(s, Date.UTC(2025, 0, 1, 0, 1), 2)])
        )
        expect(yield* store.load(claim(), items)).toMatchObject({ _tag: "Loaded", items: 2, readings: 2 })
        expect.soft(yield* sensorRow(eq, s)).toMatchObject({ manufacturer: "Acme", model: "T-2" })
        expect.soft(yield* equipmentRows(eq)).toMatchObject([{ name: "Freezer", location: "Lab" }])

        // The same items, each filling a batch of its own, give that result.
        const eq2 = uid("eq-merge-apart")
        const s2 = `${eq2}-s`
        const apart = Stream.make(
          item(equipment(eq2, { name: "Freezer", location: "Lab" }), [sensor(s2, { manufacturer: "Acme", model: "T-1" })],
            series(s2, BATCH_READINGS, Date.UTC(2025, 0, 1, 0, 0))),
          item(equipment(eq2, { name: null, location: null }), [sensor(s2, { model: "T-2" })],
            series(s2, BATCH_READINGS, Date.UTC(2025, 0, 1, 1, 0)))
        )
        expect(yield* store.load(claim(), apart)).toMatchObject({ _tag: "Loaded", items: 2, readings: 2 * BATCH_READINGS })
        expect(yield* sensorRow(eq2, s2)).toMatchObject({ manufacturer: "Acme", model: "T-2" })
        expect(yield* equipmentRows(eq2)).toMatchObject([{ name: "Freezer", location: "Lab" }])
      }))

    it.effect("an equipment and a sensor named again batch after batch end with the latest attributes", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-again")
        // Each item fills a batch of its own. The third changes the attributes and the fourth changes them back,
        // to what the first two wrote: the load must write them again, whatever it skipped in between.
        const first = { e: equipment(eq, { name: "Freezer", status: "active" }), s: sensor(s, { model: "T-1" }) }
        const changed = { e: equipment(eq, { name: null, status: "blocked" }), s: sensor(s, { model: "T-2" }) }
        const batches = [first, first, changed, first].map((x, k) =>
          item(x.e, [x.s], series(s, BATCH_READINGS, Date.UTC(2025, 0, 1, k, 0))))
        expect(yield* store.load(claim(), Stream.fromIterable(batches))).toMatchObject({ _tag: "Loaded", items: 4 })
        expect(yield* equipmentRows(eq)).toMatchObject([{ name: "Freezer", status: "active" }])
        expect(yield* sensorRow(eq, s)).toMatchObject({ model: "T-1" })
        expect(yield* countOf(eq)).toBe(4 * BATCH_READINGS)
      }))

    it.effect("equipments are per tenant", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-tenant")
        yield* store.load(claim({ tenantId: "t1" }), Stream.make(item(equipment(eq, { name: "One" }), [sensor(s)], series(s, 2))))
        yield* store.load(claim({ tenantId: "t2" }), Stream.make(item(equipment(eq, { name: "Two" }), [sensor(s)], series(s, 3))))
        expect((yield* equipmentRows(eq)).map((r) => [r.tenant_id, r.name])).toEqual([["t1", "One"], ["t2", "Two"]])
        expect(yield* dataOf(eq, "t1")).toHaveLength(2)
        expect(yield* dataOf(eq, "t2")).toHaveLength(3)
      }))

    it.effect("loading known equipments and sensors again takes no ids: their sequences would run out", () =>
      Effect.gen(function*() {
        const { eq, s, store } = yield* freshEquipment("eq-ids")
        const sensors = [s, `${s}-2`, `${s}-3`]
        const load = (uuids: ReadonlyArray<string>) =>
          store.load(claim(), Stream.make(item(equipment(eq), uuids.map((u) => sensor(u)), uuids.flatMap((u) => series(u, 2)))))
        const lastIds = Effect.flatMap(sqlClient, (sql) =>
          sql<{ equipments: string; sensors: string }>`SELECT (SELECT last_value FROM equipments_id_seq)::text AS equipments,
            (SELECT last_value FROM sensors_id_seq)::text AS sensors`).pipe(Effect.map((rows) => rows[0]!))
        yield* load(sensors)
        const before = yield* lastIds
        for (let k = 0; k < 5; k++) yield* load(sensors)
        expect(yield* lastIds).toEqual(before)
        yield* load([...sensors, `${s}-4`])
        expect(yield* lastIds).toEqual({ ...before, sensors: String(Number(before.sensors) + 1) })
      }))

    it.effect("a claim taking its tenant past its equipments or sensors limit loads nothing, refused for good; others load", () =>
      Effect.gen(function*() {
        const store = yield* SqlTelemetryStore.make({ batchReadings: BATCH_READINGS, maxEquipmentsPerTenant: 2, maxSensorsPerTenant: 3 })
        const tenantId = uid("limited")
        const [e1, e2, e3] = [uid("lim-e1"), uid("lim-e2"), uid("lim-e3")]
        const load = (tenant: string, eq: string, sensors: ReadonlyArray<string>) =>
          store.load(claim({ tenantId: tenant }), Stream.make(item(equipment(eq), sensors.map((s) => sensor(s)), sensors.flatMap((s) => series(s, 2)))))

        expect((yield* load(tenantId, e1, [`${e1}-a`, `${e1}-b`]))._tag).toBe("Loaded")
        // Four sensors, one more than its limit: nothing of it is stored, and loading it again will not help.
        const overSensors = yield* Effect.flip(load(tenantId, e2, [`${e2}-a`, `${e2}-b`]))
        expect([overSensors._tag, overSensors.transient]).toEqual(["LoadError", false])
        expect(overSensors.message).toBe(
          `tenant "${tenantId}" would have 4 sensors, over its limit of 3 (MAX_SENSORS_PER_TENANT): its load is refused (on ` +
            "the embedded database, after the batches it committed before this one); raise the limit and replay the claim to load it"
        )
        expect(yield* equipmentRows(e2)).toEqual([])
        // New ones within the limits load; known ones as ever.
        expect((yield* load(tenantId, e2, [`${e2}-a`]))._tag).toBe("Loaded")
        expect((yield* load(tenantId, e1, [`${e1}-a`]))._tag).toBe("Loaded")
        expect(yield* dataOf(e2, tenantId)).toHaveLength(2)
        // The refused claim wrote nothing, not even rows rolled back: the ids after the first claim's went to the next.
        const ids = yield* Effect.flatMap(sqlClient, (sql) =>
          sql<{ uuid: string; id: number }>`SELECT uuid, id FROM equipments WHERE uuid IN (${e1}, ${e2})
            UNION ALL SELECT s.uuid, s.id FROM sensors s WHERE s.uuid IN (${`${e1}-b`}, ${`${e2}-a`})`)
        const idOf = (uuid: string) => ids.find((row) => row.uuid === uuid)!.id
        expect([idOf(e2) - idOf(e1), idOf(`${e2}-a`) - idOf(`${e1}-b`)]).toEqual([1, 1])
        const overEquipments = yield* Effect.flip(load(tenantId, e3, [`${e3}-a`]))
        expect(overEquipments.message).toContain(`would have 3 equipments, over its limit of 2 (MAX_EQUIPMENTS_PER_TENANT)`)
        expect(yield* dataOf(e3, tenantId)).toEqual([])
        // Another tenant has limits of its own.
        expect((yield* load(uid("other"), e3, [`${e3}-a`]))._tag).toBe("Loaded")
      }))

    it.effect("status text with tabs, newlines, backslashes and COPY markers round-trips", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-copy")
        const statuses = [
          "a\tb",
          "line1\nline2",
          "back\\slash",
          "\\N",
          "\\.",
          "cr\r\nlf",
          "trailing\\",
          "\\t not a tab",
          "",
          "ünï €😀 日本語",
          "mixed\t\\\n\r\\N\\\\"
        ]
        const t0 = Date.UTC(2025, 3, 1)
        const readings = statuses.map((status, k) => reading(s, t0 + k * 1000, k, { status }))
        yield* store.load(
          claim(),
          Stream.make(item(equipment(eq, { name: "tab\there", location: "new\nline \\ slash" }), [
            sensor(s, { name: "weird\tname\\", model: "\\N" })
          ], readings))
        )
        const rows = yield* dataOf(eq)
        expect(rows.map((r) => r.status)).toEqual(statuses)
        expect(rows.map((r) => r.value)).toEqual(statuses.map((_, k) => k))
        expect(yield* equipmentRows(eq)).toMatchObject([{ name: "tab\there", location: "new\nline \\ slash" }])
        expect(yield* sensorRow(eq, s)).toMatchObject({ name: "weird\tname\\", model: "\\N" })
      }))

    it.effect("telemetry_hourly shows freshly loaded readings without a refresh (real-time aggregation)", () =>
      Effect.gen(function*() {
        const store = yield* TelemetryStore
        const sql = yield* sqlClient
        const eq = uid("eq-hourly")
        const temp = `${eq}-temp`
        const door = `${eq}-door`
        const h10 = Date.UTC(2025, 4, 20, 10, 0, 0)
        const h11 = Date.UTC(2025, 4, 20, 11, 0, 0)
        const at = (hour: number, minute: number, second = 0) => hour + minute * 60_000 + second * 1000
        const tempReadings = [
          reading(temp, at(h10, 0, 5), -18.5),
          reading(temp, at(h10, 0, 40), -17.5), // same minute as the one above
          reading(temp, at(h10, 15), -20),
          reading(temp, at(h10, 30), -16.25),
          reading(temp, at(h10, 59, 59), -19),
          reading(temp, at(h10, 45), null, { status: "defrost" }), // counted as a sample, not a value
          reading(temp, at(h11, 0), 4),
          reading(temp, at(h11, 10), 6)
        ]
        const doorReadings = [
          reading(door, at(h10, 20), null, { status: "open" }),
          reading(door, at(h10, 21), null, { status: "closed" })
        ]
        yield* store.load(
          claim(),
          Stream.make(item(equipment(eq), [sensor(temp), sensor(door)], [...tempReadings, ...doorReadings]))
        )

        const rows = yield* sql<{
          bucket: Date
          sensor: string
          avg_value: number | null
          min_value: number | null
          max_value: number | null
          sample_count: number
          value_count: number
          active_minutes: number
          median_value: number | null
          p95_value: number | null
          stddev_value: number | null
        }>`SELECT h.bucket, s.uuid AS sensor, h.avg_value, h.min_value, h.max_value, h.sample_count::int AS sample_count,
            h.value_count::int AS value_count, h.active_minutes::int AS active_minutes, h.median_value, h.p95_value,
            h.stddev_value
          FROM telemetry_hourly h JOIN sensors s ON s.id = h.sensor_id JOIN equipments e ON e.id = h.equipment_id
          WHERE e.uuid = ${eq}
          ORDER BY s.uuid, h.bucket`

        const expected = (sensorUuid: string, bucket: number, readings: ReadonlyArray<Reading>) => {
          const values = readings.map((r) => r.value).filter((v): v is number => v !== null)
          const minutes = new Set(readings.map((r) => Math.floor(r.timeMicros / 60_000_000)))
          return {
            bucket: new Date(bucket).toISOString(),
            sensor: sensorUuid,
            avg_value: values.length ? values.reduce((a, b) => a + b, 0) / values.length : null,
            min_value: values.length ? Math.min(...values) : null,
            max_value: values.length ? Math.max(...values) : null,
            sample_count: readings.length,
            value_count: values.length,
            active_minutes: minutes.size,
            median_value: percentileCont(values, 0.5),
            p95_value: percentileCont(values, 0.95),
            stddev_value: sampleStddev(values)
          }
        }
        const inHour = (readings: ReadonlyArray<Reading>, hour: number) =>
          readings.filter((r) => r.timeMicros >= hour * 1000 && r.timeMicros < (hour + 3_600_000) * 1000)
        const want = [
          expected(door, h10, doorReadings),
          expected(temp, h10, inHour(tempReadings, h10)),
          expected(temp, h11, inHour(tempReadings, h11))
        ]
        // Sanity of the hand-computed expectations for the 10:00 temperature bucket.
        expect(want[1]).toMatchObject({ sample_count: 6, value_count: 5, active_minutes: 5, median_value: -18.5, min_value: -20 })

        const got = rows.map((r) => ({ ...r, bucket: new Date(r.bucket).toISOString() }))
        expect(got).toHaveLength(3)
        for (let k = 0; k < want.length; k++) {
          const g = got[k]!
          const w = want[k]!
          expect({ ...g, avg_value: null, p95_value: null, stddev_value: null }).toEqual({
            ...w,
            avg_value: null,
            p95_value: null,
            stddev_value: null
          })
          for (const key of ["avg_value", "p95_value", "stddev_value"] as const) {
            if (w[key] === null) expect(g[key], key).toBeNull()
            else expect(g[key], key).toBeCloseTo(w[key]!, 9)
          }
        }

        // More readings in an hour already shown: still no refresh needed.
        yield* store.load(claim(), Stream.make(item(equipment(eq), [sensor(temp)], [reading(temp, at(h11, 20), 8)])))
        const [after] = yield* sql<{ avg_value: number; sample_count: number; max_value: number; median_value: number }>`
          SELECT h.avg_value, h.sample_count::int AS sample_count, h.max_value, h.median_value
          FROM telemetry_hourly h JOIN sensors s ON s.id = h.sensor_id JOIN equipments e ON e.id = h.equipment_id
          WHERE e.uuid = ${eq} AND s.uuid = ${temp} AND h.bucket = ${new Date(h11)}`
        expect(after).toEqual({ avg_value: 6, sample_count: 3, max_value: 8, median_value: 6 })
      }))

    it.effect("BulkCopy streams a COPY larger than one message, inside the transaction", () =>
      Effect.gen(function*() {
        const sql = yield* sqlClient
        const bulk = yield* BulkCopy
        const sensorId = 900_000 + Math.floor(Math.random() * 100_000)
        const t0 = Date.UTC(2025, 6, 1)
        // About 4 MB of COPY text: many messages, so the loader has to wait for the socket to drain.
        const lines = Array.from({ length: 50_000 }, (_, k) =>
          `${new Date(t0 + k * 1000).toISOString()}\t1\t${sensorId}\t${k}\tstatus-${"x".repeat(40)}\t\\N\n`)
        const count = Effect.map(
          sql<{ n: number; total: number }>`SELECT count(*)::int AS n, coalesce(sum(value), 0)::float8 AS total
            FROM telemetry_data WHERE sensor_id = ${sensorId}`,
          (rows) => rows[0]!
        )
        const columns = ["time", "equipment_id", "sensor_id", "value", "status", "metadata"]

        // Rolled back with its transaction: the COPY ran on the transaction's connection.
        const failed = yield* Effect.exit(sql.withTransaction(
          Effect.zipRight(bulk.copyText("telemetry_data", columns, lines), Effect.fail("abort" as const))
        ))
        expect(failed._tag).toBe("Failure")
        expect(yield* count).toEqual({ n: 0, total: 0 })

        yield* sql.withTransaction(bulk.copyText("telemetry_data", columns, lines))
        expect(yield* count).toEqual({ n: 50_000, total: (49_999 * 50_000) / 2 })
      }))

    it.effect("BulkCopy: rows the server rejects fail the COPY with SqlError and load nothing", () =>
      Effect.gen(function*() {
        const sql = yield* sqlClient
        const bulk = yield* BulkCopy
        const sensorId = 800_000 + Math.floor(Math.random() * 100_000)
        const good = `2025-07-01T00:00:00.000Z\t1\t${sensorId}\t1\t\\N\t\\N\n`
        const error = yield* Effect.flip(sql.withTransaction(
          bulk.copyText("telemetry_data", ["time", "equipment_id", "sensor_id", "value", "status", "metadata"], [
            good,
            `not a time\t1\t${sensorId}\t1\t\\N\t\\N\n`
          ])
        ))
        expect(error._tag).toBe("SqlError")
        // The connection is usable afterwards and nothing was kept.
        expect(yield* sql`SELECT count(*)::int AS n FROM telemetry_data WHERE sensor_id = ${sensorId}`).toEqual([{ n: 0 }])
      }))

    it.effect("BulkCopy refuses to run outside a transaction", () =>
      Effect.gen(function*() {
        const bulk = yield* BulkCopy
        const exit = yield* Effect.exit(bulk.copyText("telemetry_data", ["time"], []))
        expect(exit._tag === "Failure" && exit.cause._tag === "Die").toBe(true)
      }))
  })
})

// Several sessions load claims at once only on PostgreSQL; the embedded database has one.
describe("SqlTelemetryStore on PostgreSQL, a claim delivered again while an earlier delivery's load holds it", () => {
  const store = SqlTelemetryStore.layer({ batchReadings: BATCH_READINGS, takeOverAfter: "1 second" }).pipe(
    Layer.provideMerge(migrated(postgres))
  )
  layer(store, { timeout: 120_000, excludeTestServices: true })("one fresh database", (it) => {
    /** The sessions holding the advisory lock of claim loads. */
    const claimLockHolders = Effect.flatMap(sqlClient, (sql) =>
      sql<{ pid: number }>`SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = ${0x54454c45}::oid AND granted`)
    const heldBy = Effect.map(claimLockHolders, (rows) => rows.map((r) => r.pid)).pipe(
      Effect.filterOrFail((pids) => pids.length === 1),
      Effect.retry(Schedule.spaced("50 millis"))
    )

    it.effect("ends a load whose session has waited on its worker for takeOverAfter, and loads the claim once", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-stalled")
        const readings = series(s, 7)
        const c = claim()
        // The first delivery's worker stops after its first readings (frozen, or cut off from the database): its
        // transaction stays open, holding the claim's ledger row.
        const stalled = yield* Effect.fork(store.load(
          c,
          Stream.concat(Stream.make(item(equipment(eq), [sensor(s)], readings.slice(0, 4))), Stream.never)
        ))
        const [stalledSession] = yield* heldBy
        const again = yield* store.load(c, Stream.make(item(equipment(eq), [sensor(s)], readings))).pipe(
          Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => "the delivery waited for the stalled load" })
        )
        expect(again).toMatchObject({ _tag: "Loaded", items: 1, readings: 7, duplicates: 0 })
        expect(yield* countOf(eq)).toBe(7)
        expect(yield* ledgerOf(c.claim_id)).toMatchObject([{ items: 1, readings: 7 }])
        const sessions = yield* Effect.flatMap(sqlClient, (sql) =>
          sql`SELECT 1 FROM pg_stat_activity WHERE pid = ${stalledSession!}`)
        expect(sessions).toEqual([])
        yield* Fiber.interrupt(stalled)
      }))

    it.effect("a load whose session is terminated while it waits for its next rows fails without SQLSTATE; the claim loads afterwards", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-terminated")
        const readings = series(s, 7)
        const c = claim()
        const resume = yield* Deferred.make<void>()
        const load = yield* Effect.fork(store.load(c, Stream.concat(
          Stream.make(item(equipment(eq), [sensor(s)], readings.slice(0, 4))),
          Stream.fromEffect(Deferred.await(resume)).pipe(
            Stream.as(item(equipment(eq), [sensor(s)], readings.slice(4)))
          )
        )))
        const [session] = yield* heldBy
        yield* Effect.flatMap(sqlClient, (sql) => sql`SELECT pg_terminate_backend(${session!})`)
        // The server's answer (57P01) reaches the idle client first, as an event, not as a statement's answer.
        yield* Effect.sleep("300 millis")
        yield* Deferred.succeed(resume, undefined)
        // Its next statement then finds the connection lost, without SQLSTATE: nothing tells this apart from a server
        // process that crashed under the load (which the worker counts against the claim).
        const error = yield* Effect.flip(Fiber.join(load))
        expect(error).toMatchObject({ _tag: "LoadError", claimId: c.claim_id, transient: true })
        expect(DatabaseErrors.sqlStateOf(error)).toBeUndefined()
        expect(yield* countOf(eq)).toBe(0)
        expect(yield* store.load(c, Stream.make(item(equipment(eq), [sensor(s)], readings)))).toMatchObject({
          _tag: "Loaded",
          readings: 7
        })
        expect(yield* countOf(eq)).toBe(7)
      }))

    it.effect("a load whose statement the server ends (57P01) fails with that SQLSTATE, though its ROLLBACK then fails too", () =>
      Effect.gen(function*() {
        const sql = yield* sqlClient
        const { store, eq, s } = yield* freshEquipment("eq-57p01")
        const c = claim()
        // Another session holds the ledger: the load's first statement waits on it, and is ended there.
        const release = yield* Deferred.make<void>()
        const locked = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(sql.withTransaction(
          sql`LOCK TABLE claim_ledger IN EXCLUSIVE MODE`.pipe(
            Effect.zipRight(Deferred.succeed(locked, undefined)),
            Effect.zipRight(Deferred.await(release))
          )
        ))
        yield* Deferred.await(locked)
        const load = yield* Effect.fork(store.load(c, Stream.make(item(equipment(eq), [sensor(s)], series(s, 3)))))
        const [waiting] = yield* sql<{ pid: number }>`SELECT pid FROM pg_stat_activity
          WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO claim_ledger%'`.pipe(
          Effect.filterOrFail((rows) => rows.length === 1),
          Effect.retry(Schedule.spaced("50 millis"))
        )
        yield* sql`SELECT pg_terminate_backend(${waiting!.pid})`
        const error = yield* Effect.flip(Fiber.join(load))
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
        // What the worker reads to keep the claim queued (no claim is to blame for it), not the ROLLBACK's
        // "Connection terminated unexpectedly" that @effect/sql dies with.
        expect(error).toMatchObject({ _tag: "LoadError", claimId: c.claim_id, transient: true })
        expect(DatabaseErrors.sqlStateOf(error)).toBe("57P01")
        expect(DatabaseErrors.isEndedByServer(error)).toBe(true)
        expect(yield* store.load(c, Stream.make(item(equipment(eq), [sensor(s)], series(s, 3))))).toMatchObject({ _tag: "Loaded" })
      }))

    it.effect("waits for a load that goes on, however long, and then finds the claim loaded", () =>
      Effect.gen(function*() {
        const { store, eq, s } = yield* freshEquipment("eq-slow")
        const readings = series(s, 30)
        const c = claim()
        // 3 s in all, a batch every 300 ms: longer than takeOverAfter, never waiting that long on its worker.
        const items = Stream.fromIterable(Array.from({ length: 10 }, (_, k) =>
          item(equipment(eq), [sensor(s)], readings.slice(3 * k, 3 * k + 3)))).pipe(Stream.schedule(Schedule.spaced("300 millis")))
        const slow = yield* Effect.fork(store.load(c, items))
        yield* heldBy
        expect(yield* store.load(c, Stream.make(item(equipment(eq), [sensor(s)], readings)))).toMatchObject({
          _tag: "AlreadyLoaded"
        })
        expect(yield* Fiber.join(slow)).toMatchObject({ _tag: "Loaded", items: 10, readings: 30 })
        expect(yield* countOf(eq)).toBe(30)
      }))
  })
})
