import * as RateLimiter from "@effect/experimental/RateLimiter"
import { integerConfig, integerSetting, positiveDuration } from "@telemetry/domain"
import { Config, Duration, Effect, Either, Ref, Schema } from "effect"
import * as RateLimitStore from "./RateLimitStore.js"
import { answeredAs } from "../http/errors.js"

/** Who an upload is for: limits are kept per device and per tenant. */
export interface Uploader {
  readonly tenantId: string
  readonly deviceId: string
}

/** The device sent more requests than its rate allows; it may send again after `retryAfter`. */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  device: Schema.String,
  limit: Schema.Number,
  window: Schema.DurationFromMillis,
  retryAfter: Schema.DurationFromMillis
}, {
  // Not the login limit's RateLimited of the same body, which the document shows apart.
  identifier: "DeviceRateLimited",
  ...answeredAs(429, "rate_limited", "The device is over its request rate; retry after `Retry-After` seconds")
}) {
  override get message() {
    return `device ${this.device} is over its limit of ${this.limit} requests per ${Duration.format(this.window)}`
  }
}

/**
 * The device (or its tenant) already streams as many uploads as it may at once: one client must not take every
 * slot of the server. It may send again once one of them is answered.
 */
export class TooManyUploads extends Schema.TaggedError<TooManyUploads>()("TooManyUploads", {
  scope: Schema.Literal("device", "tenant"),
  name: Schema.String,
  limit: Schema.Number
}, answeredAs(429, "rate_limited", "The device or its tenant has as many uploads in flight as it may; retry after `Retry-After` seconds")) {
  override get message() {
    return `${this.scope} ${this.name} already has ${this.limit} uploads in flight, the most it may have at once; ` +
      "retry once one is answered"
  }
}

/** As many uploads as this process takes at once are running; the client should come back shortly. */
export class Overloaded extends Schema.TaggedError<Overloaded>()("Overloaded", { inFlight: Schema.Number }, answeredAs(
  503,
  "overloaded",
  "The server is at its bound of uploads in flight; retry after `Retry-After` seconds"
)) {
  override get message() {
    return `${this.inFlight} uploads are in flight, the most this server takes at once, retry shortly`
  }
}

export const AdmissionConfig = Config.all({
  /** Requests a device may send per window, as a token bucket (bursts up to the limit); 0 turns it off. */
  perDevice: integerSetting("RATE_LIMIT_PER_DEVICE", 60, { min: 0 }),
  window: positiveDuration("RATE_LIMIT_WINDOW", Duration.minutes(1)),
  /** Uploads streamed at once by this process; each holds buffers, so this bounds memory. */
  maxInFlight: integerSetting("MAX_INFLIGHT_UPLOADS", 32, { min: 1 }),
  /** Of those, the most one device may hold. */
  maxPerDevice: integerSetting("MAX_UPLOADS_PER_DEVICE", 4, { min: 1 }),
  /** Of those, the most one tenant's devices may hold together (default: half of MAX_INFLIGHT_UPLOADS). */
  maxPerTenant: Config.option(integerConfig("MAX_UPLOADS_PER_TENANT", { min: 1 }))
})

/** Uploads in flight, in all and per tenant and device (keys from `keyOf`). */
interface Slots {
  readonly total: number
  readonly byKey: ReadonlyMap<string, number>
}

/** Keys that cannot collide whatever the names hold (`a/b` + `c` is not `a` + `b/c`). */
const keyOf = (...parts: ReadonlyArray<string>) => JSON.stringify(parts)

const adjust = (byKey: ReadonlyMap<string, number>, keys: ReadonlyArray<string>, delta: number) => {
  const next = new Map(byKey)
  for (const key of keys) {
    const count = (next.get(key) ?? 0) + delta
    if (count === 0) next.delete(key)
    else next.set(key, count)
  }
  return next
}

/**
 * Whether an upload may start now: within its device's rate, within the process's bound on uploads in flight, and
 * within its device's and tenant's share of them, so that a client holding slots with slow bodies cannot starve
 * the others. Refusing at once (429/503 with Retry-After) keeps latency flat instead of letting requests pile up.
 * The limits are counted per process; behind N ingest instances a device gets up to N times its rate.
 */
export class Admission extends Effect.Service<Admission>()("@telemetry/Admission", {
  effect: Effect.gen(function*() {
    const config = yield* AdmissionConfig
    const maxPerTenant = config.maxPerTenant._tag === "Some"
      ? config.maxPerTenant.value
      : Math.max(1, Math.floor(config.maxInFlight / 2))
    const limiter = yield* RateLimiter.RateLimiter
    const slots = yield* Ref.make<Slots>({ total: 0, byKey: new Map() })

    const withinRate = ({ deviceId, tenantId }: Uploader) =>
      config.perDevice <= 0
        ? Effect.void
        : limiter.consume({
          algorithm: "token-bucket",
          key: keyOf("device rate", tenantId, deviceId),
          limit: config.perDevice,
          window: config.window
        }).pipe(
          Effect.catchAll((e) =>
            e.reason === "Exceeded"
              ? Effect.fail(
                new RateLimited({
                  device: `${tenantId}/${deviceId}`,
                  limit: config.perDevice,
                  window: config.window,
                  retryAfter: e.retryAfter
                })
              )
              // The in-memory store does not fail; were it remote, a broken limiter must not stop ingest.
              : Effect.logWarning(`rate limit not checked: ${e.message}`)
          ),
          Effect.asVoid
        )

    const take = ({ deviceId, tenantId }: Uploader) => {
      const keys = [keyOf("tenant", tenantId), keyOf("device", tenantId, deviceId)]
      type Taken = readonly [Either.Either<ReadonlyArray<string>, Overloaded | TooManyUploads>, Slots]
      const refuse = (e: Overloaded | TooManyUploads, s: Slots): Taken => [Either.left(e), s]
      return Ref.modify(slots, (s): Taken => {
        if (s.total >= config.maxInFlight) return refuse(new Overloaded({ inFlight: config.maxInFlight }), s)
        if ((s.byKey.get(keys[1]!) ?? 0) >= config.maxPerDevice) {
          return refuse(new TooManyUploads({ scope: "device", name: `${tenantId}/${deviceId}`, limit: config.maxPerDevice }), s)
        }
        if ((s.byKey.get(keys[0]!) ?? 0) >= maxPerTenant) {
          return refuse(new TooManyUploads({ scope: "tenant", name: tenantId, limit: maxPerTenant }), s)
        }
        return [Either.right(keys), { total: s.total + 1, byKey: adjust(s.byKey, keys, 1) }]
      }).pipe(Effect.flatMap((taken) => taken))
    }
    const give = (keys: ReadonlyArray<string>) =>
      Ref.update(slots, (s) => ({ total: s.total - 1, byKey: adjust(s.byKey, keys, -1) }))

    const admit = (uploader: Uploader) => <A, E, R>(upload: Effect.Effect<A, E, R>) =>
      withinRate(uploader).pipe(
        Effect.zipRight(Effect.acquireUseRelease(take(uploader), () => upload, give))
      )

    /** Uploads streaming now and the most this process takes at once (for readiness). */
    const capacity = Effect.map(Ref.get(slots), (s) => ({ inFlight: s.total, max: config.maxInFlight }))

    return { admit, capacity } as const
  }),
  dependencies: [RateLimitStore.layer]
}) {}
