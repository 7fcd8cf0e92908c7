import { Context } from "effect"
import type { Effect } from "effect"

/**
 * The process's metrics in Prometheus text format. The app provides it (from OpenTelemetry's exporter), so ingest
 * serves /metrics without depending on OpenTelemetry.
 */
export class MetricsExposition extends Context.Tag("@telemetry/ingest/MetricsExposition")<
  MetricsExposition,
  { readonly scrape: Effect.Effect<string> }
>() {}
