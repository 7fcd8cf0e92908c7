import { describe, expect, it } from "@effect/vitest"
import { Maintenance } from "@telemetry/domain"
import { Effect, Fiber, Logger, LogLevel, Ref, TestClock } from "effect"
import * as MaintenanceScheduler from "../src/MaintenanceScheduler.js"

/** A maintenance whose late refresh fails while `down` holds, and counts its polls. */
const flaky = (down: Ref.Ref<boolean>, polls: Ref.Ref<number>): Maintenance.MaintenanceShape => {
  const unused = Effect.dieMessage("not used by the late poll")
  return {
    runner: "own",
    runDue: unused,
    runAll: unused,
    status: unused,
    refreshLate: () => unused,
    noteLate: () => unused,
    refreshNoted: Effect.zipRight(
      Ref.update(polls, (n) => n + 1),
      Effect.flatMap(Ref.get(down), (isDown) =>
        isDown ? Effect.fail(new Maintenance.JobError({ job: "late data", message: "connect ECONNREFUSED 127.0.0.1:5432" })) : Effect.succeed([]))
    )
  }
}

describe("the maintenance scheduler's late-data poll", () => {
  it.effect("while it fails, warns once and logs the other failures at debug level, then says it works again", () =>
    Effect.gen(function*() {
      const down = yield* Ref.make(true)
      const polls = yield* Ref.make(0)
      const lines = yield* Ref.make<ReadonlyArray<readonly [string, string]>>([])
      const capture = Logger.make(({ logLevel, message }) => {
        Effect.runSync(Ref.update(lines, (all) => [...all, [logLevel.label, String(message)] as const]))
      })
      const poll = yield* Effect.fork(MaintenanceScheduler.pollLate(flaky(down, polls)).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
        Logger.withMinimumLogLevel(LogLevel.All)
      ))
      // Five polls while the database is away, then two once it is back.
      for (let i = 0; i < 4; i++) yield* TestClock.adjust("5 seconds")
      expect(yield* Ref.get(polls)).toBe(5)
      yield* Ref.set(down, false)
      for (let i = 0; i < 2; i++) yield* TestClock.adjust("5 seconds")
      yield* Fiber.interrupt(poll)

      const logged = yield* Ref.get(lines)
      expect(logged.filter(([level]) => level === "WARN")).toEqual([[
        "WARN",
        "maintenance: late data not refreshed: connect ECONNREFUSED 127.0.0.1:5432; its days stay noted and are tried " +
        "again every 5s (failures logged at debug level until it works again)"
      ]])
      expect(logged.filter(([level]) => level === "DEBUG")).toHaveLength(4)
      expect(logged.filter(([level]) => level === "INFO")).toEqual([["INFO", "maintenance: late data refreshed again, after 5 failed poll(s)"]])
    }))
})
