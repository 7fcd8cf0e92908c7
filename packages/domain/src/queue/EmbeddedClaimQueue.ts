import { Chunk, Config, Duration, Effect, Either, Layer, Queue, Schedule, Stream } from "effect"
import { claimFor, type ClaimCheck } from "../ClaimCheck.js"
import { TelemetryStore } from "../db/TelemetryStore.js"
import { QueueError } from "../errors.js"
import { ObjectStore } from "../storage/ObjectStore.js"
import { ClaimQueue } from "./ClaimQueue.js"

export interface EmbeddedQueueOptions {
  /** Claims waiting for a worker; publishing waits while the queue is full. */
  readonly capacity: number
  /** How long publishing may wait for room before the request is refused. */
  readonly publishTimeout: Duration.DurationInput
}

/**
 * Re-queues stored payloads that the ledger does not hold: what an in-process queue lost when the process died
 * after answering 202 and before the worker committed the load.
 */
const recover = Effect.gen(function*() {
  const queue = yield* ClaimQueue
  const storage = yield* ObjectStore
  const store = yield* TelemetryStore
  // Recovered claims may outnumber the queue's room: wait for the workers rather than give up.
  const publish = (claim: ClaimCheck) => queue.publish(claim).pipe(Effect.retry(Schedule.spaced(Duration.seconds(1))))
  const requeued = yield* storage.list("telemetry/").pipe(
    // Objects whose metadata does not make a claim (not ours, or damaged) are left alone.
    Stream.filterMap((object) => Either.getRight(Either.try(() => claimFor(object, storage)))),
    Stream.grouped(500),
    Stream.mapEffect((claims) =>
      Effect.gen(function*() {
        const loaded = yield* store.loadedClaims(Chunk.toReadonlyArray(Chunk.map(claims, (c) => c.claim_id)))
        const missing = Chunk.filter(claims, (c) => !loaded.has(c.claim_id))
        yield* Effect.forEach(missing, publish, { discard: true })
        return missing.length
      })
    ),
    Stream.runSum
  )
  if (requeued > 0) yield* Effect.logWarning(`re-queued ${requeued} stored payload(s) that were never loaded`)
})

/** Runs the recovery in the background once, when the layer starts. */
export const recovery = Layer.scopedDiscard(
  Effect.forkScoped(
    recover.pipe(Effect.catchAllCause((cause) => Effect.logError("recovery of stored payloads failed", cause)))
  )
)

/** An in-process bounded queue. It does not survive the process: see `recovery`. */
export const layer = (options: EmbeddedQueueOptions) =>
  Layer.scoped(
    ClaimQueue,
    Effect.gen(function*() {
      const queue = yield* Effect.acquireRelease(Queue.bounded<ClaimCheck>(options.capacity), Queue.shutdown)
      return ClaimQueue.of({
        publish: (claim) =>
          Queue.offer(queue, claim).pipe(
            Effect.timeoutFail({
              duration: options.publishTimeout,
              onTimeout: () => new QueueError({ operation: "publish", message: "the claim queue is full" })
            }),
            Effect.asVoid
          ),
        consume: (handle) => Effect.forever(Effect.flatMap(Queue.take(queue), handle)),
        // In this process: up for as long as the process is.
        check: Effect.void
      })
    })
  )

export const layerConfig = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      capacity: Config.integer("QUEUE_CAPACITY").pipe(Config.withDefault(1000)),
      publishTimeout: Config.duration("QUEUE_PUBLISH_TIMEOUT").pipe(Config.withDefault(Duration.seconds(5)))
    }),
    layer
  )
)
