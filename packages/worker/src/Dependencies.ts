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
