import { Context, type Effect, Schema } from "effect"
import type { ReadingDays } from "./TelemetryStore.js"

/**
 * The scheduled jobs of the database: refreshing the aggregates, raw retention, compression (migrations 0002–0004
 * define them). Who runs them depends on the server:
 * - `timescaledb`: TimescaleDB with its background workers runs its policies itself;
 * - `embedded`: TimescaleDB without background workers (PGlite): we run its policies with `CALL run_job`;
 * - `own`: no continuous aggregates (plain PostgreSQL, Apache-licensed TimescaleDB): we run the jobs of
 *   `telemetry_jobs`, each job by one worker at a time.
 */
export type Runner = "timescaledb" | "embedded" | "own"

export class JobError extends Schema.TaggedError<JobError>()("JobError", {
  job: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/** What is known of one job's runs. Names are the same on every runner, e.g. `refresh telemetry_hourly`. */
export interface JobStatus {
  readonly job: string
  /** When its last run started; null when it never ran (as far as its runner keeps track). */
  readonly lastRun: Date | null
  readonly lastSuccess: Date | null
  readonly lastOutcome: "success" | "failure" | null
  /** Why its last run failed. */
  readonly lastError: string | null
  /** When it is next due; null when unknown. */
  readonly nextRun: Date | null
  /** Runs counted by TimescaleDB's scheduler since the database was created (runner `timescaledb` only). */
  readonly totals: { readonly successes: number; readonly failures: number } | null
}

/** How far a continuous aggregate is materialized: buckets before the watermark are stored, later ones computed. */
export interface AggregateStatus {
  readonly aggregate: string
  /** Null while nothing is materialized. */
  readonly watermark: Date | null
}

export interface MaintenanceStatus {
  readonly runner: Runner
  readonly jobs: ReadonlyArray<JobStatus>
  readonly aggregates: ReadonlyArray<AggregateStatus>
}

export interface MaintenanceShape {
  readonly runner: Runner
  /** Runs the jobs whose time has come (none with `timescaledb`); answers the jobs run. Failures are logged. */
  readonly runDue: Effect.Effect<ReadonlyArray<string>>
  /**
   * Runs every job now, whatever its schedule and runner, and refreshes the noted late days; answers the jobs run.
   * For tests and tools.
   */
  readonly runAll: Effect.Effect<ReadonlyArray<string>, JobError>
  /**
   * The jobs' last runs and the aggregates' watermarks. With the `embedded` runner TimescaleDB records no runs:
   * those of this process are reported, kept in memory.
   */
  readonly status: Effect.Effect<MaintenanceStatus, JobError>
  /**
   * Refreshes the materialized buckets of these days (UTC), up to the end of the refresh policies' windows, each day
   * in a statement of its own: late data shows in the aggregates once this ran. Buckets older than the raw
   * retention are left alone, since their raw rows may be gone.
   */
  readonly refreshLate: (days: ReadingDays) => Effect.Effect<void, JobError>
  /**
   * Notes these days for `refreshNoted`: a load's late readings, whose refresh then neither holds the claim's
   * partition nor runs once per claim of the same days. `earliest`, the time of the load's earliest reading when
   * known (else null or absent): no bucket before its own holds any of them (fresh readings of today note nothing).
   */
  readonly noteLate: (days: ReadingDays, earliest?: number | null) => Effect.Effect<void, JobError>
  /** `refreshLate` of the noted days that no other worker is refreshing; answers the days refreshed. */
  readonly refreshNoted: Effect.Effect<ReadonlyArray<number>, JobError>
}

export class Maintenance extends Context.Tag("@telemetry/Maintenance")<Maintenance, MaintenanceShape>() {}

