import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Maintenance, type ReadingDays } from "@telemetry/domain"
import { Clock, Config, Duration, Effect, Either, Layer, Metric, Ref } from "effect"
import * as DatabaseErrors from "./DatabaseErrors.js"
import * as DbMetrics from "./DbMetrics.js"

const DAY_MS = 86_400_000

/** The refresh of late data, named as a job is (its metric label, its warnings). */
const LATE_JOB = "refresh late data"
/** How long a worker holds a noted day after its last refresh statement began: a bound on one statement's time. */
const LATE_LEASE_SECONDS = 600

/** Shortest raw retention: the daily policy re-aggregates the last 7 days from raw rows. */
const MIN_RETENTION = Duration.days(7)

/** `RAW_RETENTION` (default 30 days): how long raw readings are kept; at least 7 days. */
export const RawRetention = Config.duration("RAW_RETENTION").pipe(
  // Validated before the default is applied: after it, the message loses the variable's name.
  Config.validate({
    message: "must be at least 7 days (the daily refresh window)",
    validation: (d) => Duration.greaterThanOrEqualTo(d, MIN_RETENTION)
  }),
  Config.withDefault(Duration.days(30))
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
  /** End offset of its refresh policy: newer buckets are aggregated from raw rows at query time. */
  readonly policy_end_ms: number
  /** How often its refresh policy runs. */
  readonly policy_schedule_ms: number
}

export interface MaintenanceOptions {
  readonly rawRetention: Duration.Duration
  /** How long after a load noted late readings inside the policies' windows their days are refreshed (5 minutes). */
  readonly lateRefreshDelay?: Duration.Duration | undefined
}

const LATE_REFRESH_DELAY = Duration.minutes(5)

/**
 * `LATE_REFRESH_DELAY` (default 5 minutes): late readings inside the refresh policies' windows show in the
 * aggregates this long after their load (not at the policy's next run); a day is refreshed at most once in it.
 */
export const LateRefreshDelay = Config.duration("LATE_REFRESH_DELAY").pipe(Config.withDefault(LATE_REFRESH_DELAY))

