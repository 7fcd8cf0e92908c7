import { describe, expect, it } from "@effect/vitest"
import { Maintenance, TelemetryStore } from "@telemetry/domain"
import { claim } from "@telemetry/domain/testing"
import * as SqlMaintenance from "@telemetry/infra/db/SqlMaintenance"
import { databases, storeOn } from "@telemetry/infra/testing"
import { freePort } from "@telemetry/testbed/FreePort"
import { Effect, Layer, Stream } from "effect"
import { bearer, readerToken } from "./support/auth.js"
import { generate, itemsOf } from "./support/dataset.js"
import { serverOn } from "./support/server.js"

const HOUR = 3_600_000
const iso = (ms: number) => new Date(ms).toISOString()

/** Every analytics request a dashboard makes, with explicit ranges where the endpoint takes them. */
const requests = (end: number) => {
  const range = `start_date=${iso(end - 3 * 24 * HOUR)}&end_date=${iso(end + HOUR)}`
  return [
    ...["hour", "day", "raw"].map((period) => `equipment/eq-a/history?period=${period}&${range}`),
    `equipment/eq-b/history?period=hour&sensor_type=temperature&${range}`,
    `sensor/probe-1/history?period=hour&${range}`,
    `sensor/probe-1/history?period=day&${range}`,
    ...["24h", "7d", "30d", "1y"].map((period) => `equipment/eq-b/stats?period=${period}`),
    "home-assistant/eq-c?hours=48",
    "home-assistant/eq-a?hours=168&sensor_type=temperature"
  ]
}

/** The answer without the bounds the server derives from its own clock (the two servers answer moments apart). */
const withoutClockBounds = ({ end_date: _e, start_date: _s, ...rest }: Record<string, unknown>) => rest

/**
 * `actual` equals `expected`, numbers to a relative 1e-9: PostgreSQL 15 and 17 may differ in the last bits of a sum
 * or a stddev (rounding both would still split two such values that straddle a rounding step).
 */
const expectAlike = (actual: unknown, expected: unknown, path: string): void => {
  if (typeof expected === "number" && typeof actual === "number") {
    expect(Math.abs(actual - expected), `${path}: ${actual} vs ${expected}`).toBeLessThanOrEqual(
      1e-9 * Math.max(Math.abs(actual), Math.abs(expected))
    )
  } else if (Array.isArray(expected)) {
    expect(Array.isArray(actual) ? actual.length : actual, path).toBe(expected.length)
    expected.forEach((v, i) => expectAlike((actual as ReadonlyArray<unknown>)[i], v, `${path}[${i}]`))
  } else if (expected !== null && typeof expected === "object") {
    const fields = actual as Record<string, unknown>
    expect(Object.keys(fields).sort(), path).toEqual(Object.keys(expected).sort())
    for (const [k, v] of Object.entries(expected)) expectAlike(fields[k], v, `${path}.${k}`)
  } else {
    expect(actual, path).toBe(expected)
  }
}

describe("the same analytics requests on embedded TimescaleDB and on PostgreSQL 15", () => {
  it.scopedLive("return the same rows, before and after the maintenance jobs ran", () =>
    Effect.gen(function*() {
      const end = Date.now() - 2 * 60_000
      const points = generate(20_261_129, end)
      const servers = yield* Effect.forEach(databases, (database) =>
        Effect.gen(function*() {
          const port = yield* Effect.promise(freePort)
          const db = SqlMaintenance.layer.pipe(Layer.provideMerge(storeOn(database, 5_000)))
          const context = yield* Layer.build(Layer.provideMerge(serverOn(db, port), db))
          yield* Effect.flatMap(TelemetryStore, (store) =>
            store.load(claim(), Stream.fromIterable(itemsOf("default", points)))).pipe(
              Effect.provide(context)
            )
          const runJobs = Effect.flatMap(Maintenance.Maintenance, (m) => m.runAll).pipe(Effect.provide(context))
          return { name: database.name, base: `http://127.0.0.1:${port}/api/v1/analytics`, runJobs }
        }))

      const compare = Effect.forEach(requests(end), (path) =>
        Effect.promise(async () => {
          const [first, second] = await Promise.all(servers.map(async (server) => {
            const response = await fetch(`${server.base}/${path}`, { headers: bearer(readerToken()) })
            const json = withoutClockBounds((await response.json()) as Record<string, unknown>)
            return { status: response.status, json }
          }))
          expect(first!.status, path).toBe(200)
          expect(second!.status, path).toBe(200)
          expectAlike(second!.json, first!.json, path)
          const rows = (first!.json.data ?? first!.json.sensors) as ReadonlyArray<unknown>
          expect(rows.length, path).toBeGreaterThan(0)
        }))

      yield* compare
      yield* Effect.forEach(servers, (server) => server.runJobs, { discard: true })
      yield* compare
    }), { timeout: 180_000 })
})
