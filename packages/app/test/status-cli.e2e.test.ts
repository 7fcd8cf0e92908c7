import { describe, expect, it } from "@effect/vitest"
import { bulkPayload, claim } from "@telemetry/domain/testing"
import { toMessage } from "@telemetry/infra/queue/kafka/KafkaMessages"
import { freePort } from "@telemetry/testbed/FreePort"
import { Effect } from "effect"
import { gzipSync } from "node:zlib"
import type * as StatusReport from "../src/cli/StatusReport.js"
import { runCli } from "./support/cli.js"
import { samplesOf, valueOf } from "./support/exposition.js"
import { eventually } from "./support/pipeline.js"
import { started, startedIngest, startWorker, until } from "./support/process.js"
import { pgClient, runningStandIns, standIns } from "./support/standIns.js"
import { postGzipAs } from "./support/uploads.js"

// Issue 14: `pnpm status --json`, run as a process against Kafka, S3 and PostgreSQL after a known load with one
// dead letter; then with storage stopped. The worker's scrape shows the same maintenance facts.

const TOPIC = "telemetry.raw"
const DLQ = "telemetry.dlq"
const PAYLOADS = 4
const ITEMS = 2
const READINGS_PER_ITEM = 25
const HOUR = 3_600_000
const DAY = 24 * HOUR

/** The report as parsed from stdout (dates stay ISO strings). */
type Parsed = StatusReport.Report & { readonly dependencies: ReadonlyArray<StatusReport.DependencyStatus> }

