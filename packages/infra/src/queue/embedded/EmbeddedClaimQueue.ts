import { FileSystem, Path } from "@effect/platform"
import {
  type ClaimCheck,
  ClaimQueue,
  type ClaimRejected,
  DeadLetter,
  DEFAULT_SHUTDOWN_TIMEOUT,
  inRange,
  type PartitionLag,
  QueueError,
  REDELIVERY_BACKOFF,
  rejectionOf
} from "@telemetry/domain"
import {
  Cause,
  Clock,
  Config,
  type ConfigError,
  Duration,
  Effect,
  Exit,
  Fiber,
  FiberSet,
  Layer,
  Option,
  Queue,
  Ref,
  Schedule,
  Stream
} from "effect"
import * as DirectoryLock from "../../DirectoryLock.js"
import * as InFlight from "../InFlight.js"
import * as QueueMetrics from "../QueueMetrics.js"
import { queueError } from "../QueueErrors.js"
import * as DeadLetterFile from "./DeadLetterFile.js"
import * as FairLanes from "./FairLanes.js"

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
  /** The pause after a claim whose handling failed, before the next is taken (default `REDELIVERY_BACKOFF`). */
  readonly redeliveryBackoff?: Schedule.Schedule<unknown> | undefined
}

/** The dead letters' store: a file in `directory`, held by this process alone; else in memory. */
const deadLetterStore = (directory: string | undefined) =>
  directory === undefined
    ? DeadLetterFile.inMemory
    : Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      yield* fs.makeDirectory(directory, { recursive: true }).pipe(
        Effect.mapError(queueError("take", `cannot create ${directory}`))
      )
      yield* DirectoryLock.hold(path.join(directory, "owner.pid"), `the embedded queue in ${directory}`).pipe(
        Effect.mapError(({ cause, message }) => new QueueError({ operation: "take", message, cause }))
      )
      return yield* DeadLetterFile.inFile(path.join(directory, "dead-letters.jsonl"))
    })

type Files = FileSystem.FileSystem | Path.Path

/**
 * What loading a claim costs, in readings: its readings, and what any claim costs besides (fetching its object,
 * its transaction), about as much as a thousand readings.
 */
const claimCost = ({ metadata }: ClaimCheck) => metadata.totalSensors + 1_000

/** The queue as one partition, its lag the claims published and not acknowledged yet. */
const partitionsOf = (pending: number): ReadonlyArray<PartitionLag> => [
  { topic: QueueMetrics.EMBEDDED_TOPIC, partition: 0, lag: pending }
]

/**
 * An in-process bounded queue. It does not survive the process: see the worker's `Recovery`. Only with a
 * `directory` does it need the file system, and can it fail (that directory being unusable or held by another).
 */
