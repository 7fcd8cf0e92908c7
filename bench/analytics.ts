/**
 * 4. Analytics: latency of every analytics route and of the equipments listing over HTTP, on a generated dataset:
 * 20 equipments × 5 sensors with evenly spaced readings over the last 31 days, among 10 000 equipments in all (the
 * others with two sensors and a reading every 3 hours of the last day, for the console's list). First with no
 * aggregate refreshed yet, so the views aggregate raw rows at query time, then with the aggregates refreshed as
 * their policies keep them.
 */
import * as PostgresClient from "@telemetry/infra/db/PostgresClient"
import * as Analytics from "@telemetry/ingest/analytics/Analytics"
import { Instant } from "@telemetry/ingest/analytics/Instant"
import type { JsonRows } from "@telemetry/ingest/analytics/JsonRows"
import { HourRow } from "@telemetry/ingest/analytics/Rows"
import { Effect, Layer, Option, Redacted, Stream } from "effect"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ingestApp } from "./services.js"
import { cpuSeconds, freshDatabase, percentile, pgClient, progress, timed, token } from "./support.js"

export interface QueryLatency {
  readonly query: string
  readonly source: "raw rows" | "aggregates"
  /** Over HTTP, or the Analytics service called in this process (the query and the decoding of its rows). */
  readonly via: "HTTP" | "service"
  readonly p50: number
  readonly p95: number
  readonly requests: number
  /** Rows (or sensors) in one answer. */
  readonly rows: number
  /** CPU time of the ingest process per request (over HTTP): unlike latencies, it hardly depends on what else runs. */
  readonly cpuMs?: number
}

export interface AnalyticsResult {
  readonly rows: number
  readonly loadSeconds: number
  readonly refreshSeconds: number
  readonly queries: ReadonlyArray<QueryLatency>
}

const EQUIPMENTS = 20
/** Equipments of the tenant in all, for the equipments listing. */
const LISTED = 10_000
const SPAN_DAYS = 31
const DAY = 86_400_000

/** The uuid of the `k`-th equipment, going round them. */
const equipmentUuid = (k: number) => `bench-${String((k % EQUIPMENTS) + 1).padStart(2, "0")}`

const generate = (rows: number) => `
  INSERT INTO equipments (uuid, name, location)
    SELECT 'bench-' || lpad(e::text, 2, '0'), 'Freezer ' || e, 'Store ' || (e % 5) FROM generate_series(1, ${EQUIPMENTS}) e;
  INSERT INTO sensors (equipment_id, uuid, name, type, unit)
    SELECT e.id, e.uuid || '-' || k.kind, k.name, k.type, k.unit FROM equipments e CROSS JOIN (VALUES
      ('temp', 'Temperature', 'temperature', '°C'), ('hum', 'Humidity', 'humidity', '%'), ('door', 'Door', 'door', NULL),
      ('power', 'Power', 'power', 'W'), ('volt', 'Voltage', 'voltage', 'V')) AS k (kind, name, type, unit);
  -- In time order, as readings arrive; the door reports a status, the others a value.
  INSERT INTO telemetry_data (time, equipment_id, sensor_id, value, status, metadata)
    SELECT now() - INTERVAL '${SPAN_DAYS} days' + i * (INTERVAL '${SPAN_DAYS} days' / n.per_sensor),
      s.equipment_id, s.id,
      CASE WHEN s.type = 'door' THEN NULL ELSE s.id % 50 + 10 * sin(i / 50.0) + (i * 7919 % 100) / 100.0 END,
      CASE WHEN s.type = 'door' THEN (CASE WHEN i % 7 = 0 THEN 'open' ELSE 'closed' END) END,
      CASE WHEN i % 10 = 0 THEN '{"battery": 80}'::jsonb END
    FROM (SELECT ceil(${rows}::float8 / count(*))::int AS per_sensor FROM sensors) n,
      generate_series(0, n.per_sensor - 1) i CROSS JOIN sensors s;
`

/** The rest of the fleet: named "Unit N" (after the Freezers by name), some inactive, a few readings each. */
const generateFleet = `
  INSERT INTO equipments (uuid, name, location, status)
    SELECT 'fleet-' || lpad(e::text, 5, '0'), 'Unit ' || e, 'Site ' || (e % 40),
      CASE WHEN e % 10 = 0 THEN 'inactive' WHEN e % 97 = 0 THEN 'maintenance' ELSE 'active' END
    FROM generate_series(1, ${LISTED - EQUIPMENTS}) e;
  INSERT INTO sensors (equipment_id, uuid, name, type, unit)
    SELECT e.id, e.uuid || '-' || k.kind, k.name, k.type, k.unit FROM equipments e CROSS JOIN (VALUES
      ('temp', 'Temperature', 'temperature', '°C'), ('door', 'Door', 'door', NULL)) AS k (kind, name, type, unit)
    WHERE e.uuid LIKE 'fleet-%';
  INSERT INTO telemetry_data (time, equipment_id, sensor_id, value, status)
    SELECT date_trunc('minute', now()) - (s.id % 180) * INTERVAL '1 minute' - h * INTERVAL '3 hours', s.equipment_id, s.id,
      CASE WHEN s.type = 'door' THEN NULL ELSE s.id % 30 - 20 + h / 10.0 END,
      CASE WHEN s.type = 'door' THEN (CASE WHEN (s.id + h) % 3 = 0 THEN 'open' ELSE 'closed' END) END
    FROM sensors s CROSS JOIN generate_series(0, 7) h
    WHERE s.uuid LIKE 'fleet-%';
`

