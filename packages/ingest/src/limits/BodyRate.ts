import { integerSetting, positiveDuration } from "@telemetry/domain"
import { type Chunk, Clock, Config, Duration, Effect, Option, Schema, Stream } from "effect"
import { answeredAs } from "../http/errors.js"

/** The client sends its body slower than the least rate we wait for: it holds an upload slot for nothing. */
export class BodyTooSlow extends Schema.TaggedError<BodyTooSlow>()("BodyTooSlow", {
  received: Schema.Number,
  waited: Schema.DurationFromMillis,
  minBytesPerSecond: Schema.Number
}, answeredAs(408, "request_timeout", "The body came slower than MIN_BODY_RATE for longer than BODY_RATE_GRACE; nothing was stored")) {
  override get message() {
    return `the body came at less than ${this.minBytesPerSecond} bytes per second ` +
      `(${this.received} bytes in ${Duration.format(this.waited)} of waiting)`
  }
}

export const BodyRateConfig = Config.all({
  /** The least average rate of a request body, in bytes per second; 0 turns the check off. */
  minBytesPerSecond: integerSetting("MIN_BODY_RATE", 1024, { min: 0 }),
  /** How long a body may come slower than that from its start (a slow start, a pause) before it is cut. */
  grace: positiveDuration("BODY_RATE_GRACE", Duration.seconds(10))
})
export type BodyRateConfig = Config.Config.Success<typeof BodyRateConfig>

/**
 * Fails the body with BodyTooSlow once, past the grace, it came at less than the least rate. Only the time spent
 * waiting for the client counts: while this side does not read (storage is slow, the body waits for validation),
 * the client is not to blame. A wait is cut as soon as the rate cannot be met any more, so a client that sends
 * nothing at all is cut at the end of its allowance, not by a later byte.
 */
export const atLeast = ({ grace, minBytesPerSecond }: BodyRateConfig) =>
<E, R>(body: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | BodyTooSlow, R> =>
  minBytesPerSecond <= 0 ? body : Stream.unwrapScoped(Effect.gen(function*() {
    const pull = yield* Stream.toPull(body)
    const graceMillis = Duration.toMillis(grace)
    let waited = 0
    let received = 0
    const next: Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<E | BodyTooSlow>, R> = Effect.gen(function*() {
      // What the bytes received so far earn, and never less than the grace.
      const allowed = Math.max(0, Math.max(graceMillis, (received * 1000) / minBytesPerSecond) - waited)
      const start = yield* Clock.currentTimeMillis
      const chunk = yield* pull.pipe(
        Effect.timeoutFail({
          duration: Duration.millis(allowed),
          // The wait that ran out counts too.
          onTimeout: (): Option.Option<E | BodyTooSlow> =>
            Option.some(new BodyTooSlow({ received, waited: Duration.millis(waited + allowed), minBytesPerSecond }))
        })
      )
      waited += (yield* Clock.currentTimeMillis) - start
      for (const bytes of chunk) received += bytes.length
      return chunk
    })
    return Stream.repeatEffectChunkOption(next)
  }))
