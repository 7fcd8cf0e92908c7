import { type ClaimCheck, ClaimQueue } from "@telemetry/domain"
import * as ClaimAttempts from "@telemetry/infra/db/ClaimAttempts"
import { Chunk, Duration, Effect, Layer, Schedule, Stream } from "effect"
import * as StoredClaims from "./StoredClaims.js"

/**
 * Re-queues stored payloads that the ledger does not hold: what an in-process queue lost when the process died
 * after answering 202 and before the worker committed the load. Dead-lettered claims stay aside (`pnpm replay`).
 * Claims whose loads began and never ended (ClaimAttempts) — they may be what took the process down — go last,
 * fewest deliveries first, so that one of them cannot stop the others again at every start.
 */
const recover = Effect.gen(function*() {
  const queue = yield* ClaimQueue
  // Recovered claims may outnumber the queue's room: wait for the workers rather than give up.
  const publish = (claim: ClaimCheck) => queue.publish(claim).pipe(Effect.retry(Schedule.spaced(Duration.seconds(1))))
  const suspects: Array<{ readonly claim: ClaimCheck; readonly deliveries: number }> = []
  const first = yield* StoredClaims.lost.pipe(
    Stream.grouped(500),
    Stream.mapEffect((group) =>
      Effect.map(ClaimAttempts.counts(Chunk.toReadonlyArray(Chunk.map(group, (c) => c.claim_id))), (counts) =>
        Chunk.filter(group, (claim) => {
          const deliveries = counts.get(claim.claim_id)
          if (deliveries !== undefined) suspects.push({ claim, deliveries })
          return deliveries === undefined
        }))
    ),
    Stream.flattenChunks,
    Stream.mapEffect(publish),
    Stream.runCount
  )
  yield* Effect.forEach(suspects.sort((a, b) => a.deliveries - b.deliveries), ({ claim }) => publish(claim), { discard: true })
  const requeued = first + suspects.length
  if (requeued > 0) yield* Effect.logWarning(`re-queued ${requeued} stored payload(s) that were never loaded`)
  if (suspects.length > 0) {
    yield* Effect.logWarning(
      `of them, ${suspects.length} queued after the others: a load of each began before and never ended (its process ` +
        "died), so it may take this one down too (past WORKER_MAX_DELIVERIES such loads it is dead-lettered unloaded)"
    )
  }
})

/** Runs the recovery in the background once, when the layer starts: for a queue that lives in memory. */
export const layer = Layer.scopedDiscard(
  Effect.forkScoped(
    recover.pipe(Effect.catchAllCause((cause) => Effect.logError("recovery of stored payloads failed", cause)))
  )
)
