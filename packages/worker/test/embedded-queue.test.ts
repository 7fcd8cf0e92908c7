import { describe, expect, it } from "@effect/vitest"
import { type ClaimCheck, ClaimQueue, EmbeddedClaimQueue } from "@telemetry/domain"
import { claim } from "@telemetry/domain/testing"
import { Deferred, Duration, Effect, Fiber, Ref } from "effect"

const queueWith = (shutdownTimeout: Duration.DurationInput) =>
  EmbeddedClaimQueue.layer({ capacity: 10, publishTimeout: "1 second", shutdownTimeout })

/** Consumes with `handle` until it started on a claim, then stops the consumer; answers the claims finished. */
const stopDuring = (handle: (claim: ClaimCheck) => Effect.Effect<void>) =>
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
    yield* Fiber.interrupt(consumer)
    return yield* Ref.get(finished)
  })

/** The claims a new consumer takes first, in order. */
const nextTaken = (count: number) =>
  Effect.gen(function*() {
    const queue = yield* ClaimQueue
    const taken = yield* Ref.make<ReadonlyArray<string>>([])
    const consumer = yield* Effect.fork(queue.consume((c) => Ref.update(taken, (ids) => [...ids, c.claim_id])))
    yield* Ref.get(taken).pipe(Effect.repeat({ until: (ids) => ids.length >= count }))
    yield* Fiber.interrupt(consumer)
    return yield* Ref.get(taken)
  })

describe("the in-process queue's consumer", () => {
  it.live("stopped, lets the claim in progress finish within the shutdown timeout and takes no more", () =>
    Effect.gen(function*() {
      const queue = yield* ClaimQueue
      const [first, second] = [claim(), claim()]
      yield* queue.publish(first)
      yield* queue.publish(second)
      expect(yield* stopDuring(() => Effect.sleep("500 millis"))).toEqual([first.claim_id])
      expect(yield* nextTaken(1)).toEqual([second.claim_id])
    }).pipe(Effect.provide(queueWith("20 seconds"))))

  it.live("stopped, interrupts a claim that outlasts the shutdown timeout and hands it out again first", () =>
    Effect.gen(function*() {
      const queue = yield* ClaimQueue
      const [first, second] = [claim(), claim()]
      yield* queue.publish(first)
      yield* queue.publish(second)
      expect(yield* stopDuring(() => Effect.never)).toEqual([])
      expect(yield* nextTaken(2)).toEqual([first.claim_id, second.claim_id])
    }).pipe(Effect.provide(queueWith("200 millis"))))

  it.live("a claim whose handling failed stops the consumer and is handed out again first", () =>
    Effect.gen(function*() {
      const queue = yield* ClaimQueue
      const [first, second] = [claim(), claim()]
      yield* queue.publish(first)
      yield* queue.publish(second)
      expect(yield* Effect.flip(queue.consume(() => Effect.fail("database down")))).toBe("database down")
      expect(yield* nextTaken(2)).toEqual([first.claim_id, second.claim_id])
    }).pipe(Effect.provide(queueWith("1 second"))))
})
