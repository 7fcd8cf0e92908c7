import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { TelemetryStore } from "@telemetry/domain"
import { claim } from "@telemetry/domain/testing"
import { databases, storeOn, type TestDatabase } from "@telemetry/infra/testing"
import { freePort } from "@telemetry/testbed/FreePort"
import { Clock, Effect, Layer, Stream } from "effect"
import { createHash } from "node:crypto"
import { bearer, signToken } from "./support/auth.js"
import { generate, itemsOf } from "./support/dataset.js"
import { DAY, HOUR } from "./support/reference.js"
import { serverOn } from "./support/server.js"

/**
 * Every analytics and equipments answer, byte for byte, as the server gave them before their speed-up: a fixed
 * dataset, a server whose clock stands still at `NOW`, and the SHA-256 of each body in the snapshot (with its
 * length and its start, to see what changed). Any change to an answer, down to a digit or a key's place, fails.
 */
const NOW = Date.parse("2026-11-20T10:17:23.456Z")
const iso = (ms: number) => new Date(ms).toISOString()

/** The live clock, stopped at `at`: the handlers' "now" (stats periods, default ranges, stale equipments). */
const stoppedAt = (at: number): Clock.Clock => {
  const live = Clock.make()
  return {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => at,
    currentTimeMillis: Effect.succeed(at),
    unsafeCurrentTimeNanos: () => BigInt(at) * 1_000_000n,
    currentTimeNanos: Effect.succeed(BigInt(at) * 1_000_000n),
    sleep: (duration) => live.sleep(duration)
  }
}

/** A reader token valid at `NOW`. */
const reader = (tenant: string) =>
  signToken({ tenant_id: tenant, user_type: "reader", sub: "answers", iat: NOW / 1000, exp: NOW / 1000 + 3600 })

const range = `start_date=${iso(NOW - 3 * DAY)}&end_date=${iso(NOW + HOUR)}`

/** Every route of the analytics and equipments groups, with their filters. */
const requests: ReadonlyArray<readonly [tenant: string, path: string]> = [
  ...["hour", "day", "raw"].map((period) => ["default", `analytics/equipment/eq-a/history?period=${period}&${range}`] as const),
  ["default", `analytics/equipment/eq-b/history?period=hour&sensor_type=temperature&${range}`],
  ["default", `analytics/equipment/eq-a/history?period=raw&limit=5&${range}`],
  ["default", "analytics/equipment/eq-a/history"],
  ["default", `analytics/equipment/nobody/history?period=hour&${range}`],
  ...["hour", "day", "raw"].map((period) => ["default", `analytics/sensor/probe-1/history?period=${period}&${range}`] as const),
  ["default", `analytics/sensor/probe-1/history?period=raw&equipment_uuid=eq-b&${range}`],
  ...["24h", "7d", "30d", "1y"].map((period) => ["default", `analytics/equipment/eq-b/stats?period=${period}`] as const),
  ["default", "analytics/equipment/eq-a/stats?period=7d&sensor_type=door"],
  ["default", "analytics/home-assistant/eq-c"],
  ["default", "analytics/home-assistant/eq-a?hours=168"],
  ["default", "analytics/home-assistant/eq-a?hours=3&sensor_type=temperature"],
  ["tenant-b", `analytics/equipment/eq-a/history?period=hour&${range}`],
  ["default", "equipments"],
  ["default", "equipments?limit=2"],
  ["default", "equipments?name=EQ-B"],
  ["default", "equipments?status=active&name=equipment"],
  ["default", "equipments/eq-b"],
  ["default", "equipments/nobody"],
  ["tenant-b", "equipments"]
]

/** The aggregates materialized up to their policies' end offsets before `NOW`, in the edition's own way. */
const refreshed = (database: TestDatabase) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.forEach([["telemetry_hourly", HOUR], ["telemetry_daily", DAY]] as const, ([view, offset]) =>
      database.edition === "timescale"
        ? sql`CALL refresh_continuous_aggregate(${view}::regclass, NULL, ${new Date(NOW - offset)}::timestamptz)`
        : sql`SELECT refresh_telemetry_aggregate(${view}, NULL, ${new Date(NOW - offset)}::timestamptz)`, { discard: true }))

const answersSuite = (database: TestDatabase) =>
  describe(`analytics and equipments answers on ${database.name}`, () => {
    it.scopedLive("are the same bytes as before, from raw rows and from the refreshed aggregates", () =>
      Effect.gen(function*() {
        const port = yield* Effect.promise(freePort)
        // A second server over the same database reads histories 3 rows at a time: the same bytes, page by page.
        const pagedPort = yield* Effect.promise(freePort)
        const db = storeOn(database, 5_000)
        const context = yield* Layer.build(
          Layer.provideMerge(serverOn(db, port), db).pipe(Layer.provide(Layer.setClock(stoppedAt(NOW))))
        )
        yield* Layer.build(
          Layer.fresh(serverOn(Layer.succeedContext(context), pagedPort, { ANALYTICS_PAGE_ROWS: "3" })).pipe(
            Layer.provide(Layer.setClock(stoppedAt(NOW)))
          )
        )
        const points = generate(20_261_120, NOW - 2 * 60_000)
        yield* Effect.forEach(["default", "tenant-b"], (tenantId) =>
          Effect.flatMap(TelemetryStore, (store) => store.load(claim({ tenantId }), Stream.fromIterable(itemsOf(tenantId, points)))), {
          discard: true
        }).pipe(Effect.provide(context))

        const answersAt = (at: number) =>
          Effect.forEach(requests, ([tenant, path]) =>
            Effect.promise(async () => {
              const response = await fetch(`http://127.0.0.1:${at}/api/v1/${path}`, { headers: bearer(reader(tenant)) })
              return { key: `${tenant} ${path}`, status: response.status, type: response.headers.get("content-type"), body: await response.text() }
            }))
        // Read 3 rows at a time, the same rows in the same order; a bucket aggregated from raw rows at query time may
        // differ in its last digits (the page's bounds change the plan, and so the order in which its values are summed).
        const samePages = (whole: ReadonlyArray<{ key: string; body: string }>, paged: typeof whole) =>
          whole.forEach(({ body, key }, i) => {
            const within = (text: string) => JSON.parse(text, (_, value) => typeof value === "number" ? Number(value.toPrecision(12)) : value)
            if (key.includes("period=raw")) expect([key, paged[i]!.body]).toEqual([key, body])
            else expect([key, within(paged[i]!.body)]).toEqual([key, within(body)])
          })
        const answers = Effect.gen(function*() {
          const whole = yield* answersAt(port)
          samePages(whole, yield* answersAt(pagedPort))
          return Object.fromEntries(whole.map(({ body, key, status, type }) => [key, {
            status,
            type,
            bytes: Buffer.byteLength(body),
            sha256: createHash("sha256").update(body).digest("hex"),
            start: body.slice(0, 160)
          }]))
        })

        expect(yield* answers).toMatchSnapshot("from raw rows")
        yield* refreshed(database).pipe(Effect.provide(context))
        expect(yield* answers).toMatchSnapshot("from the refreshed aggregates")
      }), { timeout: 180_000 })
  })

for (const database of databases) answersSuite(database)
