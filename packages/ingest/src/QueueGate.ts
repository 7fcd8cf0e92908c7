import { type ClaimCheck, ClaimQueue, type QueueError } from "@telemetry/domain"
import { Clock, Data, Duration, Effect, FiberRef, HashMap, Option, Ref, Schedule } from "effect"

/** Uploads are refused before they are read: a publish failed, and the queue has not answered a check since. */
export class QueueDown extends Data.TaggedError("QueueDown")<{ readonly since: Date; readonly reason: string }> {
  override get message() {
    return `the claim queue has failed since ${this.since.toISOString()} (${this.reason})`
  }
}

/**
 * How often a queue that failed a publish is checked, until it answers: soon after a blip (a leader election), then
 * every 5 s (the `Retry-After` of the refusals), since each failed check of Kafka logs the client's errors again.
 */
const probes = Schedule.exponential(Duration.millis(500)).pipe(
  Schedule.modifyDelay((delay) => Duration.min(delay, Duration.seconds(5)))
)

/**
 * Publishes claims, and remembers a failed publish: until the queue answers a check again (`probes`),
 * uploads are refused at once (`QueueDown`), before a byte of them is read. Without it, while Kafka is down every
 * upload was read and stored whole, then refused after QUEUE_PUBLISH_TIMEOUT, and its object deleted again.
 */
export class QueueGate extends Effect.Service<QueueGate>()("@telemetry/QueueGate", {
  scoped: Effect.gen(function*() {
    const queue = yield* ClaimQueue
    const scope = yield* Effect.scope
    const down = yield* Ref.make(Option.none<QueueDown>())

    const reopen = queue.check.pipe(
      Effect.retry(probes),
      Effect.zipRight(Ref.set(down, Option.none())),
      Effect.zipRight(Effect.logInfo("ingest: the claim queue answers again: uploads are taken again"))
    )

    const failed = (e: QueueError) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Ref.modify(down, (was): readonly [boolean, Option.Option<QueueDown>] =>
          Option.isSome(was) ? [false, was] : [true, Option.some(new QueueDown({ since: new Date(now), reason: e.message }))]
        )).pipe(
          // One probe at a time: only the failure that closed the gate starts one.
          Effect.flatMap((closed) =>
            closed
              ? Effect.zipRight(
                Effect.logWarning(`ingest: a claim was not published (${e.message}): uploads are refused until the queue answers`),
                // Not annotated with the request whose publish failed: the probe outlives it.
                Effect.forkIn(Effect.locally(reopen, FiberRef.currentLogAnnotations, HashMap.empty()), scope)
              )
              : Effect.void
          )
        )

    return {
      /** Fails while the queue is known to be down. */
      open: Effect.flatMap(Ref.get(down), Option.match({ onNone: () => Effect.void, onSome: Effect.fail })),
      // A queue without room (for the claim's tenant) has not failed: the other uploads are let through.
      publish: (claim: ClaimCheck) => queue.publish(claim).pipe(Effect.tapError((e) => (e.full ? Effect.void : failed(e))))
    } as const
  })
}) {}
