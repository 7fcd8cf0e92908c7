import { ClaimQueue } from "@telemetry/domain"
import type { ClaimCheck } from "@telemetry/domain"
import { Deferred, Effect, Fiber } from "effect"

/** The next claim on the queue (taken and acknowledged), or none if nothing comes within 200 ms. */
export const nextClaim = Effect.gen(function*() {
  const queue = yield* ClaimQueue
  const taken = yield* Deferred.make<ClaimCheck>()
  const consumer = yield* Effect.fork(queue.consume((claim) => Deferred.succeed(taken, claim)))
  const claim = yield* Deferred.await(taken).pipe(Effect.timeoutOption("200 millis"))
  yield* Fiber.interrupt(consumer)
  return claim
})
