import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Maintenance } from "@telemetry/domain"
import { Clock, Config, Duration, Effect, Either, Layer, Ref } from "effect"

/** Shortest raw retention: the daily policy re-aggregates the last 7 days from raw rows. */
const MIN_RETENTION = Duration.days(7)

/** `RAW_RETENTION` (default 30 days): how long raw readings are kept; at least 7 days. */
export const RawRetention = Config.duration("RAW_RETENTION").pipe(
  Config.withDefault(Duration.days(30)),
  Config.validate({
    message: "RAW_RETENTION must be at least 7 days (the daily refresh window)",
    validation: (d) => Duration.greaterThanOrEqualTo(d, MIN_RETENTION)
  })
)

interface Job {
  readonly name: string
  readonly schedule: Duration.Duration
  readonly run: Effect.Effect<void, SqlError>
}

interface Aggregate {
  readonly view_name: string
  readonly width_ms: number
  /** Start offset of its refresh policy: older buckets are refreshed only by refreshLate. */
  readonly policy_start_ms: number
}

export interface MaintenanceOptions {
  readonly rawRetention: Duration.Duration
}

export const make = (options: MaintenanceOptions) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const retentionSeconds = Duration.toSeconds(options.rawRetention)

    const [server] = yield* sql<{ edition: string; background_workers: boolean }>`SELECT
      telemetry_timescaledb_edition() AS edition,
      coalesce(current_setting('timescaledb.max_background_workers', true)::int, 0) > 0 AS background_workers`
    const runner: Maintenance.Runner = server!.edition !== "timescale"
      ? "own"
      : server!.background_workers
      ? "timescaledb"
      : "embedded"
    const timescale = runner !== "own"

    // RAW_RETENTION applies to the retention job whoever runs it; the migration created it with 30 days.
    const drop = sql`justify_hours(make_interval(secs => ${retentionSeconds}))`
    if (timescale) {
      yield* sql`SELECT alter_job(job_id, config => jsonb_set(config, '{drop_after}', to_jsonb(${drop}::text)))
        FROM timescaledb_information.jobs
        WHERE proc_name = 'policy_retention' AND hypertable_name = 'telemetry_data'
          AND (config ->> 'drop_after')::interval <> ${drop}`
    } else {
      yield* sql`UPDATE telemetry_jobs SET config = jsonb_set(config, '{drop_after}', to_jsonb(${drop}::text))
        WHERE proc_name = 'telemetry_retention_policy' AND (config ->> 'drop_after')::interval <> ${drop}`
    }

    const jobs: Effect.Effect<ReadonlyArray<Job>, SqlError> = timescale
      ? Effect.map(
        sql<{ job_id: number; application_name: string; schedule_ms: number }>`SELECT job_id, application_name,
            extract(epoch FROM schedule_interval)::float8 * 1000 AS schedule_ms
          FROM timescaledb_information.jobs WHERE scheduled ORDER BY job_id`,
        (rows) =>
          rows.map((r) => ({
            name: r.application_name,
            schedule: Duration.millis(r.schedule_ms),
            // A statement of its own: run_job cannot run inside a transaction.
            run: Effect.asVoid(sql`CALL run_job(${r.job_id})`)
          }))
      )
      : Effect.map(
        sql<{ job_name: string; schedule_ms: number }>`SELECT job_name,
            extract(epoch FROM schedule_interval)::float8 * 1000 AS schedule_ms
          FROM telemetry_jobs ORDER BY job_name`,
        (rows) =>
          rows.map((r) => ({
            name: r.job_name,
            schedule: Duration.millis(r.schedule_ms),
            run: sql.withTransaction(Effect.gen(function*() {
              // The row lock keeps other workers off this job until it committed.
              const [mine] = yield* sql`SELECT 1 FROM telemetry_jobs WHERE job_name = ${r.job_name} FOR UPDATE`
              if (mine !== undefined) yield* sql`SELECT run_telemetry_job(${r.job_name})`
            }))
          }))
      )

    const failed = (job: string) => (cause: SqlError) => new Maintenance.JobError({ job, message: cause.message, cause })

    const runAll = Effect.flatMap(Effect.mapError(jobs, failed("list jobs")), (all) =>
      Effect.forEach(all, (job) => Effect.as(Effect.mapError(job.run, failed(job.name)), job.name)))

    // Embedded: TimescaleDB does not keep next_start without its scheduler, so we do, in memory. Every job is due
    // at start: it catches up on what was missed while the process was down.
    const nextRuns = yield* Ref.make(new Map<string, number>())
    const dueEmbedded = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const next = yield* Ref.get(nextRuns)
      const ran: Array<string> = []
      for (const job of (yield* jobs).filter((job) => (next.get(job.name) ?? now) <= now)) {
        const result = yield* Effect.either(job.run)
        const end = yield* Clock.currentTimeMillis
        // Failed or not, the next attempt is a schedule interval away (TimescaleDB's default retry period).
        yield* Ref.update(nextRuns, (m) => new Map(m).set(job.name, end + Duration.toMillis(job.schedule)))
        if (Either.isRight(result)) ran.push(job.name)
        else yield* logFailure(job.name, result.left)
      }
      return ran
    })

    // Own jobs: the schedule lives in telemetry_jobs, shared by all workers. SKIP LOCKED: a job another worker is
    // running is not waited for; next_start is checked again under the lock, so it does not run twice.
    const dueOwn = Effect.gen(function*() {
      const due = yield* sql<{ job_name: string }>`SELECT job_name FROM telemetry_jobs WHERE next_start <= now()
        ORDER BY next_start`
      const ran: Array<string> = []
      for (const { job_name } of due) {
        const result = yield* Effect.either(sql.withTransaction(Effect.gen(function*() {
          const [mine] = yield* sql`SELECT 1 FROM telemetry_jobs WHERE job_name = ${job_name} AND next_start <= now()
            FOR UPDATE SKIP LOCKED`
          if (mine !== undefined) yield* sql`SELECT run_telemetry_job(${job_name})`
          return mine !== undefined
        })))
        if (Either.isRight(result)) {
          if (result.right) ran.push(job_name)
        } else {
          yield* logFailure(job_name, result.left)
          // Retried after its schedule interval, as TimescaleDB's default retry period.
          yield* sql`UPDATE telemetry_jobs SET next_start = now() + schedule_interval, last_error = ${result.left.message}
            WHERE job_name = ${job_name}`.pipe(Effect.ignore)
        }
      }
      return ran
    })

    const runDue: Effect.Effect<ReadonlyArray<string>> = runner === "timescaledb"
      ? Effect.succeed([])
      : (runner === "embedded" ? dueEmbedded : dueOwn).pipe(
        Effect.catchAll((cause) => Effect.as(Effect.logWarning(`maintenance: cannot list jobs: ${cause.message}`), []))
      )

    // The aggregates and their policies' windows, fixed by the migrations; the policies are TimescaleDB's jobs
    // or ours.
    const policies = timescale
      ? sql`timescaledb_information.jobs j
            ON j.hypertable_name = a.view_name AND j.proc_name = 'policy_refresh_continuous_aggregate'`
      : sql`telemetry_jobs j ON j.config ->> 'view_name' = a.view_name AND j.proc_name = 'telemetry_refresh_policy'`
    const aggregates = yield* sql<Aggregate>`SELECT a.view_name, extract(epoch FROM a.width)::float8 * 1000 AS width_ms,
        extract(epoch FROM (j.config ->> 'start_offset')::interval)::float8 * 1000 AS policy_start_ms
      FROM telemetry_aggregates a JOIN ${policies}`

    const refresh = (view: string, start: Date, end: Date) =>
      timescale
        // A statement of its own: refresh_continuous_aggregate cannot run inside a transaction.
        ? sql`CALL refresh_continuous_aggregate(${view}, ${start}::timestamptz, ${end}::timestamptz)`
        : sql`SELECT refresh_telemetry_aggregate(${view}, ${start}, ${end})`

    const refreshLate = ({ earliest, latest }: { readonly earliest: number; readonly latest: number }) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        for (const a of aggregates) {
          // Whole buckets (UTC-aligned, like the epoch): those holding the readings, none older than the retention,
          // none after the one the policy's window starts in (the policy covers the rest).
          const floor = (t: number) => Math.floor(t / a.width_ms) * a.width_ms
          const start = Math.max(floor(earliest), floor(now - retentionSeconds * 1000) + a.width_ms)
          const end = Math.min(floor(latest), floor(now - a.policy_start_ms)) + a.width_ms
          if (start < end) yield* refresh(a.view_name, new Date(start), new Date(end))
        }
      }).pipe(Effect.mapError(failed("refresh late data")))

    return Maintenance.Maintenance.of({ runner, runDue, runAll, refreshLate })
  })

const logFailure = (job: string, cause: SqlError) =>
  Effect.logWarning(`maintenance: job "${job}" failed: ${cause.message}`)

/** The service, with `RAW_RETENTION` applied to the retention job. */
export const layer = Layer.effect(Maintenance.Maintenance, Effect.flatMap(RawRetention, (rawRetention) => make({ rawRetention })))
