import { Metric, MetricBoundaries } from "effect"

// Names as defined here; the Prometheus exporter appends `_total` to counters (see metrics-contract: scraped names).

/**
 * Claims handled, by outcome: loaded | retried (a transient failure tried again) | dead_lettered | already_loaded |
 * left_queued (a delivery that failed after its retries, its claim left for the queue to hand out again).
 */
const claims = Metric.counter("telemetry_worker_claims", {
  description: "Claims handled by the worker, by outcome",
  incremental: true
})

export type ClaimOutcome = "loaded" | "retried" | "dead_lettered" | "already_loaded" | "left_queued"

export const claimHandled = (outcome: ClaimOutcome) => Metric.tagged(claims, "outcome", outcome)

export const readingsLoaded = Metric.counter("telemetry_worker_readings_loaded", {
  description: "Readings stored by the worker",
  incremental: true
})

export const readingsDuplicate = Metric.counter("telemetry_worker_readings_duplicate", {
  description: "Readings of loaded claims that were stored already",
  incremental: true
})

export const readingsExpired = Metric.counter("telemetry_worker_readings_expired", {
  description: "Readings of loaded claims older than the raw retention, not stored",
  incremental: true
})

// Counted by the queue too: a message that is not a claim is dead-lettered there, before any worker sees it.
export { deadLettered } from "@telemetry/infra/queue/QueueMetrics"

export const loadDuration = Metric.histogram(
  "telemetry_worker_load_duration_seconds",
  MetricBoundaries.exponential({ start: 0.01, factor: 2, count: 14 }),
  "Time to load one claim, from storage to commit"
)

export const lastLoadTimestamp = Metric.gauge("telemetry_worker_last_load_timestamp_seconds", {
  description: "Unix seconds of the worker's last successful load"
})
