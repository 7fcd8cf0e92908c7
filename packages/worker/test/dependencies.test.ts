import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Ref, TestClock } from "effect"
import * as Dependencies from "../src/Dependencies.js"

/** Dependencies down while `down` holds them, the probes counted. */
const probed = (down: Ref.Ref<ReadonlyArray<string>>, probes: Ref.Ref<number>) =>
  Effect.zipRight(Ref.update(probes, (n) => n + 1), Ref.get(down))

describe("waiting for the dependencies to answer again", () => {
  it.effect("ends once those found down answer, asking each second", () =>
    Effect.gen(function*() {
      const down = yield* Ref.make<ReadonlyArray<string>>(["the database is down (ECONNREFUSED)"])
      const probes = yield* Ref.make(0)
      const waiting = yield* Effect.fork(Dependencies.backAgain(probed(down, probes)))
      yield* TestClock.adjust("3 seconds")
      expect(waiting.unsafePoll()).toBeNull()
      expect(yield* Ref.get(probes)).toBe(4)
      yield* Ref.set(down, [])
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(waiting)).toBeUndefined()
      expect(yield* Ref.get(probes)).toBe(5)
    }))

  it.effect("never ends when none was down: the failure was not theirs, and the claim waits its pause", () =>
    Effect.gen(function*() {
      const probes = yield* Ref.make(0)
      const waiting = yield* Effect.fork(Dependencies.backAgain(probed(yield* Ref.make<ReadonlyArray<string>>([]), probes)))
      yield* TestClock.adjust("1 minute")
      expect(waiting.unsafePoll()).toBeNull()
      expect(yield* Ref.get(probes)).toBe(1)
    }))
})
