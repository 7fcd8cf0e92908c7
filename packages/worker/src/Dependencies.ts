import * as Health from "@telemetry/infra/Health"
import { Duration, Effect } from "effect"

// A dependency that does not answer within this long counts as down.
const PROBE_TIMEOUT = Duration.seconds(10)

/** The processor's dependencies that are unreachable now, described; empty when all answer. */
export const make = Effect.gen(function*() {
  const checks = [["storage", yield* Health.storageReachable], ["the database", yield* Health.databaseReachable]] as const
  return Effect.map(
    Effect.forEach(checks, ([name, check]) =>
      Effect.map(Health.timed(check, PROBE_TIMEOUT), (c) => (c.status === "down" ? [`${name} is down (${c.error})`] : [])), {
      concurrency: "unbounded"
    }),
    (down) => down.flat()
  )
})

/** How often dependencies found down are asked again, for a claim waiting on them. */
const RECHECK_INTERVAL = Duration.seconds(1)

/**
 * Ends once the dependencies answer again, if some are down now; never if none is — the failure was not theirs
 * (a session the database ended itself), and the claim waits its whole pause.
 */
export const backAgain = (unreachable: Effect.Effect<ReadonlyArray<string>>): Effect.Effect<void> =>
  Effect.flatMap(unreachable, (down) =>
    down.length === 0
      ? Effect.never
      : Effect.asVoid(Effect.repeat(Effect.delay(unreachable, RECHECK_INTERVAL), { until: (still) => still.length === 0 })))
