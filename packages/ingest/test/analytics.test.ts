import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, layer } from "@effect/vitest"
import { Maintenance, TelemetryStore } from "@telemetry/domain"
import { claim } from "@telemetry/domain/testing"
import * as SqlMaintenance from "@telemetry/infra/db/SqlMaintenance"
import { databases, storeOn, type TestDatabase } from "@telemetry/infra/testing"
import { freePort } from "@telemetry/testbed/FreePort"
import { Effect, Layer, Stream } from "effect"
import { bearer, readerToken } from "./support/auth.js"
import { generate, itemsOf, type Point, prng, sensorSpec, splitLate } from "./support/dataset.js"
import { bucketOf, bucketRows, DAY, HOUR, rawRows, sensorTotals } from "./support/reference.js"
import { serverOn } from "./support/server.js"

/**
 * The analytics endpoints over HTTP against numbers computed here from the generated readings, on each test
 * database (a fresh one per suite, migrated, with the store and the maintenance jobs over it).
 */
const databaseOf = (database: TestDatabase) => SqlMaintenance.layer.pipe(Layer.provideMerge(storeOn(database, 5_000)))

/** Buckets the jobs materialized: in our table, or in TimescaleDB's materialization hypertable. */
const materializedBuckets = (view: "telemetry_hourly" | "telemetry_daily") =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [own] = yield* sql<{ relation: string | null }>`SELECT materialized_table AS relation
      FROM telemetry_aggregates WHERE view_name = ${view}`
    const relation = own?.relation ?? (yield* sql<{ relation: string }>`SELECT
        format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name) AS relation
      FROM timescaledb_information.continuous_aggregates WHERE view_name = ${view}`)[0]!.relation
    const rows = yield* sql.unsafe<{ n: number }>(`SELECT count(*)::int AS n FROM ${relation}`)
    return rows[0]!.n
  })

const DIGITS = 8
const approx = (x: number | null) => (x === null ? null : expect.closeTo(x, DIGITS))
const iso = (ms: number) => new Date(ms).toISOString()
/** A reading's time as the raw history writes it, to the microsecond. */
const isoMicros = (ms: number) => iso(ms).replace(/Z$/, "000Z")

