import { describe, expect, layer } from "@effect/vitest"
import { type TelemetryItem, TelemetryStore } from "@telemetry/domain"
import { claim } from "@telemetry/domain/testing"
import { databases, storeOn, type TestDatabase } from "@telemetry/infra/testing"
import { freePort } from "@telemetry/testbed/FreePort"
import { Deferred, Effect, Fiber, Layer, Option, Stream } from "effect"
import { LISTED_SENSORS, PAGE_SENSORS } from "../src/analytics/EquipmentRows.js"
import { TenantQueries } from "../src/analytics/TenantQueries.js"
import { bearer, deviceToken, readerToken } from "./support/auth.js"
import { equipments, generate, itemsOf, type Point } from "./support/dataset.js"
import { DAY, HOUR } from "./support/reference.js"
import { serverOn } from "./support/server.js"

/** A reading's time as the API writes it, to the microsecond. */
const isoMicros = (ms: number) => new Date(ms).toISOString().replace(/Z$/, "000Z")

/** An equipment outside the generated dataset: one sensor, one reading at `time`. */
const single = (uuid: string, status: TelemetryItem["equipment"]["status"], time: number): TelemetryItem => ({
  equipment: { uuid, name: `Freezer ${uuid}`, location: "cellar", status, collectionInterval: 60, sirenActive: false, sirenTime: 120 },
  sensors: [{
    uuid: `${uuid}-temp`,
    name: "Temperature",
    type: "temperature",
    unit: "°C",
    status: "ok",
    manufacturer: null,
    model: null,
    firmware: null,
    hardwareId: null,
    viaHub: null
  }],
  readings: [{ sensorUuid: `${uuid}-temp`, timeMicros: time * 1000, value: -20.5, status: null, metadata: null }]
})

/**
 * The equipments API (the console's list) over HTTP on each test database: one tenant's equipments only, with
 * their sensors' newest readings and their last day's counts computed here from the generated readings.
 */
