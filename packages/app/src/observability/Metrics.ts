import * as OtelMetrics from "@effect/opentelemetry/Metrics"
import * as Resource from "@effect/opentelemetry/Resource"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { MetricsExposition } from "@telemetry/ingest/http/MetricsExposition"
import { Effect, Layer } from "effect"
import * as ProcessMetrics from "./ProcessMetrics.js"

/**
 * Every Effect metric of the process (Effect's global registry), read by OpenTelemetry's Prometheus exporter on
 * each scrape and written as Prometheus text, with the process and Node metrics (ProcessMetrics) sampled just
 * before. The exporter's own server is not started: ingest's /metrics route and the worker's metrics server serve
 * the text.
 */
export const layer: Layer.Layer<MetricsExposition> = Layer.scoped(
  MetricsExposition,
  Effect.gen(function*() {
    const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true, withoutTargetInfo: true })
    const producer = yield* OtelMetrics.makeProducer
    yield* OtelMetrics.registerProducer(producer, () => exporter)
    const serializer = new PrometheusSerializer(undefined, false, undefined, true, true)
    const sampleProcess = yield* ProcessMetrics.make
    return {
      scrape: sampleProcess.pipe(
        Effect.zipRight(Effect.promise(() => exporter.collect())),
        Effect.map(({ resourceMetrics }) => serializer.serialize(resourceMetrics))
      )
    }
  })
).pipe(Layer.provide(Resource.layer({ serviceName: "telemetry" })))
