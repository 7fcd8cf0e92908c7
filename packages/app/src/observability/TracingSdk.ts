import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { BatchSpanProcessor, SimpleSpanProcessor, type SpanExporter, type SpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Layer } from "effect"

// OpenTelemetry's SDK, imported by Tracing.ts only when tracing is on. Its packages are imported statically here, and
// this module dynamically: the build's bundles then read their CommonJS exports through the usual interop (a
// package imported dynamically would only show its default export from a chunk of its own).

/** This process's tracer provider, `spanProcessor` handling its spans. */
export const provider = (serviceName: string, spanProcessor: SpanProcessor): Layer.Layer<never> =>
  Layer.discard(NodeSdk.layer(() => ({ resource: { serviceName }, spanProcessor })))

/** Each span handed to `exporter` as it ends. */
export const simple = (exporter: SpanExporter): SpanProcessor => new SimpleSpanProcessor(exporter)

/** Spans sent over OTLP/HTTP to `url`, batched off the request path. */
export const otlp = (url: string): SpanProcessor => new BatchSpanProcessor(new OTLPTraceExporter({ url }))
