import * as RateLimiter from "@effect/experimental/RateLimiter"
import { Duration, Effect, Layer, Schedule } from "effect"

/** How often counters back at their starting point are dropped. */
const SWEEP_INTERVAL = Duration.minutes(1)

interface Counter {
  count: number
  expiresAt: number
}

interface Bucket {
  tokens: number
  lastRefill: number
  readonly limit: number
  readonly refillMillis: number
}

/**
 * The in-memory store of `@effect/experimental`'s RateLimiter, with the same algorithms, but one that forgets: the
 * library's keeps a counter for every key it ever saw, and keys of client addresses and usernames are the client's
 * to choose, so an attacker could grow it until the process runs out of memory. A fixed window whose time is over
 * and a token bucket refilled to its limit are what a new key starts with: they are dropped every minute.
 */
export const make = Effect.gen(function*() {
  const counters = new Map<string, Counter>()
  const buckets = new Map<string, Bucket>()

  /** The bucket's tokens as of `now`, refilled a whole token at a time. */
  const refill = (bucket: Bucket, now: number) => {
    const added = Math.floor((now - bucket.lastRefill) / bucket.refillMillis)
    if (added > 0) {
      bucket.tokens = Math.min(bucket.limit, bucket.tokens + added)
      bucket.lastRefill += added * bucket.refillMillis
    }
  }

  const sweep = Effect.clockWith((clock) =>
    Effect.sync(() => {
      const now = clock.unsafeCurrentTimeMillis()
      for (const [key, counter] of counters) if (counter.expiresAt <= now) counters.delete(key)
      for (const [key, bucket] of buckets) {
        refill(bucket, now)
        if (bucket.tokens >= bucket.limit) buckets.delete(key)
      }
    })
  )
  yield* Effect.forkScoped(Effect.repeat(sweep, Schedule.spaced(SWEEP_INTERVAL)))

  const store = RateLimiter.RateLimiterStore.of({
    fixedWindow: (options) =>
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          const now = clock.unsafeCurrentTimeMillis()
          let counter = counters.get(options.key)
          if (counter === undefined || counter.expiresAt <= now) {
            counter = { count: 0, expiresAt: now }
            // Asking without taking (tokens 0) keeps nothing.
            if (options.tokens === 0) return [0, 0] as const
            counters.set(options.key, counter)
          }
          if (options.limit && counter.count + options.tokens > options.limit) {
            return [counter.count + options.tokens, counter.expiresAt - now] as const
          }
          counter.count += options.tokens
          counter.expiresAt += Duration.toMillis(options.refillRate) * options.tokens
          return [counter.count, counter.expiresAt - now] as const
        })
      ),
    tokenBucket: (options) =>
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          const now = clock.unsafeCurrentTimeMillis()
          let bucket = buckets.get(options.key)
          if (bucket === undefined) {
            bucket = { tokens: options.limit, lastRefill: now, limit: options.limit, refillMillis: Duration.toMillis(options.refillRate) }
            buckets.set(options.key, bucket)
          } else {
            refill(bucket, now)
          }
          const left = bucket.tokens - options.tokens
          if (options.allowOverflow || left >= 0) bucket.tokens = left
          return left
        })
      )
  })

  /** Keys held now, for tests. */
  const size = Effect.sync(() => counters.size + buckets.size)
  return { store, size, sweep } as const
})

/** A RateLimiter on the forgetting in-memory store. */
export const layer: Layer.Layer<RateLimiter.RateLimiter> = RateLimiter.layer.pipe(
  Layer.provide(Layer.scoped(RateLimiter.RateLimiterStore, Effect.map(make, ({ store }) => store)))
)
