import { describe, expect, it } from "@effect/vitest"
import { ClaimQueue } from "@telemetry/domain"
import { claim } from "@telemetry/domain/testing"
import { Effect, Fiber, Metric, Ref } from "effect"
import * as EmbeddedClaimQueue from "../src/queue/embedded/EmbeddedClaimQueue.js"
import { lagsOf } from "../src/queue/kafka/KafkaLag.js"
import * as QueueMetrics from "../src/queue/QueueMetrics.js"

const lag = Effect.map(Metric.value(QueueMetrics.lagOf(QueueMetrics.EMBEDDED_TOPIC, 0)), (s) => s.value)

describe("queue lag", () => {
  it.effect("the embedded queue's lag is its claims published and not yet acknowledged", () =>
    Effect.gen(function*() {
      const queue = yield* ClaimQueue
      yield* Effect.forEach([claim(), claim(), claim()], queue.publish, { discard: true })
      expect(yield* lag).toBe(3)

      const handled = yield* Ref.make(0)
      const consumer = yield* Effect.fork(queue.consume(() => Ref.update(handled, (n) => n + 1)))
      yield* Ref.get(handled).pipe(Effect.repeat({ until: (n) => n >= 3 }))
      // Each claim is acknowledged once its handling has ended, just after it counted itself.
      expect(yield* lag.pipe(Effect.repeat({ until: (n) => n === 0 }))).toBe(0)
      yield* Fiber.interrupt(consumer)
    }).pipe(Effect.provide(EmbeddedClaimQueue.layer({ capacity: 10, publishTimeout: "1 second" }))))

  it("a Kafka partition's lag is its high watermark less the group's committed offset, from its start where none", () => {
    const ends = [
      { partition: 2, low: "0", high: "7" },
      { partition: 0, low: "0", high: "10" },
      { partition: 1, low: "5", high: "9" },
      { partition: 3, low: "4", high: "4" }
    ]
    // Partition 1: committed below the retained start (the rest was deleted); 2: never committed (-1).
    const committed = [
      { partition: 0, offset: "6" },
      { partition: 1, offset: "2" },
      { partition: 2, offset: "-1" },
      { partition: 3, offset: "4" }
    ]
    expect(lagsOf("t", ends, committed)).toEqual([
      { topic: "t", partition: 0, lag: 4 },
      { topic: "t", partition: 1, lag: 4 },
      { topic: "t", partition: 2, lag: 7 },
      { topic: "t", partition: 3, lag: 0 }
    ])
    // A group that never committed on the topic at all.
    expect(lagsOf("t", ends, []).map((p) => p.lag)).toEqual([10, 4, 7, 0])
  })
})