const equipmentsSuite = (database: TestDatabase) =>
  describe(`equipments API on ${database.name}`, async () => {
    const port = await freePort()
    const get = (path: string, token = readerToken()) =>
      Effect.promise(async () => {
        const response = await fetch(`http://127.0.0.1:${port}/api/v1/equipments${path}`, { headers: bearer(token) })
        return { status: response.status, json: (await response.json()) as any }
      })

    const end = Date.now() - 2 * 60_000
    const points = generate(20_261_203, end)
    const oldReading = end - 2 * DAY

    /** The equipment as the API should describe it, from the readings of `tenantId` (sparkline aside). */
    const expected = (tenantId: string, uuid: string) => {
      const now = Date.now()
      const since = Math.floor((now - DAY) / HOUR) * HOUR
      const own = points.filter((p) => p.tenantId === tenantId && p.equipment === uuid)
      const spec = equipments.find((e) => e.tenantId === tenantId && e.uuid === uuid)!
      const newest = (ps: ReadonlyArray<Point>) => ps.reduce((a, b) => (b.time > a.time ? b : a))
      const sensors = [...spec.sensors].sort((a, b) => (a.uuid < b.uuid ? -1 : 1)).map((s) => {
        const last = newest(own.filter((p) => p.sensor === s.uuid))
        return {
          uuid: s.uuid,
          name: s.name,
          type: s.type,
          unit: s.unit,
          status: null,
          last_reading: { time: isoMicros(last.time), value: last.value, status: last.status },
          readings_24h: own.filter((p) => p.sensor === s.uuid && p.time >= since).length
        }
      })
      return {
        uuid,
        name: `Equipment ${uuid}`,
        location: null,
        status: "active",
        collection_interval: 60,
        last_reading_at: isoMicros(newest(own).time),
        stale: false,
        readings_24h: sensors.reduce((sum, s) => sum + s.readings_24h, 0),
        sensor_count: sensors.length,
        sensors
      }
    }
    const withoutSparkline = ({ sparkline: _, ...rest }: any) => rest

    const db = storeOn(database, 5_000)
    // The server needs the real clock: "the last 24 hours" end now.
    // The tenants' turns as the server takes them (the same layer, built once), for a test to hold.
    const context = Layer.merge(serverOn(db, port), TenantQueries.Default).pipe(Layer.provideMerge(db))
    layer(context, { timeout: 120_000, excludeTestServices: true })((it) => {
      it.effect("load both tenants' equipments", () =>
        Effect.gen(function*() {
          const store = yield* TelemetryStore
          for (const tenantId of ["default", "tenant-b"]) {
            const extra = tenantId === "default"
              ? single("zz-idle", "inactive", oldReading)
              : single("secret", "active", end)
            const items = [...itemsOf(tenantId, points), extra]
            const outcome = yield* store.load(claim({ tenantId }), Stream.fromIterable(items))
            expect(outcome).toMatchObject({ _tag: "Loaded" })
          }
        }), 120_000)

      it.effect("the list holds the caller's equipments only, with sensors, newest readings and the last day", () =>
        Effect.gen(function*() {
          const { json, status } = yield* get("/")
          expect(status).toBe(200)
          expect(json.data.map((e: any) => e.uuid)).toEqual(["eq-a", "eq-b", "eq-c", "zz-idle"])
          for (const uuid of ["eq-a", "eq-b", "eq-c"]) {
            expect(withoutSparkline(json.data.find((e: any) => e.uuid === uuid))).toEqual(expected("default", uuid))
          }
          expect(json).toMatchObject({
            total: 4,
            next_cursor: null,
            statuses: [{ status: "active", equipments: 3 }, { status: "inactive", equipments: 1 }]
          })
          // eq-a's first sensor by uuid with values: its humidity (its door sends statuses only).
          const sparkline = json.data[0].sparkline
          expect(sparkline.sensor_uuid).toBe("eq-a-hum")
          expect(sparkline.hourly_avg.length).toBeGreaterThanOrEqual(24)
          expect(sparkline.hourly_avg.filter((v: number | null) => v !== null).length).toBeGreaterThanOrEqual(22)
          // Nothing in the last day: no count, no sparkline, stale.
          expect(json.data[3]).toMatchObject({
            uuid: "zz-idle",
            name: "Freezer zz-idle",
            location: "cellar",
            status: "inactive",
            last_reading_at: isoMicros(oldReading),
            stale: true,
            readings_24h: 0,
            sparkline: null,
            sensors: [{ uuid: "zz-idle-temp", status: "ok", readings_24h: 0, last_reading: { value: -20.5, status: null } }]
          })
          // The other tenant sees its own eq-a (same uuid, other readings) and its own extra one.
          const other = yield* get("/", readerToken("tenant-b"))
          expect(other.json.data.map((e: any) => e.uuid)).toEqual(["eq-a", "secret"])
          expect(withoutSparkline(other.json.data[0])).toEqual(expected("tenant-b", "eq-a"))
        }))

      it.effect("a tenant's listings wait their turn with its analytics queries (ANALYTICS_QUERIES_PER_TENANT), not another's", () =>
        Effect.gen(function*() {
          const { inTurn } = yield* TenantQueries
          const release = yield* Deferred.make<void>()
          // Two queries of "default" under way: its whole allowance.
          const held = yield* Effect.forEach([1, 2], () => Effect.fork(inTurn("default")(Deferred.await(release))))
          yield* Effect.sleep("50 millis")
          const waiting = yield* Effect.fork(Effect.all([get("/"), get("/eq-a")]))
          expect((yield* get("/", readerToken("tenant-b"))).status).toBe(200)
          yield* Effect.sleep("500 millis")
          expect(yield* Fiber.poll(waiting)).toEqual(Option.none())
          yield* Deferred.succeed(release, undefined)
          yield* Fiber.joinAll(held)
          const [list, one] = yield* Fiber.join(waiting)
          expect([list.status, one.status]).toEqual([200, 200])
        }))

      it.effect("an equipment lists its first 500 sensors by uuid, and counts them all", () =>
        Effect.gen(function*() {
          const store = yield* TelemetryStore
          const base = single("many", "active", end)
          const uuids = Array.from({ length: LISTED_SENSORS + 2 }, (_, i) => `many-${String(i).padStart(4, "0")}`)
          const item: TelemetryItem = {
            equipment: base.equipment,
            sensors: uuids.map((uuid) => ({ ...base.sensors[0]!, uuid })),
            readings: uuids.map((sensorUuid, i) => ({ ...base.readings[0]!, sensorUuid, value: i }))
          }
          expect(yield* store.load(claim({ tenantId: "tenant-many" }), Stream.make(item))).toMatchObject({ _tag: "Loaded" })
          const { json } = yield* get("/many", readerToken("tenant-many"))
          expect(json.sensor_count).toBe(LISTED_SENSORS + 2)
          expect(json.sensors.map((s: any) => s.uuid)).toEqual(uuids.slice(0, LISTED_SENSORS))
          // Its own figures are those of the sensors listed.
          expect(json.readings_24h).toBe(LISTED_SENSORS)
        }))

      it.effect(`a page ends, with a cursor, before the equipment whose listed sensors would pass ${PAGE_SENSORS}`, () =>
        Effect.gen(function*() {
          const store = yield* TelemetryStore
          // Each counts as the LISTED_SENSORS it lists, not as the one more it has.
          const perPage = PAGE_SENSORS / LISTED_SENSORS
          const items = Array.from({ length: perPage + 1 }, (_, e): TelemetryItem => {
            const base = single(`wide-${e}`, "active", end)
            const uuids = Array.from({ length: LISTED_SENSORS + 1 }, (_, i) => `wide-${e}-${String(i).padStart(4, "0")}`)
            return {
              equipment: base.equipment,
              sensors: uuids.map((uuid) => ({ ...base.sensors[0]!, uuid })),
              readings: uuids.map((sensorUuid, i) => ({ ...base.readings[0]!, sensorUuid, value: i }))
            }
          })
          expect(yield* store.load(claim({ tenantId: "tenant-wide" }), Stream.fromIterable(items))).toMatchObject({ _tag: "Loaded" })
          const token = readerToken("tenant-wide")
          const first = yield* get("/?limit=200", token)
          expect(first.json.data.map((e: any) => [e.uuid, e.sensors.length, e.sensor_count]))
            .toEqual(items.slice(0, perPage).map((i) => [i.equipment.uuid, LISTED_SENSORS, LISTED_SENSORS + 1]))
          expect([first.json.total, first.json.next_cursor]).toEqual([perPage + 1, expect.any(String)])
          const second = yield* get(`/?limit=200&cursor=${encodeURIComponent(first.json.next_cursor)}`, token)
          expect([second.json.data.map((e: any) => e.uuid), second.json.total, second.json.next_cursor])
            .toEqual([[`wide-${perPage}`], perPage + 1, null])
          // One equipment over the budget alone is listed all the same.
          const one = yield* get(`/?limit=1&cursor=${encodeURIComponent(first.json.next_cursor)}`, token)
          expect(one.json.data.map((e: any) => e.sensors.length)).toEqual([LISTED_SENSORS])
        }))

      it.effect("filters by name or uuid (any case) and by status", () =>
        Effect.gen(function*() {
          const uuids = (json: any) => json.data.map((e: any) => e.uuid)
          const byName = yield* get("/?name=EQ-B")
          expect([uuids(byName.json), byName.json.total]).toEqual([["eq-b"], 1])
          const byPart = yield* get("/?name=equipment")
          expect([uuids(byPart.json), byPart.json.total]).toEqual([["eq-a", "eq-b", "eq-c"], 3])
          const byStatus = yield* get("/?status=inactive")
          expect([uuids(byStatus.json), byStatus.json.total]).toEqual([["zz-idle"], 1])
          const both = yield* get("/?status=active&name=freezer")
          expect([uuids(both.json), both.json.total]).toEqual([[], 0])
          // The other tenant's extra equipment matches no filter here.
          const secret = yield* get("/?name=secret")
          expect([uuids(secret.json), secret.json.total]).toEqual([[], 0])
        }))

      it.effect("pages by cursor, with the same total on every page", () =>
        Effect.gen(function*() {
          const first = yield* get("/?limit=3")
          expect(first.json.data.map((e: any) => e.uuid)).toEqual(["eq-a", "eq-b", "eq-c"])
          expect(first.json.total).toBe(4)
          expect(first.json.next_cursor).toBeTypeOf("string")
          const second = yield* get(`/?limit=3&cursor=${encodeURIComponent(first.json.next_cursor)}`)
          expect([second.json.data.map((e: any) => e.uuid), second.json.total, second.json.next_cursor])
            .toEqual([["zz-idle"], 4, null])
          const filtered = yield* get("/?limit=1&name=equipment")
          const next = yield* get(`/?limit=1&name=equipment&cursor=${encodeURIComponent(filtered.json.next_cursor)}`)
          expect(next.json.data.map((e: any) => e.uuid)).toEqual(["eq-b"])
          // A forged cursor holding a NUL, which the database cannot compare with text.
          const withNul = Buffer.from(JSON.stringify(["\u0000", "x"])).toString("base64url")
          for (const [path, where] of [["/?cursor=nonsense", "cursor"], [`/?cursor=${withNul}`, "cursor"], ["/?limit=0", "limit"], ["/?limit=201", "limit"], ["/?limit=0x10", "limit"]]) {
            const refused = yield* get(path!)
            expect([path, refused.status, refused.json.error, refused.json.path]).toEqual([path, 400, "invalid_parameter", where])
          }
        }))

      it.effect("one equipment as the list describes it; unknown or another tenant's answers 404", () =>
        Effect.gen(function*() {
          const one = yield* get("/eq-b")
          expect(one.status).toBe(200)
          expect(withoutSparkline(one.json)).toEqual(expected("default", "eq-b"))
          expect(one.json.sparkline.sensor_uuid).toBe("eq-b-temp")
          for (const path of ["/nobody", "/secret"]) {
            const missing = yield* get(path)
            expect([path, missing.status, missing.json.error]).toEqual([path, 404, "not_found"])
          }
        }))

      it.effect("a device token may not read the equipments", () =>
        Effect.gen(function*() {
          for (const path of ["/", "/eq-a"]) {
            const refused = yield* get(path, deviceToken())
            expect([path, refused.status, refused.json.error]).toEqual([path, 403, "forbidden"])
          }
          const anonymous = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/api/v1/equipments`))
          expect(anonymous.status).toBe(401)
        }))
    })
  })

for (const database of databases) equipmentsSuite(database)
