import { Config, Context, Duration, type Effect, Schedule, type Stream } from "effect"
import type { ClaimCheck } from "../ClaimCheck.js"
import type { ClaimRejected, DeadLetter, TimeRange } from "../DeadLetter.js"
import type { QueueError } from "../errors.js"

export interface ClaimQueueShape {
  /** Durably hands a claim to the workers (or fails: the request must then not be acknowledged). */
  readonly publish: (claim: ClaimCheck) => Effect.Effect<void, QueueError>
  /**
   * Runs `handle` for every claim, forever. A claim counts as done (acknowledged, its offset committed) only
   * once `handle` succeeded, or failed with `ClaimRejected` and the claim's dead letter was kept. On any other
   * failure (or while the dead letter cannot be kept) the claim is not acknowledged and is handed to `handle` again
   * after a pause (`REDELIVERY_BACKOFF`), the consumer going on: on Kafka in place, only its partition waiting
   * (stopping the member would rebalance the whole group, holding up every partition), in process in turn with the
   * claims waiting. The consumer stops only when the queue itself fails or `handle` dies (a defect); its claims
   * not done are delivered again later.
   *
   * Interrupting it stops the consumer gracefully: no new claims are taken, the claims being handled get up to the
   * queue's shutdown timeout to finish (and are acknowledged), then what is left is interrupted and delivered
   * again later.
   */
  readonly consume: <E, R>(
    handle: (claim: ClaimCheck) => Effect.Effect<unknown, E | ClaimRejected, R>,
    options?: ConsumeOptions<R>
  ) => Effect.Effect<never, QueueError, R>
  /** The dead letters kept so far whose failure time lies in `range`, in the order they were kept. */
  readonly deadLetters: (range: TimeRange) => Stream.Stream<DeadLetter, QueueError>
  /** Succeeds when the queue can take claims now (for health checks). */
  readonly check: Effect.Effect<void, QueueError>
  /** The claims not done yet, and whether they move (for health checks). */
  readonly backlog: Effect.Effect<Backlog, QueueError>
}

export interface ConsumeOptions<R> {
  /**
   * Run at each pause after a failed handling: the pause ends when it does, if that is sooner — e.g. once the
   * dependencies found down answer again, so that a long outage's last pause does not outlast it.
   */
  readonly retrySooner?: Effect.Effect<void, never, R> | undefined
}

/** Claims published and not yet done, as the health check reports them. */
export interface Backlog {
  /** Claims published and not yet acknowledged, waiting or being handled (Kafka: the consumer group's lag). */
  readonly pending: number
  /** The in-process queue's claims waiting for a worker, and the most that may wait (publishing waits beyond). */
  readonly room?: { readonly waiting: number; readonly capacity: number } | undefined
  /**
   * How long claims have waited without the workers getting through them. In process: the time since the oldest
   * claim not yet acknowledged was queued. On Kafka: the longest a partition has had lag while the group's committed
   * offset there did not move, as this process saw it (so at most since it first looked).
   */
  readonly stalledFor: Duration.Duration
  /** On Kafka, the partition stalled that long while it has lag (the one to look at); none in process. */
  readonly stalledPartition?: number | undefined
  /** `pending` per partition of the claims' topic (the in-process queue: one partition, 0). */
  readonly partitions: ReadonlyArray<PartitionLag>
}

/** Claims waiting in one partition: its end less the offset the workers committed there. */
export interface PartitionLag {
  readonly topic: string
  readonly partition: number
  readonly lag: number
}

export class ClaimQueue extends Context.Tag("@telemetry/ClaimQueue")<ClaimQueue, ClaimQueueShape>() {}

/**
 * The pause before a claim whose handling failed is handed out again: 1 s, doubling while it keeps failing, at
 * most 30 s. Each delivery has had its own retries first (the worker's `WORKER_RETRY_ATTEMPTS`).
 */
export const REDELIVERY_BACKOFF: Schedule.Schedule<unknown> = Schedule.exponential(Duration.seconds(1)).pipe(
  Schedule.union(Schedule.spaced(Duration.seconds(30)))
)

export const DEFAULT_SHUTDOWN_TIMEOUT = Duration.seconds(20)

/** `SHUTDOWN_TIMEOUT`: how long claims being loaded may take to finish once the process is told to stop. */
export const ShutdownTimeout = Config.duration("SHUTDOWN_TIMEOUT").pipe(Config.withDefault(DEFAULT_SHUTDOWN_TIMEOUT))