const analyticsSuite = (database: TestDatabase) =>
  describe(`analytics endpoints on ${database.name}`, async () => {
    const port = await freePort()
    const get = (path: string) =>
      Effect.promise(async () => {
        const request = () => fetch(`http://127.0.0.1:${port}/api/v1/analytics${path}`, { headers: bearer(readerToken()) })
        // The embedded database runs in this thread: while the maintenance jobs hold it, the client's and the
        // server's keep-alive timers both expire, and the client may reuse a connection the server is closing.
        // Browsers send an idempotent request again on such a reset; so does this.
        const response = await request().catch((e: Error) =>
          (e.cause as NodeJS.ErrnoException | undefined)?.code === "ECONNRESET" ? request() : Promise.reject(e)
        )
        return { status: response.status, json: (await response.json()) as any }
      })

    // Readings up to two minutes ago, over the 70 hours before: in every refresh window once the jobs ran.
    const end = Date.now() - 2 * 60_000
    const generated = generate(20_261_120, end)
    const { late, onTime } = splitLate(generated, 7)
    /** What the database holds, as the tests add to it. */
    const loaded: Array<Point> = []
    const mine = () => loaded.filter((p) => p.tenantId === "default")

    const load = (tenantId: string, points: ReadonlyArray<Point>) =>
      Effect.gen(function*() {
        const store = yield* TelemetryStore
        const outcome = yield* store.load(claim({ tenantId }), Stream.fromIterable(itemsOf(tenantId, points)))
        expect(outcome).toMatchObject({ _tag: "Loaded", readings: points.filter((p) => p.tenantId === tenantId).length })
        loaded.push(...points.filter((p) => p.tenantId === tenantId))
      })

    const sensorColumns = (uuid: string) => {
      const spec = sensorSpec(uuid)
      return { sensor_uuid: uuid, sensor_name: spec.name, sensor_type: spec.type, sensor_unit: spec.unit }
    }
    const isTemperature = (p: Point) => sensorSpec(p.sensor).type === "temperature"

    const metricsOf = (row: ReturnType<typeof bucketRows>[number], active: "active_minutes" | "active_hours") => ({
      time: iso(row.time),
      avg_value: approx(row.avg_value),
      max_value: approx(row.max_value),
      min_value: approx(row.min_value),
      sample_count: row.sample_count,
      [active]: row.active,
      stddev_value: approx(row.stddev_value),
      median_value: approx(row.median_value),
      p95_value: approx(row.p95_value),
      p99_value: approx(row.p99_value)
    })

    const query = (params: Record<string, string | number>) =>
      new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)])).toString()

    /** Hour and day history of an equipment (all sensors, and one type), raw included, against the reference. */
    const checkEquipmentHistory = (equipment: string) =>
      Effect.gen(function*() {
        const points = mine().filter((p) => p.equipment === equipment)
        const range = { start_date: iso(end - 3 * DAY), end_date: iso(end + HOUR) }
        for (const [period, width, active] of [["hour", HOUR, "active_minutes"], ["day", DAY, "active_hours"]] as const) {
          const response = yield* get(`/equipment/${equipment}/history?${query({ period, ...range })}`)
          expect(response.status).toBe(200)
          expect(response.json).toMatchObject({ equipment_uuid: equipment, period, ...range })
          const expected = bucketRows(points, width, Date.parse(range.start_date), Date.parse(range.end_date))
          expect(expected.length).toBeGreaterThan(period === "hour" ? 60 : 2)
          expect(response.json.data).toEqual(
            expected.map((row) => ({ ...sensorColumns(row.sensor), ...metricsOf(row, active) }))
          )
        }
        const typed = yield* get(`/equipment/${equipment}/history?${query({ period: "hour", sensor_type: "temperature", ...range })}`)
        expect(typed.json.data.map((r: any) => [r.time, r.sensor_uuid, r.sample_count])).toEqual(
          bucketRows(points.filter(isTemperature), HOUR, Date.parse(range.start_date), Date.parse(range.end_date))
            .map((row) => [iso(row.time), row.sensor, row.sample_count])
        )

        const raw = yield* get(`/equipment/${equipment}/history?${query({ period: "raw", limit: 100_000, ...range })}`)
        const expectedRaw = rawRows(points, Date.parse(range.start_date), Date.parse(range.end_date))
        expect(raw.json.data).toEqual(expectedRaw.map((p) => ({
          time: isoMicros(p.time),
          ...sensorColumns(p.sensor),
          value: p.value,
          status: p.status,
          metadata: p.metadata
        })))
        const limited = yield* get(`/equipment/${equipment}/history?${query({ period: "raw", limit: 5, ...range })}`)
        expect(limited.json.data.map((r: any) => r.time)).toEqual(expectedRaw.slice(0, 5).map((p) => isoMicros(p.time)))
      })

    /** `probe-1` is a sensor of eq-b and of eq-c: by uuid alone both, with equipment_uuid one. */
    const checkSensorHistory = Effect.gen(function*() {
      const range = { start_date: iso(end - 3 * DAY), end_date: iso(end + HOUR) }
      const [start, stop] = [Date.parse(range.start_date), Date.parse(range.end_date)]
      const ofSensor = mine().filter((p) => p.sensor === "probe-1")
      for (const [equipment, points] of [[undefined, ofSensor], ["eq-c", ofSensor.filter((p) => p.equipment === "eq-c")]] as const) {
        const filter = equipment === undefined ? {} : { equipment_uuid: equipment }
        const daily = yield* get(`/sensor/probe-1/history?${query({ period: "day", ...filter, ...range })}`)
        expect(daily.json).toMatchObject({ sensor_uuid: "probe-1", period: "day", ...range })
        // Two sensors share the uuid: one row per sensor and bucket, in an order only the bucket decides.
        const expected = Array.from(new Set(points.map((p) => p.equipment)))
          .flatMap((eq) => bucketRows(points.filter((p) => p.equipment === eq), DAY, start, stop))
        const order = (a: { sample_count: number; avg_value: number | null }, b: typeof a) =>
          a.sample_count - b.sample_count || (a.avg_value ?? 0) - (b.avg_value ?? 0)
        expect([...daily.json.data].sort((a, b) => a.time.localeCompare(b.time) || order(a, b))).toEqual(
          expected.sort((a, b) => a.time - b.time || order(a, b)).map((row) => metricsOf(row, "active_hours"))
        )
      }
      const raw = yield* get(`/sensor/probe-1/history?${query({ period: "raw", equipment_uuid: "eq-b", limit: 100_000, ...range })}`)
      expect(raw.json.data).toEqual(
        rawRows(ofSensor.filter((p) => p.equipment === "eq-b"), start, stop).map((p) => ({
          time: isoMicros(p.time),
          value: p.value,
          status: p.status,
          metadata: p.metadata
        }))
      )
    })

    /** Every stats period of an equipment: the buckets named by start_date/end_date, totals per sensor. */
    const checkStats = (equipment: string) =>
      Effect.gen(function*() {
        const points = mine().filter((p) => p.equipment === equipment)
        for (const [period, width] of [["24h", HOUR], ["7d", DAY], ["30d", DAY], ["1y", DAY]] as const) {
          const response = yield* get(`/equipment/${equipment}/stats?period=${period}`)
          expect(response.status).toBe(200)
          const { end_date, start_date } = response.json
          const [start, stop] = [Date.parse(start_date), Date.parse(end_date)]
          const length = { "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY, "1y": 365 * DAY }[period]
          expect(start).toBe(bucketOf(stop - length, width))
          expect(response.json.sensors).toEqual(sensorTotals(points, width, start, stop).map((s) => ({
            ...sensorColumns(s.sensor_uuid),
            ...s,
            overall_avg: approx(s.overall_avg),
            overall_max: approx(s.overall_max),
            overall_min: approx(s.overall_min)
          })))
        }
      })

    const checkHomeAssistant = (equipment: string) =>
      Effect.gen(function*() {
        const points = mine().filter((p) => p.equipment === equipment)
        for (const params of [{}, { hours: 168 }, { hours: 3, sensor_type: "temperature" }] as const) {
          const response = yield* get(`/home-assistant/${equipment}?${query(params)}`)
          expect(response.status).toBe(200)
          const hours = "hours" in params ? params.hours : 24
          const { end_date, start_date } = response.json
          expect(Date.parse(start_date)).toBe(bucketOf(Date.parse(end_date) - hours * HOUR, HOUR))
          const ofType = "sensor_type" in params ? points.filter(isTemperature) : points
          expect(response.json).toEqual({
            equipment_uuid: equipment,
            period_hours: hours,
            start_date,
            end_date,
            data: bucketRows(ofType, HOUR, Date.parse(start_date), Date.parse(end_date)).map((row) => {
              const { sensor_name, sensor_type, sensor_unit, sensor_uuid } = sensorColumns(row.sensor)
              return {
                time: iso(row.time),
                sensor_uuid,
                sensor_name,
                sensor_type,
                unit: sensor_unit,
                value: approx(row.avg_value),
                max: approx(row.max_value),
                min: approx(row.min_value),
                samples: row.sample_count
              }
            })
          })
        }
      })

    const checkAll = Effect.gen(function*() {
      for (const equipment of ["eq-a", "eq-b", "eq-c"]) {
        yield* checkEquipmentHistory(equipment)
        yield* checkStats(equipment)
        yield* checkHomeAssistant(equipment)
      }
      yield* checkSensorHistory
    })

    // The server needs the real clock: its default ranges end now.
    const db = databaseOf(database)
    layer(Layer.provideMerge(serverOn(db, port), db), { timeout: 300_000, excludeTestServices: true })((it) => {
      it.effect("readings loaded out of order, then late ones, are served exactly (real-time aggregates)", () =>
        Effect.gen(function*() {
          yield* load("default", onTime)
          yield* load("tenant-b", generated)
          yield* load("default", late)
          expect(mine().length).toBe(generated.filter((p) => p.tenantId === "default").length)
          yield* checkAll
        }), 300_000)

      it.effect("after the maintenance jobs ran, the same; late readings into materialized buckets after the next run", () =>
        Effect.gen(function*() {
          const maintenance = yield* Maintenance.Maintenance
          expect([yield* materializedBuckets("telemetry_hourly"), yield* materializedBuckets("telemetry_daily")]).toEqual([0, 0])
          yield* maintenance.runAll
          const hours = yield* materializedBuckets("telemetry_hourly")
          expect(hours).toBeGreaterThan(60 * 8)
          expect(yield* materializedBuckets("telemetry_daily")).toBeGreaterThan(0)
          yield* checkAll
          // Late readings into buckets the refresh has materialized (inside the policies' windows, which the
          // worker's refreshLate extends for older ones): served once the policies ran again.
          const random = prng(99)
          // Half a second off the first readings' times, so no reading shares its sensor and time with another.
          const later = generate(4_242, end - 3 * HOUR - 500)
            .filter((p) => p.tenantId === "default" && p.time >= end - 60 * HOUR && random() < 0.03)
          yield* load("default", later)
          yield* maintenance.runAll
          yield* checkAll
        }), 300_000)

      it.effect("readings loaded a moment ago show in the hour view before any refresh", () =>
        Effect.gen(function*() {
          // The reading's own hour: a second before now lies in the hour before when the test runs just after one.
          const time = Date.now() - 1000
          const fresh: Point = {
            tenantId: "default",
            equipment: "eq-a",
            sensor: "eq-a-temp",
            time,
            value: 12.5,
            status: null,
            metadata: null
          }
          yield* load("default", [fresh])
          const range = { start_date: iso(bucketOf(time, HOUR)), end_date: iso(bucketOf(time, HOUR) + HOUR) }
          const response = yield* get(`/equipment/eq-a/history?${query({ period: "hour", sensor_type: "temperature", ...range })}`)
          const points = mine().filter((p) => p.sensor === "eq-a-temp")
          const [expected] = bucketRows(points, HOUR, bucketOf(time, HOUR), bucketOf(time, HOUR) + HOUR)
          expect(expected!.max_value).toBeGreaterThanOrEqual(12.5)
          expect(response.json.data).toEqual([{ ...sensorColumns("eq-a-temp"), ...metricsOf(expected!, "active_minutes") }])
        }))

      it.effect("the other tenant's equipment of the same uuid stays invisible", () =>
        Effect.gen(function*() {
          const response = yield* get(`/equipment/eq-a/stats?period=7d&sensor_type=temperature`)
          // Tenant b's readings lie around 100 °C, the default tenant's below 15 °C.
          expect(response.json.sensors.map((s: any) => [s.sensor_uuid, s.overall_max < 15])).toEqual([["eq-a-temp", true]])
        }))

      it.effect("parameters are validated with the contract's error body", () =>
        Effect.gen(function*() {
          const cases: Array<[string, string | undefined]> = [
            ["/equipment/eq-a/history?start_date=yesterday", "start_date"],
            ["/equipment/eq-a/history?end_date=2026-02-30", "end_date"],
            ["/equipment/eq-a/history?start_date=2026-11-20T25:00:00Z", "start_date"],
            ["/equipment/eq-a/history?period=week", "period"],
            ["/equipment/eq-a/history?start_date=2026-11-21&end_date=2026-11-20", "start_date"],
            ["/equipment/eq-a/history?start_date=2026-11-20&end_date=2026-11-20", "start_date"],
            ["/equipment/eq-a/history?limit=0", "limit"],
            ["/sensor/probe-1/history?period=minute", "period"],
            ["/equipment/eq-a/stats?period=2d", "period"],
            ["/home-assistant/eq-a?hours=0", "hours"],
            ["/home-assistant/eq-a?hours=169", "hours"],
            ["/home-assistant/eq-a?hours=1.5", "hours"],
            // Decimal digits only: not what Number would read (16, 100, 1000, 5).
            ["/home-assistant/eq-a?hours=0x10", "hours"],
            ["/home-assistant/eq-a?hours=1e2", "hours"],
            ["/equipment/eq-a/history?period=raw&limit=1e3", "limit"],
            ["/equipment/eq-a/history?period=raw&limit=+5", "limit"],
            // What ingest refuses to store cannot be asked for either: 400, not a database error.
            ["/equipment/eq-a/history?start_date=0000-01-01", "start_date"],
            ["/equipment/eq-a/history?end_date=2100-01-02", "end_date"],
            [`/equipment/${"e".repeat(129)}/history`, "equipmentUuid"],
            [`/sensor/${"%C3%A9".repeat(2_000)}/history`, "sensorUuid"],
            ["/equipment/a%00b/history", "equipmentUuid"],
            ["/sensor/a%00b/history", "sensorUuid"],
            ["/equipment/eq-a/stats?sensor_type=a%00b", "sensor_type"],
            ["/sensor/probe-1/history?equipment_uuid=a%00b", "equipment_uuid"],
            ["/home-assistant/a%00b", "equipmentUuid"],
            ["/equipment/a%ED%A0%80b/history", undefined],
            ["/equipment/a%FFb/history", undefined],
            // In the query too: read as U+FFFD, it would be another text than the one meant.
            ["/equipment/eq-a/stats?sensor_type=a%ED%A0%80b", undefined],
            // A leading byte order mark, which ingest refuses in any uuid or text.
            ["/equipment/%EF%BB%BFeq-a/history", "equipmentUuid"],
            ["/equipment/eq-a/stats?sensor_type=%EF%BB%BFtemperature", "sensor_type"]
          ]
          for (const [path, where] of cases) {
            const response = yield* get(path)
            expect([path, response.status, response.json.error, response.json.path]).toEqual([path, 400, "invalid_parameter", where])
            expect(response.json.message, path).toBeTypeOf("string")
          }
          const hours = yield* get("/home-assistant/eq-a?hours=169")
          expect(hours.json.message).toBe("hours: must be a whole number of hours from 1 to 168")
          // Every allowed value named, not the first only.
          expect((yield* get("/equipment/eq-a/history?period=week")).json.message).toBe("period: must be hour, day or raw")
          expect((yield* get("/equipment/eq-a/stats?period=2d")).json.message).toBe("period: must be 24h, 7d, 30d or 1y")
          // A parameter given twice, each value allowed on its own: the answer says what is wrong with it.
          for (const twice of ["/equipment/eq-a/stats?period=24h&period=7d", "/equipment/eq-a/history?sensor_type=a&sensor_type=a"]) {
            const response = yield* get(twice)
            const name = twice.includes("period") ? "period" : "sensor_type"
            expect([response.status, response.json]).toEqual([400, {
              error: "invalid_parameter",
              message: `${name}: given 2 times; give it once`,
              path: name
            }])
          }
          // An offset whose "+" arrived as a space, a date without a time, a naive time (UTC).
          const ok = yield* get(`/equipment/eq-a/history?${query({ start_date: "2026-11-20T10:00:00 02:00", end_date: "2026-11-21" })}`)
          expect([ok.status, ok.json.start_date, ok.json.end_date]).toEqual([200, "2026-11-20T08:00:00.000Z", "2026-11-21T00:00:00.000Z"])
          const naive = yield* get(`/equipment/eq-a/history?start_date=2026-11-20T10:00:00`)
          expect(naive.json.start_date).toBe("2026-11-20T10:00:00.000Z")
          // Any uuid ingest accepts reads back, whatever its characters: "/", "%", "?", spaces, emoji.
          const odd = encodeURIComponent("eq/ 100%? \u{1F600}")
          const found = yield* get(`/equipment/${odd}/history`)
          expect([found.status, found.json.equipment_uuid]).toEqual([200, "eq/ 100%? \u{1F600}"])
          const longest = "\u{1F600}".repeat(64)
          const atLimit = yield* get(`/equipment/${encodeURIComponent(longest)}/history`)
          expect([atLimit.status, atLimit.json.equipment_uuid]).toEqual([200, longest])
        }))

      it.effect("an unknown equipment or sensor answers 200 with no data", () =>
        Effect.gen(function*() {
          // 128 emoji: 128 characters, as ingest counts them, though 256 UTF-16 units.
          const emoji = encodeURIComponent("😀".repeat(128))
          for (
            const path of [
              "/equipment/nobody/history",
              "/equipment/nobody/history?period=day",
              "/sensor/nobody/history?period=raw",
              `/equipment/${emoji}/history`,
              `/sensor/${emoji}/history`
            ]
          ) {
            const response = yield* get(path)
            expect([path, response.status, response.json.data]).toEqual([path, 200, []])
          }
          const stats = yield* get("/equipment/nobody/stats?period=1y")
          expect([stats.status, stats.json.sensors]).toEqual([200, []])
          const ha = yield* get("/home-assistant/nobody")
          expect([ha.status, ha.json.data]).toEqual([200, []])
        }))

      it.effect("date parameters are read to the microsecond: a raw history pages on from its last reading's time + 1 µs", () =>
        Effect.gen(function*() {
          // Three readings 1 µs apart, ten days back (outside every window the tests above compare).
          const millis = bucketOf(Date.now() - 10 * DAY, HOUR) + 123
          const [item] = itemsOf("default", [{
            tenantId: "default",
            equipment: "eq-a",
            sensor: "eq-a-temp",
            time: millis,
            value: 1,
            status: null,
            metadata: null
          }])
          const readings = [456, 457, 458].map((micros) => ({ ...item!.readings[0]!, timeMicros: millis * 1000 + micros }))
          const store = yield* TelemetryStore
          yield* store.load(claim({ tenantId: "default" }), Stream.make({ ...item!, readings }))
          const at = (micros: number) => `${new Date(millis).toISOString().slice(0, -1)}${micros}Z`
          const page = (start: string, end = at(999)) =>
            Effect.map(
              get(`/equipment/eq-a/history?${query({ period: "raw", sensor_type: "temperature", start_date: start, end_date: end, limit: 1 })}`),
              (response) => [response.json.start_date, response.json.data.map((row: any) => row.time)]
            )
          expect(yield* page(at(456))).toEqual([at(456), [at(456)]])
          expect(yield* page(at(457))).toEqual([at(457), [at(457)]])
          expect(yield* page(at(459))).toEqual([at(459), []])
          // A range of 1 µs is a range; the end is excluded to the microsecond; digits past it are dropped.
          expect(yield* page(at(457), at(458))).toEqual([at(457), [at(457)]])
          expect(yield* page(`${at(458).slice(0, -1)}999Z`)).toEqual([at(458), [at(458)]])
          // Without microseconds, the millisecond as before.
          expect((yield* page(new Date(millis).toISOString()))[0]).toBe(new Date(millis).toISOString())
        }))
    })
  })

for (const database of databases) analyticsSuite(database)
