import { describe, expect, it, layer } from "@effect/vitest"
import { currentTraceparent, ObjectStore } from "@telemetry/domain"
import { haPayload } from "@telemetry/domain/testing"
import { count } from "@telemetry/infra/testing"
import { bearer, deviceToken } from "@telemetry/ingest/testing/auth"
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace-base"
import { Chunk, Effect, Layer, Option, Stream } from "effect"
import * as Tracing from "../src/observability/Tracing.js"
import { embeddedStack, eventually, freePort } from "./support/stack.js"

// Issue 14 §2: one payload, one trace — from its HTTP request through storage and the queue to the worker's load,
// across the claim in between, as an operator's trace viewer would show it.

const port = await freePort()
const exporter = new InMemorySpanExporter()

/** The pipeline in this process with the tracer provided last, as `runServer` provides it. */
const stack = embeddedStack(port).pipe(Layer.provide(Tracing.layerExporter("traces-test", exporter)))

const post = (body: unknown) =>
  Effect.promise(async () => {
    const response = await fetch(`http://127.0.0.1:${port}/api/v1/telemetry/bulk`, {
      method: "POST",
      headers: { "content-type": "application/json", ...bearer(deviceToken()) },
      body: JSON.stringify(body)
    })
    return { status: response.status, json: (await response.json()) as { claim_id: string; claim_check: string } }
  })

const names = (spans: ReadonlyArray<ReadableSpan>) => spans.map((s) => s.name)

describe("traces", () => {
  // Effect's own spans, exported nowhere, are no trace to join: a claim from an untraced ingest carries none.
  it.effect("without a tracer, a span gives no traceparent", () =>
    Effect.gen(function*() {
      expect(yield* Effect.withSpan(currentTraceparent, "untraced")).toEqual(Option.none())
      const traced = yield* Effect.withSpan(currentTraceparent, "traced").pipe(
        Effect.provide(Tracing.layerExporter("traces-test", new InMemorySpanExporter()))
      )
      expect(Option.getOrThrow(traced)).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
    }))

  layer(stack, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("a payload's ingest and worker spans form one trace, carried by its stored object", () =>
      Effect.gen(function*() {
        const response = yield* post(haPayload("trace-1"))
        expect(response.status).toBe(202)
        yield* eventually(count("claim_ledger", `claim_id = '${response.json.claim_id}'`), (n) => n === 1)
        // The worker's span ends after its load commits: wait for it rather than for the row alone.
        const processedSpan = Effect.sync(() =>
          exporter.getFinishedSpans().find((s) => s.attributes["claim.id"] === response.json.claim_id)
        )
        yield* eventually(processedSpan, (span) => span !== undefined)
        const processed = yield* processedSpan
        const traceId = processed!.spanContext().traceId
        const trace = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId)

        const server = trace.find((s) => s.name.startsWith("http.server"))
        expect(server, `spans of the trace: ${names(trace)}`).toBeDefined()
        expect(server!.attributes["url.path"]).toBe("/api/v1/telemetry/bulk")
        expect(names(trace)).toEqual(expect.arrayContaining([
          "ObjectStore.put",
          "ClaimQueue.publish",
          "ClaimProcessor.process",
          "ObjectStore.get",
          "TelemetryStore.load",
          "TelemetryStore.loadBatch"
        ]))
        // One tree: the request's span is its root, every other span's parent is in it.
        const ids = new Set(trace.map((s) => s.spanContext().spanId))
        const roots = trace.filter((s) => s.parentSpanContext === undefined)
        expect(roots.map((s) => s.name)).toEqual([server!.name])
        for (const span of trace) {
          if (span !== server) expect(ids, span.name).toContain(span.parentSpanContext?.spanId)
        }
        // The worker's span hangs under the request's span itself, whose traceparent the claim carried.
        expect(processed!.parentSpanContext?.spanId).toBe(server!.spanContext().spanId)

        const objects = yield* Effect.flatMap(ObjectStore, (storage) =>
          Effect.map(Stream.runCollect(storage.list("telemetry/")), Chunk.toReadonlyArray))
        const object = objects.find((o) => o.key === response.json.claim_check)
        expect(object!.metadata.traceparent).toBe(`00-${traceId}-${server!.spanContext().spanId}-01`)
      }))
  })
})
