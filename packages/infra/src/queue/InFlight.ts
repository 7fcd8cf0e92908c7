import { Duration, Effect, FiberSet } from "effect"

/**
 * The claims a consumer is handling, each in a fiber of its own, so that a consumer told to stop can let them
 * finish: when the scope closes, it waits up to `timeout` for them, then interrupts what is left — what a load had
 * not committed rolls back, and its claim, never acknowledged, is delivered again.
 */
export const make = <A, E>(timeout: Duration.DurationInput) =>
  Effect.gen(function*() {
    const fibers = yield* FiberSet.make<A, E>()
    // Added after the set, so it runs before the set's own finalizer interrupts the fibers.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const count = yield* FiberSet.size(fibers)
        if (count === 0) return
        yield* Effect.logInfo(`consumer stopping: waiting up to ${Duration.format(timeout)} for ${count} claim(s) in progress`)
        // Finalizers run uninterruptibly: the wait must be made interruptible for the timeout to end it.
        const finished = yield* Effect.interruptible(FiberSet.awaitEmpty(fibers)).pipe(Effect.timeout(timeout), Effect.isSuccess)
        if (!finished) {
          yield* Effect.logWarning(
            `consumer stopping: interrupting the claim(s) still in progress after ${Duration.format(timeout)}; ` +
              "they will be delivered again (what their loads had not committed is rolled back; a claim that had loaded " +
              "is then skipped, and its late data refreshed)"
          )
        }
      })
    )
    return fibers
  })