/**
 * The same two queries from the aggregates through the Analytics service in this process: the part of the HTTP
 * latency spent in the database and in writing its rows' JSON, the rest being routing and sending the response.
 */
const serviceLatencies = (url: string, requests: number) =>
  Effect.gen(function*() {
    const analytics = yield* Analytics.Analytics
    const now = Date.now()
    const hourly: Analytics.Range = { start: Instant.fromMillis(now - 30 * DAY), end: Instant.fromMillis(now) }
    // As the stats endpoint takes its 30 days: whole days back from now.
    const daily: Analytics.Range = { start: Instant.fromMillis(Math.floor((now - 30 * DAY) / DAY) * DAY), end: Instant.fromMillis(now) }
    // Every page of the answer written, as a client taking all of it has them.
    const written = Effect.flatMap((rows: JsonRows<unknown>) => {
      const { first, rest } = rows("", "")
      return Option.match(rest, {
        onNone: () => Effect.succeed(first),
        onSome: (pages) => Effect.map(Stream.runCollect(pages), (more) => [...first, ...more])
      })
    })
    const calls: ReadonlyArray<{
      readonly query: string
      readonly run: (scope: Analytics.Scope) => Effect.Effect<ReadonlyArray<Uint8Array>, unknown>
    }> = [
      {
        query: "equipment history, hourly, 30 days",
        run: (scope) => written(analytics.buckets("hour", scope, hourly, HourRow, 10_000))
      },
      { query: "equipment stats, 30 days", run: (scope) => written(analytics.stats("day", scope, daily)) }
    ]
    const results: Array<QueryLatency> = []
    for (const call of calls) {
      const latencies: Array<number> = []
      let rows = 0
      for (let k = 0; k <= requests; k++) {
        const scope: Analytics.Scope = { by: "equipment", tenantId: "default", equipmentUuid: equipmentUuid(k) }
        const [answer, ms] = yield* timed(call.run(scope))
        if (k > 0) latencies.push(ms) // the first is a warm-up
        rows = (JSON.parse(Buffer.concat(answer).toString()) as ReadonlyArray<unknown>).length
      }
      const result: QueryLatency = {
        query: call.query,
        source: "aggregates",
        via: "service",
        p50: percentile(latencies, 0.5),
        p95: percentile(latencies, 0.95),
        requests,
        rows
      }
      yield* progress(`analytics: ${call.query} from the service: p95 ${result.p95.toFixed(1)} ms`)
      results.push(result)
    }
    return results
  }).pipe(
    Effect.orDie,
    Effect.provide(Analytics.Analytics.Default.pipe(Layer.provide(PostgresClient.layer({ url: Redacted.make(url), poolSize: 2 }))))
  )

