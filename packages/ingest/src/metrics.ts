import { Metric, MetricBoundaries } from "effect"

// Ingest's metrics, named so that the Prometheus exporter's output is exactly the contract's names: monotonic
// counters get `_total` appended by the exporter, so they are declared without it.

/** Requests by route template ("other" when unmatched), method and status code. */
export const httpRequests = Metric.counter("telemetry_http_requests", { incremental: true })

/** Request durations in seconds, by route template. */
export const httpRequestDuration = Metric.histogram(
  "telemetry_http_request_duration_seconds",
  MetricBoundaries.exponential({ start: 0.005, factor: 2, count: 14 })
)

export const payloadsAccepted = Metric.counter("telemetry_ingest_payloads_accepted", { incremental: true })
export const readingsAccepted = Metric.counter("telemetry_ingest_readings_accepted", { incremental: true })
/** Refusals of POST /api/v1/telemetry/bulk, by status code. */
export const payloadsRefused = Metric.counter("telemetry_ingest_payloads_refused", { incremental: true })
export const receivedBytes = Metric.counter("telemetry_ingest_received_bytes", { incremental: true })
export const decompressedBytes = Metric.counter("telemetry_ingest_decompressed_bytes", { incremental: true })
export const uploadsInFlight = Metric.gauge("telemetry_ingest_uploads_in_flight")
export const claimsPublished = Metric.counter("telemetry_claims_published", { incremental: true })
export const claimsPublishFailures = Metric.counter("telemetry_claims_publish_failures", { incremental: true })
