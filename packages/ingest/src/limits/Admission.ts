import * as RateLimiter from "@effect/experimental/RateLimiter"
import { Config, Data, Duration, Effect, Layer, Option } from "effect"

/** The device sent more requests than its rate allows; it may send again after `retryAfter`. */
export class RateLimited extends Data.TaggedError("RateLimited")<{
  readonly device: string
  readonly limit: number
  readonly window: Duration.Duration
  readonly retryAfter: Duration.Duration
}> {
  override get message() {
    return `device ${this.device} is over its limit of ${this.limit} requests per ${Duration.format(this.window)}`
  }
}

/** As many uploads as this process takes at once are running; the client should come back shortly. */
export class Overloaded extends Data.TaggedError("Overloaded")<{ readonly inFlight: number }> {
  override get message() {
    return `${this.inFlight} uploads are in flight, the most this server takes at once`
  }
}

export const AdmissionConfig = Config.all({
  /** Requests a device may send per window, as a token bucket (bursts up to the limit); 0 turns it off. */
  perDevice: Config.integer("RATE_LIMIT_PER_DEVICE").pipe(Config.withDefault(60)),
  window: Config.duration("RATE_LIMIT_WINDOW").pipe(Config.withDefault(Duration.minutes(1))),
  /** Uploads streamed at once by this process; each holds buffers, so this bounds memory. */
  maxInFlight: Config.integer("MAX_INFLIGHT_UPLOADS").pipe(Config.withDefault(32))
})

/**
 * Whether an upload may start now: within its device's rate and within the process's bound on uploads in
 * flight. Refusing at once (429/503 with Retry-After) keeps latency flat instead of letting requests pile up.
 * The rate is counted per process; behind N ingest instances a device gets up to N times its rate.
 */
export class Admission extends Effect.Service<Admission>()("@telemetry/Admission", {
  effect: Effect.gen(function*() {
    const config = yield* AdmissionConfig
    const limiter = yield* RateLimiter.RateLimiter
    const slots = yield* Effect.makeSemaphore(config.maxInFlight)

    const withinRate = (device: string) =>
      config.perDevice <= 0
        ? Effect.void
        : limiter.consume({ algorithm: "token-bucket", key: device, limit: config.perDevice, window: config.window }).pipe(
          Effect.catchAll((e) =>
            e.reason === "Exceeded"
              ? Effect.fail(
                new RateLimited({ device, limit: config.perDevice, window: config.window, retryAfter: e.retryAfter })
              )
              // The in-memory store does not fail; were it remote, a broken limiter must not stop ingest.
              : Effect.logWarning(`rate limit not checked: ${e.message}`)
          ),
          Effect.asVoid
        )

    const admit = (device: string) => <A, E, R>(upload: Effect.Effect<A, E, R>) =>
      withinRate(device).pipe(
        Effect.zipRight(slots.withPermitsIfAvailable(1)(upload)),
        Effect.flatMap(Option.match({
          onNone: () => Effect.fail(new Overloaded({ inFlight: config.maxInFlight })),
          onSome: Effect.succeed
        }))
      )

    return { admit } as const
  }),
  dependencies: [RateLimiter.layer.pipe(Layer.provide(RateLimiter.layerStoreMemory))]
}) {}
