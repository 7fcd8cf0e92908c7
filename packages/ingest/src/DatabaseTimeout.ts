import { Config, Duration } from "effect"

/**
 * How long an upload waits for the database — its idempotency records, its device account's zone — before it goes
 * on without the records, or answers 503 for want of the zone: a database that hangs, rather than refusing
 * connections, would otherwise hold every upload past its client's timeout.
 */
export const DatabaseTimeout = Config.duration("INGEST_DATABASE_TIMEOUT").pipe(Config.withDefault(Duration.seconds(5)))
