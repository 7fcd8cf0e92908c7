import { describe, expect, it } from "@effect/vitest"
import { ClaimQueue } from "@telemetry/domain"
import { claim } from "@telemetry/domain/testing"
import { Effect, Fiber, Metric, Ref } from "effect"
import * as EmbeddedClaimQueue from "../src/queue/embedded/EmbeddedClaimQueue.js"
import * as QueueMetrics from "../src/queue/QueueMetrics.js"

const lag = Effect.map(Metric.value(QueueMetrics.embeddedLag), (s) => s.value)

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
})
