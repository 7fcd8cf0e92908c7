import { describe, expect, it } from "@effect/vitest"
import { type ClaimCheck, ClaimQueue } from "@telemetry/domain"
import { claim } from "@telemetry/domain/testing"
import { Cause, Chunk, Deferred, Duration, Effect, Exit, Fiber, Ref, Schedule, TestClock } from "effect"
import * as EmbeddedClaimQueue from "../src/queue/embedded/EmbeddedClaimQueue.js"
import { stopDuring } from "./support/queue.js"

const queueWith = (shutdownTimeout: Duration.DurationInput, redeliveryBackoff?: Schedule.Schedule<unknown>) =>
  EmbeddedClaimQueue.layer({ capacity: 10, publishTimeout: "1 second", shutdownTimeout, redeliveryBackoff })

/** Publishes `claims` in turn, and answers them. */
const published = <const C extends ReadonlyArray<ClaimCheck>>(...claims: C) =>
  Effect.flatMap(ClaimQueue, (queue) => Effect.as(Effect.forEach(claims, queue.publish, { discard: true }), claims))

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
  it.effect("stopped, lets the claim in progress finish within the shutdown timeout and takes no more", () =>
    Effect.gen(function*() {
      const [first, second] = yield* published(claim(), claim())
      const stopping = yield* Effect.fork(stopDuring(() => Effect.sleep("500 millis")))
      // Both clocks running: the claim's 500 ms and the stop's wait of up to 20 s for it.
      yield* TestClock.sleeps().pipe(Effect.repeat({ until: (sleeps) => Chunk.size(sleeps) >= 2 }))
      yield* TestClock.adjust("500 millis")
      expect(yield* Fiber.join(stopping)).toEqual({ finished: [first.claim_id], interrupted: true })
      expect(yield* nextTaken(1)).toEqual([second.claim_id])
    }).pipe(Effect.provide(queueWith("20 seconds"))))

  it.live("stopped, interrupts a claim that outlasts the shutdown timeout and hands it out again first", () =>
    Effect.gen(function*() {
      const [first, second] = yield* published(claim(), claim())
      expect(yield* stopDuring(() => Effect.never)).toEqual({ finished: [], interrupted: true })
      expect(yield* nextTaken(2)).toEqual([first.claim_id, second.claim_id])
    }).pipe(Effect.provide(queueWith("200 millis"))))

  it.effect("a claim whose handling failed is handed out again first after a pause (1 s, then 2 s), the consumer going on", () =>
    Effect.gen(function*() {
      const queue = yield* ClaimQueue
      const [first, second] = yield* published(claim(), claim())
      const taken = yield* Ref.make<ReadonlyArray<string>>([])
      const consumer = yield* Effect.fork(queue.consume((c) =>
        Effect.zipRight(
          Ref.update(taken, (ids) => [...ids, c.claim_id]),
          c.claim_id === first.claim_id ? Effect.fail("database down") : Effect.void
        )
      ))
      const takenAfter = (step: Duration.DurationInput) => Effect.zipRight(TestClock.adjust(step), Ref.get(taken))
      expect(yield* takenAfter(0)).toEqual([first.claim_id])
      expect(yield* takenAfter("999 millis")).toEqual([first.claim_id])
      expect(yield* takenAfter("1 millis")).toEqual([first.claim_id, first.claim_id])
      // Failures in a row pause longer; the claim waiting is taken in turn with the failed one, and after its
      // success the failed one at once.
      expect(yield* takenAfter("1999 millis")).toHaveLength(2)
      expect(yield* takenAfter("1 millis")).toEqual([first, first, second, first].map((c) => c.claim_id))
      expect(consumer.unsafePoll()).toBeNull()
      yield* Fiber.interrupt(consumer)
    }).pipe(Effect.provide(queueWith("1 second"))))

  it.effect("a failed claim's pause ends sooner when retrySooner does (its dependencies answer again)", () =>
    Effect.gen(function*() {
      const queue = yield* ClaimQueue
      yield* published(claim())
      const back = yield* Deferred.make<void>()
      const tries = yield* Ref.make(0)
      const consumer = yield* Effect.fork(queue.consume(
        () => Effect.flatMap(Ref.updateAndGet(tries, (n) => n + 1), (n) => (n === 1 ? Effect.fail("database down") : Effect.void)),
        { retrySooner: Deferred.await(back) }
      ))
      yield* TestClock.adjust("5 seconds")
      expect(yield* Ref.get(tries)).toBe(1)
      yield* Deferred.succeed(back, undefined)
      // Handled again and done, with no more time passing.
      yield* queue.backlog.pipe(Effect.repeat({ until: (backlog) => backlog.pending === 0 }))
      expect(yield* Ref.get(tries)).toBe(2)
      yield* Fiber.interrupt(consumer)
    }).pipe(Effect.provide(queueWith("1 second", Schedule.spaced("10 minutes")))))

  it.live("a claim whose handling keeps failing is handed out in turn with the others, not before each of them", () =>
    Effect.gen(function*() {
      const queue = yield* ClaimQueue
      const [poison, second, third] = yield* published(claim(), claim(), claim())
      const taken = yield* Ref.make<ReadonlyArray<string>>([])
      const consumer = yield* Effect.fork(
        queue.consume((c) =>
          Effect.zipRight(
            Ref.update(taken, (ids) => [...ids, c.claim_id]),
            c.claim_id === poison.claim_id ? Effect.fail("database refused it") : Effect.void
          )
        )
      )
      yield* Ref.get(taken).pipe(Effect.repeat({ until: (ids) => ids.length >= 6, schedule: Schedule.spaced("5 millis") }))
      yield* Fiber.interrupt(consumer)
      const ids = (yield* Ref.get(taken)).slice(0, 6)
      expect(ids).toEqual([poison, poison, second, poison, third, poison].map((c) => c.claim_id))
    }).pipe(Effect.provide(queueWith("1 second", Schedule.spaced("10 millis")))))

  it.live("a claim whose handling dies stops the consumer, and is handed out again first", () =>
    Effect.gen(function*() {
      const queue = yield* ClaimQueue
      const [first, second] = yield* published(claim(), claim())
      const stopped = yield* Effect.exit(queue.consume(() => Effect.die("a bug")))
      expect(Exit.isFailure(stopped) && Cause.isDie(stopped.cause)).toBe(true)
      expect(yield* nextTaken(2)).toEqual([first.claim_id, second.claim_id])
    }).pipe(Effect.provide(queueWith("1 second"))))

  it.effect("takes claims in turns, one tenant after another and one device after another, each device's in order", () =>
    Effect.gen(function*() {
      const burst = [1, 2, 3].map(() => claim({ tenantId: "home", deviceId: "busy" }))
      const [, , , quiet, neighbour, anonymous] = yield* published(
        ...burst,
        claim({ tenantId: "other", deviceId: "quiet" }),
        claim({ tenantId: "home", deviceId: "neighbour" }),
        claim({ tenantId: "other" })
      )
      expect(yield* nextTaken(6)).toEqual(
        [burst[0], quiet, neighbour, anonymous, burst[1], burst[2]].map((c) => c!.claim_id)
      )
    }).pipe(Effect.provide(queueWith("1 second"))))

  it.effect("tenants share by the readings their claims load: a costly claim lets another tenant's cheap ones go first", () =>
    Effect.gen(function*() {
      const costly = [1, 2].map(() => claim({ tenantId: "bulky", readings: 100_000 }))
      const cheap = [1, 2, 3].map(() => claim({ tenantId: "small", readings: 10 }))
      yield* published(costly[0]!, costly[1]!, ...cheap)
      expect(yield* nextTaken(5)).toEqual([costly[0], ...cheap, costly[1]].map((c) => c!.claim_id))
      // Its cost still counts once nothing of it waits: a costly claim published after it was taken waits too.
      const later = claim({ tenantId: "bulky", readings: 100_000 })
      const [other] = yield* published(claim({ tenantId: "small", readings: 10 }), later)
      expect(yield* nextTaken(2)).toEqual([other!.claim_id, later.claim_id])
    }).pipe(Effect.provide(queueWith("1 second"))))

  it.effect("publishing waits while `capacity` claims wait, and is refused once its timeout passes", () =>
    Effect.gen(function*() {
      const queue = yield* ClaimQueue
      yield* published(...["a", "b"].flatMap((tenantId) => Array.from({ length: 5 }, () => claim({ tenantId }))))
      const refused = yield* Effect.fork(Effect.flip(queue.publish(claim({ tenantId: "c" }))))
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(refused)).message).toBe("the claim queue is full")
      // The refused claim is not pending; one taken makes room for the next.
      expect((yield* queue.backlog).pending).toBe(10)
      yield* nextTaken(1)
      const last = claim({ tenantId: "c" })
      yield* queue.publish(last)
      expect(yield* queue.backlog).toMatchObject({ pending: 10, room: { waiting: 10, capacity: 10 } })
    }).pipe(Effect.provide(queueWith("1 second"))))

  it.effect("a tenant may hold half the queue: its next claim is refused at once, another tenant's is taken", () =>
    Effect.gen(function*() {
      const queue = yield* ClaimQueue
      yield* published(...Array.from({ length: 5 }, () => claim({ tenantId: "noisy" })))
      const refused = yield* Effect.flip(queue.publish(claim({ tenantId: "noisy" })))
      expect(refused.message).toBe(`tenant "noisy" has 5 claims waiting, half the claim queue: its uploads wait for them to load`)
      yield* queue.publish(claim({ tenantId: "quiet" }))
      expect(yield* queue.backlog).toMatchObject({ pending: 6, room: { waiting: 6 } })
      // Once one of its claims is taken, the tenant may queue one more.
      yield* nextTaken(1)
      yield* queue.publish(claim({ tenantId: "noisy" }))
      expect(yield* queue.backlog).toMatchObject({ pending: 6, room: { waiting: 6 } })
    }).pipe(Effect.provide(queueWith("1 second"))))

  it.effect("its backlog: claims not acknowledged, those waiting against the capacity, and how long the oldest has waited", () =>
    Effect.gen(function*() {
      const queue = yield* ClaimQueue
      expect(yield* queue.backlog).toEqual({ pending: 0, partitions: [{ topic: "embedded", partition: 0, lag: 0 }], room: { waiting: 0, capacity: 10 }, stalledFor: Duration.zero })
      const [first, second] = [claim(), claim()]
      yield* queue.publish(first)
      yield* TestClock.adjust("10 seconds")
      yield* queue.publish(second)
      yield* TestClock.adjust("5 seconds")
      expect(yield* queue.backlog).toEqual({
        pending: 2,
        partitions: [{ topic: "embedded", partition: 0, lag: 2 }],
        room: { waiting: 2, capacity: 10 },
        stalledFor: Duration.seconds(15)
      })
      expect(yield* nextTaken(1)).toEqual([first.claim_id])
      expect(yield* queue.backlog).toEqual({
        pending: 1,
        partitions: [{ topic: "embedded", partition: 0, lag: 1 }],
        room: { waiting: 1, capacity: 10 },
        stalledFor: Duration.seconds(5)
      })
    }).pipe(Effect.provide(queueWith("1 second"))))
})
