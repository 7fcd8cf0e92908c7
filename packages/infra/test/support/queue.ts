import { ClaimQueue } from "@telemetry/domain"
import type { ClaimCheck } from "@telemetry/domain"
import { Deferred, Effect, Exit, Fiber, Ref } from "effect"

/** The next claim on the queue (taken and acknowledged), or none if nothing comes within 200 ms. */
export const nextClaim = Effect.gen(function*() {
  const queue = yield* ClaimQueue
  const taken = yield* Deferred.make<ClaimCheck>()
  const consumer = yield* Effect.fork(queue.consume((claim) => Deferred.succeed(taken, claim)))
  const claim = yield* Deferred.await(taken).pipe(Effect.timeoutOption("200 millis"))
  yield* Fiber.interrupt(consumer)
  return claim
})

/**
 * Consumes with `handle` until it started on a claim, then stops the consumer: the claims it finished, and whether
 * the consumer ended as stopped (interrupted).
 */
export const stopDuring = (handle: (claim: ClaimCheck) => Effect.Effect<void>) =>
  Effect.gen(function*() {
    const queue = yield* ClaimQueue
    const started = yield* Deferred.make<void>()
    const finished = yield* Ref.make<ReadonlyArray<string>>([])
    const consumer = yield* Effect.fork(queue.consume((c) =>
      Deferred.succeed(started, undefined).pipe(
        Effect.zipRight(handle(c)),
        Effect.zipRight(Ref.update(finished, (ids) => [...ids, c.claim_id]))
      )
    ))
    yield* Deferred.await(started)
    const exit = yield* Fiber.interrupt(consumer)
    return { finished: yield* Ref.get(finished), interrupted: Exit.isInterrupted(exit) }
  })