export function layer(
  options: EmbeddedQueueOptions & { readonly directory: string }
): Layer.Layer<ClaimQueue, QueueError, Files>
export function layer(options: EmbeddedQueueOptions & { readonly directory?: undefined }): Layer.Layer<ClaimQueue>
export function layer(options: EmbeddedQueueOptions): Layer.Layer<ClaimQueue, QueueError, Files>
export function layer(options: EmbeddedQueueOptions): Layer.Layer<ClaimQueue, QueueError, Files> {
  return Layer.scoped(
    ClaimQueue,
    Effect.gen(function*() {
      const deadLetters = yield* deadLetterStore(options.directory)
      // Claims waiting, taken in turns by tenant and device, so that one device's burst cannot hold up the others;
      // tenants share by the readings their claims load, so that one tenant's costly claims cannot either.
      const waiting = new FairLanes.FairLanes<ClaimCheck>(
        ({ metadata }) => ({ tenant: metadata.tenantId, device: metadata.deviceId ?? "" }),
        claimCost
      )
      // A permit for each claim that may still wait (publishing waits for one), a signal for each that waits.
      const room = yield* Effect.makeSemaphore(options.capacity)
      const arrived = yield* Effect.acquireRelease(Queue.unbounded<void>(), Queue.shutdown)
      // Claims of each tenant waiting, or waiting for room: a tenant may hold half the queue, so that one whose
      // uploads outrun the worker does not fill it for every other tenant.
      const tenantShare = Math.ceil(options.capacity / 2)
      const held = new Map<string, number>()
      const hold = (tenant: string, change: number) => {
        const now = (held.get(tenant) ?? 0) + change
        if (now === 0) held.delete(tenant)
        else held.set(tenant, now)
      }
      const shiftWaiting = Effect.suspend(() => {
        const claim = waiting.shift()!
        hold(claim.metadata.tenantId, -1)
        return Effect.as(room.release(1), claim)
      })
      // Taking the signal and its claim is one step: an interruption between them would strand the claim.
      const take = Effect.uninterruptibleMask((restore) => Effect.zipRight(restore(Queue.take(arrived)), shiftWaiting))
      const poll = Effect.uninterruptible(Effect.flatMap(
        Queue.poll(arrived),
        Option.match({ onNone: () => Effect.succeedNone, onSome: () => Effect.asSome(shiftWaiting) })
      ))
      // Claims published and not acknowledged yet, and since when (for the health check).
      const pending = yield* Ref.make<ReadonlyMap<string, number>>(new Map())
      const reportLag = Effect.flatMap(Ref.get(pending), (all) => QueueMetrics.reportLag(partitionsOf(all.size)))
      const acknowledged = (claim: ClaimCheck) =>
        Ref.update(pending, (all) => {
          const rest = new Map(all)
          rest.delete(claim.claim_id)
          return rest
        }).pipe(Effect.zipRight(reportLag))
      // Claims taken but not acknowledged (their handling failed or was interrupted): taken again before the
      // queue's, yet in turn with them, so that a claim that keeps failing cannot hold up those behind it.
      const unacknowledged = yield* Ref.make<ReadonlyArray<ClaimCheck>>([])
      const lastWasRetry = yield* Ref.make(false)
      const retried = Ref.modify(unacknowledged, ([first, ...rest]) => [Option.fromNullable(first), rest] as const)
      const next = Effect.gen(function*() {
        const fresh = (yield* Ref.get(lastWasRetry)) ? yield* poll : Option.none<ClaimCheck>()
        const claim = Option.isSome(fresh) ? fresh : yield* retried
        yield* Ref.set(lastWasRetry, Option.isNone(fresh) && Option.isSome(claim))
        return Option.isSome(claim) ? claim.value : yield* take
      })
      const keep = (claim: ClaimCheck, { attempts, message, reason }: ClaimRejected) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          deadLetters.append(
            new DeadLetter({ claim, reason, error: message, attempts, failedAt: new Date(now), source: "embedded queue" })
          ))

      return ClaimQueue.of({
        publish: (claim) =>
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            // Published again while still pending (a replay), it counts from its first time.
            const added = yield* Ref.modify(pending, (all) =>
              all.has(claim.claim_id) ? [false, all] as const : [true, new Map(all).set(claim.claim_id, now)] as const)
            yield* reportLag
            const tenant = claim.metadata.tenantId
            yield* Effect.suspend(() =>
              (held.get(tenant) ?? 0) >= tenantShare
                ? Effect.fail(
                  new QueueError({
                    operation: "publish",
                    message: `tenant "${tenant}" has ${tenantShare} claims waiting, half the claim queue: its uploads wait for them to load`,
                    full: true
                  })
                )
                : Effect.acquireUseRelease(
                  Effect.sync(() => hold(tenant, 1)),
                  () =>
                    Effect.uninterruptibleMask((restore) =>
                      restore(room.take(1).pipe(
                        Effect.timeoutFail({
                          duration: options.publishTimeout,
                          onTimeout: () => new QueueError({ operation: "publish", message: "the claim queue is full", full: true })
                        })
                      )).pipe(
                        Effect.zipRight(Effect.sync(() => waiting.push(claim))),
                        Effect.zipRight(Queue.offer(arrived, undefined))
                      )
                    ),
                  // Held from here on by the claim waiting, until it is taken; not if it was refused.
                  (_, exit) => (Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => hold(tenant, -1)))
                )
            ).pipe(Effect.tapError(() => (added ? acknowledged(claim) : Effect.void)))
          }),
        // One claim at a time, each in a fiber of its own so that stopping lets it finish (InFlight). After a
        // failure the consumer pauses, longer while failures follow one another; a defect stops it.
        consume: (handle, consumeOptions) =>
          Effect.scoped(Effect.gen(function*() {
            const inFlight = yield* InFlight.make<void, unknown>(options.shutdownTimeout ?? DEFAULT_SHUTDOWN_TIMEOUT)
            const pauses = yield* Schedule.driver(options.redeliveryBackoff ?? REDELIVERY_BACKOFF)
            yield* Effect.logInfo("worker: consuming claims")
            return yield* Effect.forever(Effect.gen(function*() {
              const claim = yield* next
              const fiber = yield* FiberSet.run(
                inFlight,
                rejectionOf(handle(claim)).pipe(
                  Effect.flatMap(Option.match({ onNone: () => Effect.void, onSome: (rejection) => keep(claim, rejection) })),
                  Effect.onExit((exit) =>
                    Exit.isSuccess(exit)
                      ? acknowledged(claim)
                      : Ref.update(unacknowledged, (claims) => [claim, ...claims])
                  )
                )
              )
              const exit = yield* Fiber.await(fiber)
              if (Exit.isSuccess(exit)) return yield* pauses.reset
              if (Cause.isDie(exit.cause) || Cause.isInterrupted(exit.cause)) {
                return yield* Effect.failCause(Cause.stripFailures(exit.cause))
              }
              yield* Effect.raceFirst(Effect.ignore(pauses.next(undefined)), consumeOptions?.retrySooner ?? Effect.never)
            }))
          })),
        deadLetters: (range) =>
          Stream.fromIterableEffect(deadLetters.readAll).pipe(Stream.filter((letter) => inRange(range, letter.failedAt))),
        // In this process: up for as long as the process is.
        check: Effect.void,
        backlog: Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const all = yield* Ref.get(pending)
          let oldest = now
          for (const since of all.values()) oldest = Math.min(oldest, since)
          return {
            pending: all.size,
            room: { waiting: waiting.size, capacity: options.capacity },
            stalledFor: Duration.millis(now - oldest),
            partitions: partitionsOf(all.size)
          }
        })
      })
    })
  )
}

/** `layer` with its options read from `config`. */
export const layerConfig = (
  config: Config.Config.Wrap<EmbeddedQueueOptions>
): Layer.Layer<ClaimQueue, QueueError | ConfigError.ConfigError, Files> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))
