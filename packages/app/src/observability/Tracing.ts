import type { SpanExporter, SpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Config, type ConfigError, Effect, Layer, Option } from "effect"

/**
 * OpenTelemetry's tracer provider for this process, its span processor made by `processor`. The SDK is imported
 * only here, when tracing is on: a process that exports no spans never loads it (about 20 MiB).
 */
const sdkLayer = (
  serviceName: string,
  processor: (sdk: typeof import("./TracingSdk.js")) => SpanProcessor
): Layer.Layer<never> =>
  Layer.unwrapEffect(
    Effect.promise(() => import("./TracingSdk.js")).pipe(Effect.map((sdk) => sdk.provider(serviceName, processor(sdk))))
  )

/** Spans of this process handed to `exporter` as each ends (tests: an in-memory exporter). */
export const layerExporter = (serviceName: string, exporter: SpanExporter): Layer.Layer<never> =>
  sdkLayer(serviceName, (sdk) => sdk.simple(exporter))

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
          sdkLayer(serviceName, (sdk) => sdk.otlp(new URL("v1/traces", base.href.endsWith("/") ? base : `${base.href}/`).href))
      })
    })
  )
