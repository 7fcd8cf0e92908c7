import { ClaimQueue, REDELIVERY_BACKOFF, WorkerStatus } from "@telemetry/domain"
import * as ClaimAttempts from "@telemetry/infra/db/ClaimAttempts"
import { Cause, Duration, Effect, Layer, Schedule } from "effect"
import * as ClaimProcessor from "./ClaimProcessor.js"
import * as Dependencies from "./Dependencies.js"
import * as MaintenanceScheduler from "./MaintenanceScheduler.js"

// Backoff between consumers as between deliveries, back to its start once a consumer has run well for a while.
const restartBackoff = REDELIVERY_BACKOFF.pipe(Schedule.resetAfter(Duration.minutes(1)))

/**
 * Consumes claims with `process` for as long as it runs. A claim whose handling failed (storage or the database
 * down) is not acknowledged, and the queue hands it out again after a pause, or once they answer again. A consumer that stops (the queue
 * unreachable, a defect) is started again after a pause: its claims not done come back. Interrupted (the process is
 * stopping), the consumer lets its loads finish within SHUTDOWN_TIMEOUT. What it does is reported to
 * `WorkerStatus`, for the health check.
 */
const consume = (process: Effect.Effect.Success<typeof ClaimProcessor.make>) => Effect.gen(function*() {
  const queue = yield* ClaimQueue
  const status = yield* WorkerStatus.WorkerStatus
  const unreachable = yield* Dependencies.make
  yield* ClaimAttempts.purge.pipe(Effect.catchAll((e) => Effect.logWarning(`worker: old delivery counts not purged: ${e.message}`)))
  yield* status.started
  // A claim left queued because storage or the database was down is handled again once they answer, not only
  // after its pause (up to 30 s).
  return yield* queue.consume((claim) => status.handling(claim.claim_id, process(claim)), {
    retrySooner: Dependencies.backAgain(unreachable)
  }).pipe(
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.failCause(cause)
        : Effect.zipRight(status.restarted, Effect.logError("worker: the consumer stopped; starting it again", cause))
    ),
    Effect.repeat(restartBackoff)
  )
})

/** Consumes claims for as long as it runs (see `consume`). */
export const run = Effect.flatMap(ClaimProcessor.make, consume)

/**
 * Consumes claims and runs the database's due maintenance jobs (which only some databases run themselves). The
 * processor, with its settings, is made before the consumer is forked: a bad setting stops the program at start
 * instead of leaving it to take uploads that nothing loads.
 */
export const layer = Layer.merge(
  Layer.scopedDiscard(Effect.flatMap(ClaimProcessor.make, (process) => Effect.forkScoped(consume(process)))),
  MaintenanceScheduler.layer
)