describe("pnpm status", () => {
  it.scopedLive("reports the dependencies, no lag after a load, the dead letters by reason and the watermarks; exit 1 naming a stopped one", () =>
    Effect.gen(function*() {
      const { database, env, kafka, s3 } = yield* runningStandIns
      const { base, ingest } = yield* startedIngest(env)
      const loadedFrom = Date.now()

      // Readings of 06:00–06:24 ten days ago: older than the refresh policies' windows, so the worker refreshes
      // their buckets as late data, which moves both watermarks.
      const start = Math.floor((Date.now() - 10 * DAY) / DAY) * DAY + 6 * HOUR
      const bodies = Array.from({ length: PAYLOADS }, (_, i) =>
        gzipSync(JSON.stringify(bulkPayload(ITEMS, READINGS_PER_ITEM, start, `st${i}`))))
      const statuses = yield* Effect.promise(() => Promise.all(bodies.map((body, i) => postGzipAs(base, body, `device-${i}`))))
      expect(statuses).toEqual(bodies.map(() => 202))
      // A claim whose object does not exist, delivered twice (re-published, as a replay does): two dead letters,
      // object_not_found, of one claim.
      const lost = toMessage(claim())
      yield* kafka.produce(TOPIC, [lost, lost])

      const metricsPort = yield* Effect.promise(freePort)
      const worker = yield* started(() => startWorker({ ...env, METRICS_PORT: String(metricsPort) }))
      const db = yield* pgClient({ connectionString: database.url })
      const readings = async () => Number((await db.query("SELECT count(*) AS n FROM telemetry_data")).rows[0].n)
      yield* Effect.promise(() =>
        until(worker, async () => (await readings()) === PAYLOADS * ITEMS * READINGS_PER_ITEM, 120_000, "the readings loaded")
      )
      yield* eventually(kafka.messages(DLQ), (letters) => letters.length === 2)

      // The last claims' offsets are committed soon after their load: lag 0 once they are.
      let report: Parsed | undefined
      yield* Effect.promise(() =>
        until(ingest, async () => {
          const run = await runCli("status", ["--json"], env)
          if (run.code !== 0) throw new Error(`pnpm status failed (${run.code}): ${run.stderr}`)
          report = JSON.parse(run.stdout) as Parsed
          return report.queue?.pending === 0
        }, 120_000, "pnpm status to report no lag")
      )
      const { dead_letters, dependencies, maintenance, queue } = report!
      expect(dependencies.map((d) => [d.name, d.status])).toEqual([["storage", "up"], ["queue", "up"], ["database", "up"]])
      for (const d of dependencies) expect(d.latency_ms).toBeGreaterThanOrEqual(0)
      expect(queue!.partitions.filter((p) => p.topic === TOPIC)).toEqual([0, 1, 2].map((partition) => ({ topic: TOPIC, partition, lag: 0 })))
      // No stall's duration: a one-off check would always count 0 s of it (a running process's health tells it).
      expect(Object.keys(queue!).sort()).toEqual(["partitions", "pending"])
      // Its claim never loaded: not settled.
      expect(dead_letters).toMatchObject({ total: 2, by_reason: { object_not_found: 2 }, claims: 1, loaded_since: 0 })
      expect(maintenance!.runner).toBe("own")
      expect(maintenance!.jobs.map((j) => j.job).sort()).toEqual(["refresh telemetry_daily", "refresh telemetry_hourly", "retention telemetry_data"])
      // The worker ran its due jobs as it started.
      for (const job of maintenance!.jobs) expect(job).toMatchObject({ last_outcome: "success", last_error: null })
      expect(maintenance!.aggregates.map((a) => [a.aggregate, a.watermark])).toEqual([
        ["telemetry_daily", new Date(Math.floor(start / DAY) * DAY + DAY).toISOString()],
        ["telemetry_hourly", new Date(start + HOUR).toISOString()]
      ])
      for (const a of maintenance!.aggregates) expect(a.lag_seconds).toBeGreaterThan(0)

      // The worker's metrics: the jobs it ran as it started, when each last succeeded, how far the aggregates are
      // behind (sampled every 15 s), its connection pool.
      const scrape = () => fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text())
      const lagOf = (text: string, aggregate: string) => valueOf(text, "telemetry_aggregate_watermark_lag_seconds", { aggregate })
      let text = ""
      yield* Effect.promise(() =>
        until(worker, async () => {
          text = await scrape()
          return lagOf(text, "telemetry_hourly") !== undefined && lagOf(text, "telemetry_daily") !== undefined
        }, 60_000, "the watermarks' lag sampled")
      )
      const scrapedAt = Date.now()
      for (const job of maintenance!.jobs) {
        expect(valueOf(text, "telemetry_maintenance_runs_total", { job: job.job, outcome: "success" })).toBe(1)
        expect(valueOf(text, "telemetry_maintenance_runs_total", { job: job.job, outcome: "failure" })).toBeUndefined()
        expect(valueOf(text, "telemetry_maintenance_last_success_timestamp_seconds", { job: job.job })).toBe(
          new Date(job.last_success!).getTime() / 1000
        )
      }
      for (const { aggregate, watermark } of maintenance!.aggregates) {
        const behind = (at: number) => (at - new Date(watermark!).getTime()) / 1000
        expect(lagOf(text, aggregate)).toBeGreaterThanOrEqual(behind(loadedFrom))
        expect(lagOf(text, aggregate)).toBeLessThanOrEqual(behind(scrapedAt))
      }
      expect(samplesOf(text, "telemetry_db_pool_connections").map((m) => m.labels?.state).sort()).toEqual(["idle", "in_use", "waiting"])

      // The human form says the same.
      const human = yield* Effect.promise(() => runCli("status", [], env))
      expect(human.code).toBe(0)
      expect(human.stdout).toMatch(/^storage\s+up\s+\d+ ms$/m)
      expect(human.stdout).toMatch(/^Dead letters since \S+: 2 of 1 claim\(s\), of which 0 loaded since/m)
      expect(human.stdout).toMatch(/^object_not_found\s+2$/m)
      expect(human.stdout).toMatch(/^telemetry_hourly\s+\S+Z\s+\d/m)

      // Storage stopped: exit 1 naming it, and the rest still reported.
      yield* Effect.promise(() => s3.down())
      const down = yield* Effect.promise(() => runCli("status", ["--json"], env))
      yield* Effect.promise(() => s3.up())
      expect(down.code).toBe(1)
      expect(down.stderr).toContain("storage is down")
      const degraded = JSON.parse(down.stdout) as Parsed
      expect(degraded.dependencies.map((d) => [d.name, d.status])).toEqual([["storage", "down"], ["queue", "up"], ["database", "up"]])
      expect(degraded.dependencies[0]!.error).toBeTruthy()
      expect(degraded.dead_letters).toMatchObject({ total: 2, claims: 1 })
      expect(degraded.maintenance!.aggregates).toHaveLength(2)
    }).pipe(Effect.scoped, Effect.provide(standIns({ [TOPIC]: 3, [DLQ]: 1 }))), { timeout: 420_000 })
})