export const make = (options: MaintenanceOptions) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const retentionSeconds = Duration.toSeconds(options.rawRetention)
    const lateDelaySeconds = Duration.toSeconds(options.lateRefreshDelay ?? LATE_REFRESH_DELAY)

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

    // TimescaleDB's policies named as our own jobs are, so that a job has the same name (and metric label) on every
    // runner.
    const timescaleJobName = sql`CASE j.proc_name
        WHEN 'policy_refresh_continuous_aggregate' THEN 'refresh ' || j.hypertable_name
        WHEN 'policy_retention' THEN 'retention ' || j.hypertable_name
        WHEN 'policy_compression' THEN 'compression ' || j.hypertable_name
        ELSE j.application_name END`

    const jobs: Effect.Effect<ReadonlyArray<Job>, SqlError> = timescale
      ? Effect.map(
        sql<{ job_id: number; job_name: string; schedule_ms: number }>`SELECT j.job_id, ${timescaleJobName} AS job_name,
            extract(epoch FROM j.schedule_interval)::float8 * 1000 AS schedule_ms
          FROM timescaledb_information.jobs j WHERE j.scheduled ORDER BY j.job_id`,
        (rows) =>
          rows.map((r) => ({
            name: r.job_name,
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

    const failed = (job: string) => (cause: SqlError) => new Maintenance.JobError({ job, message: DatabaseErrors.explain(cause), cause })

    // The runs of this process: counted in the metrics, and kept as the status of jobs that TimescaleDB runs
    // without recording them (embedded).
    const ranHere = yield* Ref.make(new Map<string, Maintenance.JobStatus>())
    const record = (job: string, started: number, result: Either.Either<unknown, SqlError>) =>
      Effect.zipRight(
        Metric.increment(DbMetrics.jobRuns(job, Either.isRight(result) ? "success" : "failure")),
        Ref.update(ranHere, (m) => {
          const previous = m.get(job)
          return new Map(m).set(job, {
            job,
            lastRun: new Date(started),
            lastSuccess: Either.isRight(result) ? new Date(started) : previous?.lastSuccess ?? null,
            lastOutcome: Either.isRight(result) ? "success" : "failure",
            lastError: Either.isLeft(result) ? DatabaseErrors.explain(result.left) : null,
            nextRun: null,
            totals: null
          })
        })
      )
    /** Runs `run` as `job`, recorded. */
    const recorded = <A>(job: string, run: Effect.Effect<A, SqlError>) =>
      Effect.flatMap(Clock.currentTimeMillis, (started) =>
        Effect.flatMap(Effect.either(run), (result) => Effect.zipRight(record(job, started, result), result)))

    const runJobs = Effect.flatMap(Effect.mapError(jobs, failed("list jobs")), (all) =>
      Effect.forEach(all, (job) => Effect.as(Effect.mapError(recorded(job.name, job.run), failed(job.name)), job.name)))

    // Embedded: TimescaleDB does not keep next_start without its scheduler, so we do, in memory. Every job is due
    // at start: it catches up on what was missed while the process was down.
    const nextRuns = yield* Ref.make(new Map<string, number>())
    const dueEmbedded = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const next = yield* Ref.get(nextRuns)
      const ran: Array<string> = []
      for (const job of (yield* jobs).filter((job) => (next.get(job.name) ?? now) <= now)) {
        const result = yield* Effect.either(recorded(job.name, job.run))
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
          if (mine !== undefined) yield* recorded(job_name, sql`SELECT run_telemetry_job(${job_name})`)
          return mine !== undefined
        })))
        if (Either.isRight(result)) {
          if (result.right) ran.push(job_name)
        } else {
          yield* logFailure(job_name, result.left)
          // Retried after its schedule interval, as TimescaleDB's default retry period.
          yield* sql`UPDATE telemetry_jobs SET next_start = now() + schedule_interval, last_error = ${DatabaseErrors.explain(result.left)}
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
        extract(epoch FROM (j.config ->> 'start_offset')::interval)::float8 * 1000 AS policy_start_ms,
        extract(epoch FROM (j.config ->> 'end_offset')::interval)::float8 * 1000 AS policy_end_ms,
        extract(epoch FROM j.schedule_interval)::float8 * 1000 AS policy_schedule_ms
      FROM telemetry_aggregates a JOIN ${policies}`

    const jobStatus: Effect.Effect<ReadonlyArray<Maintenance.JobStatus>, SqlError> = runner === "own"
      // A run, failed or not, schedules the next one a schedule interval after it started.
      ? Effect.map(
        sql<OwnJobRow>`SELECT job_name AS job, last_finish AS last_success, last_error, next_start,
            CASE WHEN last_finish IS NOT NULL OR last_error IS NOT NULL THEN next_start - schedule_interval END AS last_run
          FROM telemetry_jobs ORDER BY job_name`,
        (rows) =>
          rows.map((r) => ({
            job: r.job,
            lastRun: r.last_run,
            lastSuccess: r.last_success,
            lastOutcome: r.last_error !== null ? "failure" : r.last_success !== null ? "success" : null,
            lastError: r.last_error,
            nextRun: r.next_start,
            totals: null
          }))
      )
      : runner === "embedded"
      ? Effect.gen(function*() {
        const [ran, next] = [yield* Ref.get(ranHere), yield* Ref.get(nextRuns)]
        return (yield* jobs).map(({ name }): Maintenance.JobStatus => ({
          ...(ran.get(name) ??
            { job: name, lastRun: null, lastSuccess: null, lastOutcome: null, lastError: null, nextRun: null, totals: null }),
          nextRun: next.has(name) ? new Date(next.get(name)!) : null
        }))
      })
      : Effect.map(
        sql<TimescaleJobRow>`SELECT ${timescaleJobName} AS job, s.last_run_started_at AS last_run,
            s.last_successful_finish AS last_success, s.last_run_status, s.next_start,
            s.total_successes, s.total_failures, e.err_message AS last_error
          FROM timescaledb_information.jobs j
          LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
          LEFT JOIN LATERAL (SELECT err_message FROM timescaledb_information.job_errors
            WHERE job_id = j.job_id ORDER BY start_time DESC LIMIT 1) e ON s.last_run_status = 'Failed'
          WHERE j.scheduled ORDER BY j.job_id`,
        (rows) =>
          rows.map((r) => ({
            job: r.job,
            lastRun: r.last_run,
            lastSuccess: r.last_success,
            lastOutcome: r.last_run_status === "Success" ? "success" : r.last_run_status === "Failed" ? "failure" : null,
            lastError: r.last_run_status === "Failed" ? r.last_error ?? "failed" : null,
            nextRun: r.next_start,
            totals: r.total_successes === null
              ? { successes: 0, failures: 0 }
              : { successes: Number(r.total_successes), failures: Number(r.total_failures ?? 0) }
          }))
      )

    // TimescaleDB's watermark is the end of the newest materialized bucket; before any, the lowest time it knows.
    const watermarks: Effect.Effect<ReadonlyArray<Maintenance.AggregateStatus>, SqlError> = sql<
      Maintenance.AggregateStatus
    >`SELECT a.view_name AS aggregate, ${
      timescale
        ? sql`(SELECT CASE WHEN w.at >= TIMESTAMPTZ 'epoch' THEN w.at END AS watermark FROM (SELECT _timescaledb_functions.to_timestamp(
            _timescaledb_functions.cagg_watermark(c.mat_hypertable_id)) AS at) w)
            FROM telemetry_aggregates a JOIN _timescaledb_catalog.continuous_agg c ON c.user_view_name = a.view_name`
        : sql`a.watermark FROM telemetry_aggregates a`
    } ORDER BY a.view_name`

    const refresh = (view: string, start: Date, end: Date) =>
      timescale
        // A statement of its own: refresh_continuous_aggregate cannot run inside a transaction.
        ? sql`CALL refresh_continuous_aggregate(${view}, ${start}::timestamptz, ${end}::timestamptz)`
        : sql`SELECT refresh_telemetry_aggregate(${view}, ${start}, ${end})`

    const floorTo = (a: Aggregate, t: number) => Math.floor(t / a.width_ms) * a.width_ms
    // Whole buckets of `a` (UTC-aligned, like the epoch and days) in `day` before `until`: none older than the
    // retention, none before the bucket of `from` (the earliest reading, when known).
    const bucketsOf = (a: Aggregate, day: number, now: number, from: number, until: number) => ({
      start: Math.max(day * DAY_MS, floorTo(a, now - retentionSeconds * 1000) + a.width_ms, floorTo(a, from)),
      end: Math.min((day + 1) * DAY_MS, until)
    })
    // Day by day, and only the days holding readings: a refresh recomputes every tenant's buckets in its range,
    // and on the embedded database holds the one session (and the event loop) while it runs. Up to the end of the
    // policy's window: newer buckets are aggregated from raw rows at query time.
    const rangesOf = (days: ReadingDays, now: number, from = -Infinity) =>
      aggregates.flatMap((a) =>
        days.flatMap((day) => {
          const { end, start } = bucketsOf(a, day, now, from, floorTo(a, now - a.policy_end_ms))
          return start < end ? [{ view: a.view_name, start: new Date(start), end: new Date(end) }] : []
        })
      )
    // Whether `day` holds buckets no policy run will refresh again: older than a policy's window, or in the bucket
    // its window starts in, which a run leaves out (it refreshes whole buckets only) — so a bucket the window still
    // reaches now may be behind the window of the policy's next run, even one interval late.
    const beyondPolicies = (day: number, now: number, from: number) =>
      aggregates.some((a) => {
        const reached = floorTo(a, now - a.policy_start_ms + 2 * a.policy_schedule_ms) + a.width_ms
        const { end, start } = bucketsOf(a, day, now, from, reached)
        return start < end
      })
    const refreshDays = (days: ReadingDays, beforeEach: Effect.Effect<unknown, SqlError> = Effect.void) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.forEach(rangesOf(days, now), (r) => Effect.zipRight(beforeEach, refresh(r.view, r.start, r.end)), {
          discard: true
        }))
    const refreshLate = (days: ReadingDays) => Effect.mapError(refreshDays(days), failed(LATE_JOB))

    // Only the days with materialized buckets to refresh from the earliest reading on: most loads hold none
    // (readings newer than the policies' windows' ends, aggregated at query time). Those beyond the policies are
    // due at once; the others after LATE_REFRESH_DELAY, however often noted meanwhile.
    const noteLate = (days: ReadingDays, earliest?: number | null) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const from = earliest ?? -Infinity
        const late = days.filter((day) => rangesOf([day], now, from).length > 0)
        const urgent = late.filter((day) => beyondPolicies(day, now, from))
        return late.length === 0 ? Effect.void : sql`INSERT INTO telemetry_late_days (day, due)
          SELECT DISTINCT d, CASE WHEN d = ANY(${urgent}::int[]) THEN now()
            ELSE now() + make_interval(secs => ${lateDelaySeconds}) END
          FROM unnest(${late}::int[]) AS d
          ON CONFLICT (day) DO UPDATE SET version = telemetry_late_days.version + 1,
            due = least(telemetry_late_days.due, excluded.due)`.pipe(
          Effect.asVoid,
          Effect.mapError(failed("note late data"))
        )
      })

    // The noted days not being refreshed by another worker (SKIP LOCKED, and the lease), each refreshed and then
    // forgotten unless noted again meanwhile. The lease is renewed before each refresh statement, so one running
    // long is not taken again, and the days of a worker that died are taken again LATE_LEASE_SECONDS after its last
    // statement. Answers the days refreshed.
    const refreshNoted = Effect.gen(function*() {
      const taken = yield* sql<{ day: number; version: number }>`UPDATE telemetry_late_days SET taken = now()
        WHERE day IN (SELECT day FROM telemetry_late_days
          WHERE due <= now() AND (taken IS NULL OR taken < now() - make_interval(secs => ${LATE_LEASE_SECONDS}))
          FOR UPDATE SKIP LOCKED)
        RETURNING day, version`
      const days = taken.map((t) => t.day).sort((a, b) => a - b)
      if (days.length === 0) return days
      const renew = sql`UPDATE telemetry_late_days SET taken = now() WHERE day = ANY(${days}::int[])`
      // The days left (failed, or noted again meanwhile) are free for the next poll.
      const release = sql`UPDATE telemetry_late_days SET taken = NULL WHERE day = ANY(${days}::int[])`
      yield* recorded(LATE_JOB, refreshDays(days, renew)).pipe(Effect.tapError(() => Effect.ignore(release)))
      for (const { day, version } of taken) {
        yield* sql`DELETE FROM telemetry_late_days WHERE day = ${day} AND version = ${version}`
      }
      yield* release
      return days
    }).pipe(Effect.mapError(failed(LATE_JOB)))

    const runAll = Effect.zipWith(runJobs, refreshNoted, (ran, days) => days.length > 0 ? [...ran, LATE_JOB] : ran)

    return Maintenance.Maintenance.of({
      runner,
      runDue,
      runAll,
      refreshLate,
      noteLate,
      refreshNoted,
      status: Effect.all({ jobs: jobStatus, aggregates: watermarks }).pipe(
        Effect.map(({ aggregates, jobs }) => ({ runner, jobs, aggregates })),
        Effect.mapError(failed("status"))
      )
    })
  })

interface OwnJobRow {
  readonly job: string
  readonly last_run: Date | null
  readonly last_success: Date | null
  readonly last_error: string | null
  readonly next_start: Date
}

interface TimescaleJobRow {
  readonly job: string
  readonly last_run: Date | null
  readonly last_success: Date | null
  readonly last_run_status: string | null
  readonly next_start: Date | null
  readonly total_successes: number | null
  readonly total_failures: number | null
  readonly last_error: string | null
}

const logFailure = (job: string, cause: SqlError) =>
  Effect.logWarning(`maintenance: job "${job}" failed: ${DatabaseErrors.explain(cause)}`)

/** The service, with `RAW_RETENTION` applied to the retention job and `LATE_REFRESH_DELAY` to late readings. */
export const layer = Layer.effect(
  Maintenance.Maintenance,
  Effect.flatMap(Config.all({ rawRetention: RawRetention, lateRefreshDelay: LateRefreshDelay }), make)
)
