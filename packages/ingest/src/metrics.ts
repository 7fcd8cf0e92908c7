import { Effect, Metric, MetricBoundaries } from "effect"

// Ingest's metrics, named so that the Prometheus exporter's output is exactly the contract's names: monotonic
// (incremental) counters get `_total` appended by the exporter, so they are declared without it.
const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })

/** Requests by route template ("other" when unmatched), method and status code. */
export const httpRequests = counter("telemetry_http_requests", "HTTP requests by route, method and status")

/** Request durations in seconds, by route template. */
export const httpRequestDuration = Metric.histogram(
  "telemetry_http_request_duration_seconds",
  MetricBoundaries.exponential({ start: 0.005, factor: 2, count: 14 }),
  "HTTP request durations by route"
)

export const payloadsAccepted = counter("telemetry_ingest_payloads_accepted", "Uploads stored and queued")
export const readingsAccepted = counter("telemetry_ingest_readings_accepted", "Readings of the uploads stored and queued")
/** Refusals of POST /api/v1/telemetry/bulk, by status code. */
export const payloadsRefused = counter("telemetry_ingest_payloads_refused", "Uploads refused, by status")
export const receivedBytes = counter("telemetry_ingest_received_bytes", "Bytes of request bodies as received")
export const decompressedBytes = counter("telemetry_ingest_decompressed_bytes", "Bytes of JSON after gunzip")
export const uploadsInFlight = Metric.gauge("telemetry_ingest_uploads_in_flight", { description: "Uploads streaming now" })
export const validationThreads = Metric.gauge("telemetry_ingest_validation_threads", {
  description: "Threads validating uploads (INGEST_PROCESSES at most)"
})
export const claimsPublished = counter("telemetry_claims_published", "Claims published to the queue")
export const claimsPublishFailures = counter("telemetry_claims_publish_failures", "Claims the queue did not acknowledge")

/**
 * Exposes the unlabelled counters at 0 from the start: a counter appears on /metrics once touched, and a rate of
 * publish failures must read 0, not "no data", until the first one.
 */
export const exposeCounters = Effect.forEach(
  [payloadsAccepted, readingsAccepted, receivedBytes, decompressedBytes, claimsPublished, claimsPublishFailures],
  (counter) => Metric.incrementBy(counter, 0),
  { discard: true }
)
