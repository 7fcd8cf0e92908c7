import { Maintenance } from "@telemetry/domain"
import { Clock, Duration, Effect, Layer, Metric, Ref, Schedule } from "effect"

// The database's metrics (names as the Prometheus exporter writes them, less the `_total` it appends to counters).

const connections = Metric.gauge("telemetry_db_pool_connections", {
  description: "Database connections by state: in_use, idle, waiting (requests waiting for a connection)"
})

/** A connection pool's counts. */
export interface PoolCounts {
  readonly inUse: number
  readonly idle: number
  readonly waiting: number
}

export type PoolState = "in_use" | "idle" | "waiting"

export const poolConnections = (state: PoolState) => Metric.tagged(connections, "state", state)

export const reportPool = (counts: PoolCounts) =>
  Effect.all([
    Metric.set(poolConnections("in_use"), counts.inUse),
    Metric.set(poolConnections("idle"), counts.idle),
    Metric.set(poolConnections("waiting"), counts.waiting)
  ], { discard: true })

/** How often a pool without events of its own for every change (node-postgres' waiting requests) is sampled. */
const POOL_SAMPLE = Duration.seconds(5)

/** Reports `counts` now and every few seconds, for the scope. */
export const samplePool = (counts: () => PoolCounts) =>
  Effect.forkScoped(Effect.repeat(Effect.suspend(() => reportPool(counts())), Schedule.spaced(POOL_SAMPLE)))

const maintenanceRuns = Metric.counter("telemetry_maintenance_runs", {
  description: "Maintenance job runs, by job and outcome",
  incremental: true
})

export type Outcome = "success" | "failure"

export const jobRuns = (job: string, outcome: Outcome) =>
  maintenanceRuns.pipe(Metric.tagged("job", job), Metric.tagged("outcome", outcome))

const lastSuccess = Metric.gauge("telemetry_maintenance_last_success_timestamp_seconds", {
  description: "Unix seconds of each maintenance job's last successful run"
})

export const lastSuccessOf = (job: string) => Metric.tagged(lastSuccess, "job", job)

const watermarkLag = Metric.gauge("telemetry_aggregate_watermark_lag_seconds", {
  description: "How far each continuous aggregate's materialized part is behind now"
})

export const watermarkLagOf = (aggregate: string) => Metric.tagged(watermarkLag, "aggregate", aggregate)

/**
 * Reads the maintenance status into the metrics. Runs of this process are counted where they run (SqlMaintenance);
 * TimescaleDB's scheduler counts its own, so with it the runs since the previous sample are added (the first
 * sample only makes the series).
 */
export const makeSampler = Effect.gen(function*() {
  const maintenance = yield* Maintenance.Maintenance
  const counted = yield* Ref.make(new Map<string, { readonly successes: number; readonly failures: number }>())
  return Effect.gen(function*() {
    const status = yield* maintenance.status
    const now = yield* Clock.currentTimeMillis
    for (const job of status.jobs) {
      if (job.lastSuccess !== null) yield* Metric.set(lastSuccessOf(job.job), job.lastSuccess.getTime() / 1000)
      if (job.totals === null) continue
      const before = (yield* Ref.get(counted)).get(job.job) ?? job.totals
      yield* Metric.incrementBy(jobRuns(job.job, "success"), job.totals.successes - before.successes)
      yield* Metric.incrementBy(jobRuns(job.job, "failure"), job.totals.failures - before.failures)
      yield* Ref.update(counted, (m) => new Map(m).set(job.job, job.totals!))
    }
    for (const { aggregate, watermark } of status.aggregates) {
      if (watermark !== null) {
        yield* Metric.set(watermarkLagOf(aggregate), (now - watermark.getTime()) / 1000)
      }
    }
  })
})

/** How often the maintenance status is sampled: Prometheus' default scrape interval. */
const MAINTENANCE_SAMPLE = Duration.seconds(15)

/** Samples the maintenance status into the metrics for the lifetime of the layer. */
export const layer = Layer.scopedDiscard(Effect.flatMap(makeSampler, (sample) =>
  Effect.forkScoped(Effect.repeat(
    Effect.catchAll(sample, (error) => Effect.logWarning(`maintenance: cannot read the status: ${error.message}`)),
    Schedule.spaced(MAINTENANCE_SAMPLE)
  ))))
