import { ClaimQueue, Maintenance } from "@telemetry/domain"
import { Duration, Effect, Layer, Schedule } from "effect"
import * as ClaimProcessor from "./ClaimProcessor.js"

/** Consumes claims for as long as the layer lives; a consumer that fails is started again after a pause. */
export const run = Effect.gen(function*() {
  const queue = yield* ClaimQueue
  const process = yield* ClaimProcessor.make
  yield* Effect.logInfo("worker: consuming claims")
  return yield* queue.consume(process).pipe(
    Effect.tapErrorCause((cause) => Effect.logError("worker: the consumer failed; starting it again", cause)),
    Effect.retry(Schedule.exponential(Duration.seconds(1)).pipe(Schedule.union(Schedule.spaced(Duration.seconds(30)))))
  )
})

/** Consumes claims and runs the database's due maintenance jobs (which only some databases run themselves). */
export const layer = Layer.merge(Layer.scopedDiscard(Effect.forkScoped(run)), Maintenance.scheduler)
