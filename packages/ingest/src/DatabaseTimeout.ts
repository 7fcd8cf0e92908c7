import { Config, Duration, Effect } from "effect"

/**
 * How long an upload waits for the database — its idempotency records, its device account's zone — before it goes
 * on without the records, or answers 503 for want of the zone: a database that hangs, rather than refusing
 * connections, would otherwise hold every upload past its client's timeout.
 */
const DatabaseTimeout = Config.duration("INGEST_DATABASE_TIMEOUT").pipe(Config.withDefault(Duration.seconds(5)))

/** Bounds a database call by INGEST_DATABASE_TIMEOUT, failing with the caller's error, told what happened. */
export const databaseDeadline = Effect.map(
  DatabaseTimeout,
  (timeout) => <E2>(onTimeout: (message: string) => E2) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.timeoutFail(effect, {
      duration: timeout,
      onTimeout: () => onTimeout(`no answer within ${Duration.format(timeout)} (INGEST_DATABASE_TIMEOUT)`)
    })
)
