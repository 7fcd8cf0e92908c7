import { Clock, Config, Duration, Effect, Exit, Fiber, FiberSet, Layer, Option, Queue, Ref, Schedule, Stream } from "effect"
import { mkdir } from "node:fs/promises"
import { dirname, join } from "node:path"
import type { ClaimCheck } from "../ClaimCheck.js"
import { type ClaimRejected, DeadLetter, inRange, rejectionOf } from "../DeadLetter.js"
import { QueueError } from "../errors.js"
import { ClaimQueue, DEFAULT_SHUTDOWN_TIMEOUT, ShutdownTimeout } from "./ClaimQueue.js"
import * as DeadLetterFile from "./DeadLetterFile.js"
import * as DirectoryLock from "./DirectoryLock.js"
import * as InFlight from "./InFlight.js"
import * as StoredClaims from "./StoredClaims.js"

export interface EmbeddedQueueOptions {
  /** Claims waiting for a worker; publishing waits while the queue is full. */
  readonly capacity: number
  /** How long publishing may wait for room before the request is refused. */
  readonly publishTimeout: Duration.DurationInput
  /** How long a claim being loaded may take to finish once the consumer is told to stop (default 20 s). */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /**
   * Where the queue keeps what must outlive the process — its dead letters (`dead-letters.jsonl`) — and the lock
   * (`owner.pid`) that lets one process at a time own it. Without it, dead letters last as long as the process.
   */
  readonly directory?: string | undefined
}

/**
 * Re-queues stored payloads that the ledger does not hold: what an in-process queue lost when the process died
 * after answering 202 and before the worker committed the load. Dead-lettered claims stay aside (`pnpm replay`).
 */
const recover = Effect.gen(function*() {
  const queue = yield* ClaimQueue
  const deadLettered = new Set(
    yield* queue.deadLetters({}).pipe(
      Stream.filterMap((letter) => Option.fromNullable(letter.claim?.claim_id)),
      Stream.runCollect
    )
  )
  // Recovered claims may outnumber the queue's room: wait for the workers rather than give up.
  const publish = (claim: ClaimCheck) => queue.publish(claim).pipe(Effect.retry(Schedule.spaced(Duration.seconds(1))))
  const requeued = yield* StoredClaims.stored().pipe(
    Stream.filter((claim) => !deadLettered.has(claim.claim_id)),
    StoredClaims.unloaded,
    Stream.mapEffect(publish),
    Stream.runCount
  )
  if (requeued > 0) yield* Effect.logWarning(`re-queued ${requeued} stored payload(s) that were never loaded`)
})

/** Runs the recovery in the background once, when the layer starts. */
export const recovery = Layer.scopedDiscard(
  Effect.forkScoped(
    recover.pipe(Effect.catchAllCause((cause) => Effect.logError("recovery of stored payloads failed", cause)))
  )
)

/** The dead letters' store: a file in `directory`, held by this process alone; else in memory. */
const deadLetterStore = (directory: string | undefined) =>
  directory === undefined
    ? DeadLetterFile.inMemory
    : Effect.gen(function*() {
      yield* Effect.tryPromise({
        try: () => mkdir(directory, { recursive: true }),
        catch: (cause) => new QueueError({ operation: "take", message: `cannot create ${directory}: ${cause}`, cause })
      })
      yield* DirectoryLock.hold(join(directory, "owner.pid"), `the embedded queue in ${directory}`)
      return DeadLetterFile.inFile(join(directory, "dead-letters.jsonl"))
    })

/** An in-process bounded queue. It does not survive the process: see `recovery`. */
export const layer = (options: EmbeddedQueueOptions) =>
  Layer.scoped(
    ClaimQueue,
    Effect.gen(function*() {
      const deadLetters = yield* deadLetterStore(options.directory)
      const queue = yield* Effect.acquireRelease(Queue.bounded<ClaimCheck>(options.capacity), Queue.shutdown)
      // Claims taken but not acknowledged (their handling failed or was interrupted): taken again first.
      const unacknowledged = yield* Ref.make<ReadonlyArray<ClaimCheck>>([])
      const next = Effect.flatMap(
        Ref.modify(unacknowledged, ([first, ...rest]) => [Option.fromNullable(first), rest]),
        Option.match({ onNone: () => Queue.take(queue), onSome: Effect.succeed })
      )
      const keep = (claim: ClaimCheck, { attempts, message, reason }: ClaimRejected) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          deadLetters.append(
            new DeadLetter({ claim, reason, error: message, attempts, failedAt: new Date(now), source: "embedded queue" })
          ))

      return ClaimQueue.of({
        publish: (claim) =>
          Queue.offer(queue, claim).pipe(
            Effect.timeoutFail({
              duration: options.publishTimeout,
              onTimeout: () => new QueueError({ operation: "publish", message: "the claim queue is full" })
            }),
            Effect.asVoid
          ),
        // One claim at a time, each in a fiber of its own so that stopping lets it finish (InFlight).
        consume: (handle) =>
          Effect.scoped(Effect.gen(function*() {
            const inFlight = yield* InFlight.make<void, unknown>(options.shutdownTimeout ?? DEFAULT_SHUTDOWN_TIMEOUT)
            return yield* Effect.forever(Effect.gen(function*() {
              const claim = yield* next
              const fiber = yield* FiberSet.run(
                inFlight,
                rejectionOf(handle(claim)).pipe(
                  Effect.flatMap(Option.match({ onNone: () => Effect.void, onSome: (rejection) => keep(claim, rejection) })),
                  Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Ref.update(unacknowledged, (claims) => [claim, ...claims]))
                )
              )
              yield* Fiber.join(fiber)
            }))
          })),
        deadLetters: (range) =>
          Stream.fromIterableEffect(deadLetters.readAll).pipe(Stream.filter((letter) => inRange(range, letter.failedAt))),
        // In this process: up for as long as the process is.
        check: Effect.void
      })
    })
  )

export const layerConfig = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      capacity: Config.integer("QUEUE_CAPACITY").pipe(Config.withDefault(1000)),
      publishTimeout: Config.duration("QUEUE_PUBLISH_TIMEOUT").pipe(Config.withDefault(Duration.seconds(5))),
      shutdownTimeout: ShutdownTimeout,
      // Beside the embedded database by default, so that one data directory holds one deployment.
      directory: Config.string("EMBEDDED_QUEUE_DIR").pipe(
        Config.orElse(() =>
          Config.map(Config.string("EMBEDDED_DB_DIR").pipe(Config.withDefault("./data/pg")), (db) => join(dirname(db), "queue"))
        )
      )
    }),
    layer
  )
)
