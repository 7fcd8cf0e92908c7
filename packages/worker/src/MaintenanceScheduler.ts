import { Maintenance } from "@telemetry/domain"
import * as DbMetrics from "@telemetry/infra/db/DbMetrics"
import { Duration, Effect, Layer, Ref, Schedule } from "effect"

/** How often due jobs are looked for; the shortest schedule is 30 minutes. */
const POLL = Duration.minutes(1)

/**
 * How often the days noted by loads of late readings are looked for: late data shows in the aggregates this long
 * after its load, and the claims of a poll's interval (or of one refresh's time) share one refresh of their days.
 */
const LATE_POLL = Duration.seconds(5)

/**
 * Refreshes the late days noted by loads, every LATE_POLL. While that fails (the database away) it warns once, then
 * at debug level, and says when it works again: a poll every few seconds would warn a dozen times a minute.
 */
export const pollLate = (maintenance: Maintenance.MaintenanceShape) =>
  Effect.flatMap(Ref.make(0), (failures) =>
    Effect.repeat(
      maintenance.refreshNoted.pipe(
        Effect.tap((days) =>
          days.length > 0 ? Effect.logInfo(`maintenance: refreshed late data of ${days.length} day(s)`) : Effect.void
        ),
        Effect.zipLeft(Effect.flatMap(Ref.getAndSet(failures, 0), (failed) =>
          failed > 0 ? Effect.logInfo(`maintenance: late data refreshed again, after ${failed} failed poll(s)`) : Effect.void)),
        Effect.catchAll((e) =>
          Effect.flatMap(Ref.getAndUpdate(failures, (n) => n + 1), (failed) =>
            failed === 0
              ? Effect.logWarning(
                `maintenance: late data not refreshed: ${e.message}; its days stay noted and are tried again every ` +
                  `${Duration.format(LATE_POLL)} (failures logged at debug level until it works again)`
              )
              : Effect.logDebug(`maintenance: late data not refreshed: ${e.message}`))
        )
      ),
      Schedule.spaced(LATE_POLL)
    ))

/**
 * Runs due jobs for the lifetime of the layer: at start, then every minute; refreshes the late days noted by loads
 * every few seconds; and samples the jobs' status and the aggregates' watermarks into the metrics. For the worker.
 */
export const layer = Layer.merge(
  Layer.scopedDiscard(
    Effect.flatMap(Maintenance.Maintenance, (maintenance) =>
      Effect.gen(function*() {
        yield* Effect.forkScoped(Effect.gen(function*() {
          yield* Effect.logInfo(`maintenance: jobs run by ${maintenance.runner}`)
          yield* Effect.repeat(
            Effect.tap(maintenance.runDue, (ran) =>
              ran.length > 0 ? Effect.logInfo(`maintenance: ran ${ran.join(", ")}`) : Effect.void),
            Schedule.spaced(POLL)
          )
        }))
        yield* Effect.forkScoped(pollLate(maintenance))
      })
    )
  ),
  DbMetrics.layer
)
