/**
 * 4. Analytics: latency of a 30-day equipment history and of 30-day stats over HTTP, on a generated dataset (20
 * equipments × 5 sensors, evenly spaced readings over the last 31 days): first with no aggregate refreshed yet, so
 * the views aggregate raw rows at query time, then with the aggregates refreshed as their policies keep them.
 */
import * as PostgresClient from "@telemetry/infra/db/PostgresClient"
import * as Analytics from "@telemetry/ingest/analytics/Analytics"
import { Effect, Layer, Redacted } from "effect"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ingestApp } from "./services.js"
import { freshDatabase, percentile, pgClient, progress, timed, token } from "./support.js"

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
}

export interface AnalyticsResult {
  readonly rows: number
  readonly loadSeconds: number
  readonly refreshSeconds: number
  readonly queries: ReadonlyArray<QueryLatency>
}

const EQUIPMENTS = 20
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

/**
 * The same two queries from the aggregates through the Analytics service in this process: the part of the HTTP
 * latency spent in the database and in decoding its rows, the rest being routing and encoding the response.
 */
const serviceLatencies = (url: string, requests: number) =>
  Effect.gen(function*() {
    const analytics = yield* Analytics.Analytics
    const now = Date.now()
    const hourly: Analytics.Range = { start: new Date(now - 30 * DAY), end: new Date(now) }
    // As the stats endpoint takes its 30 days: whole days back from now.
    const daily: Analytics.Range = { start: new Date(Math.floor((now - 30 * DAY) / DAY) * DAY), end: new Date(now) }
    const calls: ReadonlyArray<{
      readonly query: string
      readonly run: (scope: Analytics.Scope) => Effect.Effect<ReadonlyArray<unknown>, unknown>
    }> = [
      { query: "equipment history, hourly, 30 days", run: (scope) => analytics.hourly(scope, hourly, 10_000) },
      { query: "equipment stats, 30 days", run: (scope) => analytics.stats("day", scope, daily) }
    ]
    const results: Array<QueryLatency> = []
    for (const call of calls) {
      const latencies: Array<number> = []
      let rows = 0
      for (let k = 0; k <= requests; k++) {
        const scope: Analytics.Scope = { by: "equipment", tenantId: "default", equipmentUuid: equipmentUuid(k) }
        const [answer, ms] = yield* timed(call.run(scope))
        if (k > 0) latencies.push(ms) // the first is a warm-up
        rows = answer.length
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
    const { base } = yield* ingestApp({ DATABASE_URL: db.url, STORAGE_DIR: dir })
    const client = yield* pgClient(db.url)
    const query = (text: string) => Effect.promise(() => client.query(text))

    yield* progress(`analytics: generating ${options.rows.toLocaleString("en")} readings over ${SPAN_DAYS} days`)
    const [, loadMs] = yield* timed(query(generate(options.rows)))
    yield* query("VACUUM ANALYZE telemetry_data")
    const rows = Number((yield* query("SELECT count(*) AS n FROM telemetry_data")).rows[0].n)
    yield* progress(`analytics: ${rows.toLocaleString("en")} readings in ${(loadMs / 1000).toFixed(0)} s`)

    const reader = yield* token("reader", "bench-reader")
    const end = new Date()
    const start = new Date(end.getTime() - 30 * 86_400_000)
    const range = `start_date=${start.toISOString()}&end_date=${end.toISOString()}`
    const queries = [
      { query: "equipment history, hourly, 30 days", path: (eq: string) => `equipment/${eq}/history?period=hour&${range}` },
      { query: "equipment history, daily, 30 days", path: (eq: string) => `equipment/${eq}/history?period=day&${range}` },
      { query: "equipment stats, 30 days", path: (eq: string) => `equipment/${eq}/stats?period=30d` },
      { query: "equipment history, raw, 30 days (limit 10 000)", path: (eq: string) => `equipment/${eq}/history?period=raw&${range}` }
    ]

    const measure = (source: QueryLatency["source"], q: (typeof queries)[number], requests: number) =>
      Effect.gen(function*() {
        const get = (k: number) =>
          Effect.promise(async () => {
            const response = await fetch(`${base}/api/v1/analytics/${q.path(equipmentUuid(k))}`, {
              headers: { authorization: `Bearer ${reader}` }
            })
            const body = (await response.json()) as { data?: Array<unknown>; sensors?: Array<unknown> }
            if (!response.ok) throw new Error(`${q.query}: ${response.status} ${JSON.stringify(body).slice(0, 300)}`)
            return (body.data ?? body.sensors ?? []).length
          })
        yield* get(0) // warm-up
        const latencies: Array<number> = []
        let answerRows = 0
        for (let k = 1; k <= requests; k++) {
          const [n, ms] = yield* timed(get(k))
          latencies.push(ms)
          answerRows = n
        }
        const result: QueryLatency = {
          query: q.query,
          source,
          via: "HTTP",
          p50: percentile(latencies, 0.5),
          p95: percentile(latencies, 0.95),
          requests,
          rows: answerRows
        }
        yield* progress(`analytics: ${q.query} from ${source}: p95 ${result.p95.toFixed(1)} ms (${answerRows} rows)`)
        return result
      })

    const results: Array<QueryLatency> = []
    // Aggregating raw rows at query time is slow on the large dataset: fewer requests there.
    const fromRaw = Math.max(5, Math.round(options.requests / 5))
    const [hourly, daily, stats, raw] = queries
    for (const q of [hourly!, daily!, stats!]) results.push(yield* measure("raw rows", q, fromRaw))
    results.push(yield* measure("raw rows", raw!, options.requests))

    yield* progress("analytics: refreshing the aggregates as their policies keep them")
    const [, refreshMs] = yield* timed(query(`
      SELECT refresh_telemetry_aggregate('telemetry_hourly', NULL, now() - INTERVAL '1 hour');
      SELECT refresh_telemetry_aggregate('telemetry_daily', NULL, now() - INTERVAL '1 day');`))
    // VACUUM runs outside a transaction, so one statement at a time.
    yield* query("VACUUM ANALYZE telemetry_hourly_materialized")
    yield* query("VACUUM ANALYZE telemetry_daily_materialized")
    for (const q of [hourly!, daily!, stats!]) results.push(yield* measure("aggregates", q, options.requests))
    results.push(...yield* serviceLatencies(db.url, options.requests))
    return { rows, loadSeconds: loadMs / 1000, refreshSeconds: refreshMs / 1000, queries: results } satisfies AnalyticsResult
  })
