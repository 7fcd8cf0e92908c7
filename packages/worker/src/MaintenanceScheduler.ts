import { Maintenance } from "@telemetry/domain"
import * as DbMetrics from "@telemetry/infra/db/DbMetrics"
import { Duration, Effect, Layer, Schedule } from "effect"

/** How often due jobs are looked for; the shortest schedule is 30 minutes. */
const POLL = Duration.minutes(1)

/**
 * Runs due jobs for the lifetime of the layer: at start, then every minute; and samples the jobs' status and the
 * aggregates' watermarks into the metrics. For the worker.
 */
export const layer = Layer.merge(
  Layer.scopedDiscard(
    Effect.flatMap(Maintenance.Maintenance, (maintenance) =>
      Effect.forkScoped(
        Effect.gen(function*() {
          yield* Effect.logInfo(`maintenance: jobs run by ${maintenance.runner}`)
          yield* Effect.repeat(
            Effect.tap(maintenance.runDue, (ran) =>
              ran.length > 0 ? Effect.logInfo(`maintenance: ran ${ran.join(", ")}`) : Effect.void),
            Schedule.spaced(POLL)
          )
        })
      ))
  ),
  DbMetrics.layer
)
