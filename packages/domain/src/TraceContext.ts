import { Context, DefaultServices, Effect, Option, Schema, Tracer } from "effect"

/**
 * A W3C `traceparent` (version 00): `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`. Carried in Kafka
 * headers, claims and object metadata, so that a payload's worker spans (and a replay's) join its ingest trace.
 */
export const Traceparent = Schema.String.pipe(
  Schema.pattern(/^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/),
  Schema.brand("Traceparent")
)
export type Traceparent = typeof Traceparent.Type

const isTraceparent = Schema.is(Traceparent)

/** Effect's own tracer, installed when no other is: it exports nothing, so its spans name no trace to look up. */
const untraced = Context.get(DefaultServices.liveServices, Tracer.Tracer)

/**
 * The `traceparent` of the current span; none without a span, under Effect's own tracer (a worker that exports
 * would hang its spans under a parent no collector ever receives), or under a tracer whose ids are not W3C ones.
 */
export const currentTraceparent: Effect.Effect<Option.Option<Traceparent>> = Effect.flatMap(
  Effect.tracer,
  (tracer) =>
    tracer === untraced ? Effect.succeedNone : Effect.map(
      Effect.option(Effect.currentSpan),
      Option.flatMap((span) => {
        const header = `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`
        return isTraceparent(header) ? Option.some(header) : Option.none()
      })
    )
)

/** The remote span a `traceparent` names: run an effect under it with `Effect.withParentSpan`. */
export const parentSpan = (header: Traceparent): Tracer.ExternalSpan => {
  const flags = parseInt(header.slice(53, 55), 16)
  return Tracer.externalSpan({ traceId: header.slice(3, 35), spanId: header.slice(36, 52), sampled: (flags & 1) === 1 })
}

/** Runs `effect` as a child of the span `header` names, if any (a claim from before tracing carries none). */
export const withRemoteParent = (header: string | undefined) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  header !== undefined && isTraceparent(header) ? Effect.withParentSpan(effect, parentSpan(header)) : effect
