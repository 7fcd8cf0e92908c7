import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { BatchSpanProcessor, type SpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Config, type ConfigError, Effect, Layer, Option } from "effect"

/** Spans of this process handed to `exporter` as each ends (tests: an in-memory exporter). */
export const layerExporter = (serviceName: string, exporter: SpanExporter): Layer.Layer<never> =>
  Layer.discard(NodeSdk.layer(() => ({ resource: { serviceName }, spanProcessor: new SimpleSpanProcessor(exporter) })))

/**
 * Spans exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, batched off the request path, under
 * `OTEL_SERVICE_NAME` (else `defaultServiceName`). Without an endpoint no tracer is installed at all: Effect's
 * default tracer then costs next to nothing.
 */
export const layer = (defaultServiceName: string): Layer.Layer<never, ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const endpoint = yield* Config.option(Config.url("OTEL_EXPORTER_OTLP_ENDPOINT"))
      const serviceName = yield* Config.string("OTEL_SERVICE_NAME").pipe(Config.withDefault(defaultServiceName))
      return Option.match(endpoint, {
        onNone: () => Layer.empty,
        onSome: (base) =>
          // The OTLP convention: the endpoint is a base URL, traces go to its `v1/traces`.
          Layer.discard(NodeSdk.layer(() => ({
            resource: { serviceName },
            spanProcessor: new BatchSpanProcessor(
              new OTLPTraceExporter({ url: new URL("v1/traces", base.href.endsWith("/") ? base : `${base.href}/`).href })
            )
          })))
      })
    })
  )