export const analyticsBenchmark = (options: { readonly rows: number; readonly requests: number }) =>
  Effect.gen(function*() {
    const db = yield* freshDatabase
    const dir = yield* Effect.acquireRelease(
      Effect.promise(() => mkdtemp(join(tmpdir(), "bench-analytics-"))),
      (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
    )
    // Its own embedded storage and queue: nothing is ingested here, and the shared bucket's objects would only
    // be re-queued by the embedded queue's recovery.
    yield* progress("analytics: starting the service (it applies the migrations)")
    const { app, base } = yield* ingestApp({ DATABASE_URL: db.url, STORAGE_DIR: dir })
    const client = yield* pgClient(db.url)
    const query = (text: string) => Effect.promise(() => client.query(text))

    yield* progress(`analytics: generating ${options.rows.toLocaleString("en")} readings over ${SPAN_DAYS} days`)
    const [, loadMs] = yield* timed(query(generate(options.rows)))
    yield* progress(`analytics: generating the rest of the ${LISTED.toLocaleString("en")} equipments`)
    yield* query(generateFleet)
    yield* query("VACUUM ANALYZE telemetry_data")
    yield* query("VACUUM ANALYZE equipments")
    yield* query("VACUUM ANALYZE sensors")
    const rows = Number((yield* query("SELECT count(*) AS n FROM telemetry_data")).rows[0].n)
    yield* progress(`analytics: ${rows.toLocaleString("en")} readings in ${(loadMs / 1000).toFixed(0)} s`)

    const reader = yield* token("reader", "bench-reader")
    const end = new Date()
    const start = new Date(end.getTime() - 30 * 86_400_000)
    const range = `start_date=${start.toISOString()}&end_date=${end.toISOString()}`
    /** A route, as the `k`-th request asks it (going round the equipments with readings). */
    interface Route {
      readonly query: string
      readonly path: (k: number) => string
    }
    const history = (period: string) => (k: number) => `analytics/equipment/${equipmentUuid(k)}/history?period=${period}&${range}`
    const hourly: Route = { query: "equipment history, hourly, 30 days", path: history("hour") }
    const daily: Route = { query: "equipment history, daily, 30 days", path: history("day") }
    const stats30d: Route = { query: "equipment stats, 30 days", path: (k) => `analytics/equipment/${equipmentUuid(k)}/stats?period=30d` }
    const raw: Route = { query: "equipment history, raw, 30 days (limit 10 000)", path: history("raw") }
    const aggregateRoutes: ReadonlyArray<Route> = [
      hourly,
      daily,
      raw,
      {
        query: "equipment history, hourly, 30 days, one sensor type",
        path: (k) => `${history("hour")(k)}&sensor_type=temperature`
      },
      {
        query: "sensor history, hourly, 30 days",
        path: (k) => `analytics/sensor/${equipmentUuid(k)}-temp/history?period=hour&${range}`
      },
      {
        query: "sensor history, raw, 30 days (limit 10 000)",
        path: (k) => `analytics/sensor/${equipmentUuid(k)}-temp/history?period=raw&${range}`
      },
      { query: "equipment stats, 24 hours", path: (k) => `analytics/equipment/${equipmentUuid(k)}/stats?period=24h` },
      stats30d,
      { query: "equipment stats, 1 year", path: (k) => `analytics/equipment/${equipmentUuid(k)}/stats?period=1y` },
      { query: "Home Assistant, 168 hours", path: (k) => `analytics/home-assistant/${equipmentUuid(k)}?hours=168` },
      { query: `equipments, first page (of ${LISTED.toLocaleString("en")})`, path: () => "equipments" },
      { query: "equipments, filtered by name", path: (k) => `equipments?name=unit%20${10 + (k % 90)}` },
      { query: "equipments, filtered by status", path: () => "equipments?status=inactive" },
      { query: "one equipment", path: (k) => `equipments/${equipmentUuid(k)}` }
    ]

    const measure = (source: QueryLatency["source"], route: Route, requests: number) =>
      Effect.gen(function*() {
        /** The answer's bytes: a request's latency ends with its last byte, before the client parses it. */
        const get = (k: number) =>
          Effect.promise(async () => {
            const response = await fetch(`${base}/api/v1/${route.path(k)}`, {
              headers: { authorization: `Bearer ${reader}` }
            })
            const text = await response.text()
            if (!response.ok) throw new Error(`${route.query}: ${response.status} ${text.slice(0, 300)}`)
            return text
          })
        const rowsOf = (text: string) => {
          const body = JSON.parse(text) as { data?: Array<unknown>; sensors?: Array<unknown> }
          return (body.data ?? body.sensors ?? []).length
        }
        yield* get(0) // warm-up
        const latencies: Array<number> = []
        let answerRows = 0
        const cpuBefore = cpuSeconds(app.pid)
        for (let k = 1; k <= requests; k++) {
          const [text, ms] = yield* timed(get(k))
          latencies.push(ms)
          answerRows = rowsOf(text)
        }
        const result: QueryLatency = {
          query: route.query,
          source,
          via: "HTTP",
          p50: percentile(latencies, 0.5),
          p95: percentile(latencies, 0.95),
          requests,
          rows: answerRows,
          cpuMs: ((cpuSeconds(app.pid) - cpuBefore) * 1000) / requests
        }
        yield* progress(
          `analytics: ${route.query} from ${source}: p95 ${result.p95.toFixed(1)} ms, ` +
            `${result.cpuMs!.toFixed(1)} ms CPU (${answerRows} rows)`
        )
        return result
      })

    const results: Array<QueryLatency> = []
    // Aggregating raw rows at query time is slow on the large dataset: fewer requests there.
    const fromRaw = Math.max(5, Math.round(options.requests / 5))
    for (const route of [hourly, daily, stats30d]) results.push(yield* measure("raw rows", route, fromRaw))
    results.push(yield* measure("raw rows", raw, options.requests))

    yield* progress("analytics: refreshing the aggregates as their policies keep them")
    const [, refreshMs] = yield* timed(query(`
      SELECT refresh_telemetry_aggregate('telemetry_hourly', NULL, now() - INTERVAL '1 hour');
      SELECT refresh_telemetry_aggregate('telemetry_daily', NULL, now() - INTERVAL '1 day');`))
    // VACUUM runs outside a transaction, so one statement at a time.
    yield* query("VACUUM ANALYZE telemetry_hourly_materialized")
    yield* query("VACUUM ANALYZE telemetry_daily_materialized")
    for (const route of aggregateRoutes) results.push(yield* measure("aggregates", route, options.requests))
    results.push(...yield* serviceLatencies(db.url, options.requests))
    return { rows, loadSeconds: loadMs / 1000, refreshSeconds: refreshMs / 1000, queries: results } satisfies AnalyticsResult
  })
