import { ClaimQueue, type DeadLetterReason, Maintenance, type PartitionLag, TelemetryStore } from "@telemetry/domain"
import * as Health from "@telemetry/infra/Health"
import { Clock, Config, Context, Duration, Effect, Either, Layer, Option, Scope, Stream } from "effect"
import * as StoredClaims from "@telemetry/worker/StoredClaims"
import * as Infrastructure from "../Infrastructure.js"
import { columns } from "./Cli.js"

// What `pnpm status` reports: each dependency as the services reach it (the same variables), the consumer lag,
// the dead letters by reason, the maintenance jobs and the aggregates' watermarks.

/** A dependency's state; `in_use`: the embedded deployment belongs to a running `pnpm start`, which reports it. */
export interface DependencyStatus {
  readonly name: "storage" | "queue" | "database"
  readonly status: "up" | "down" | "in_use"
  /** Of the check, once connected; null when it could not be made. */
  readonly latency_ms: number | null
  readonly error?: string
}

/**
 * The queue's backlog as a one-off check sees it: which partition made no progress for how long is counted by a
 * running process from its first check (ingest's and the worker's health), so not here, where it would always be 0.
 */
export interface QueueReport {
  readonly pending: number
  readonly partitions: ReadonlyArray<PartitionLag>
}

export interface DeadLettersReport {
  readonly since: Date
  readonly total: number
  readonly by_reason: Partial<Record<DeadLetterReason, number>>
  /** The claims they hold: fewer than `total` when a claim was dead-lettered again after a replay. */
  readonly claims: number
  /**
   * Of those claims, the ones loaded since they were dead-lettered (replayed once what failed them was mended):
   * settled. Null when the database could not be read.
   */
  readonly loaded_since: number | null
}

export interface JobReport {
  readonly job: string
  readonly last_run: Date | null
  readonly last_success: Date | null
  readonly last_outcome: "success" | "failure" | null
  readonly last_error: string | null
  readonly next_run: Date | null
}

export interface AggregateReport {
  readonly aggregate: string
  readonly watermark: Date | null
  readonly lag_seconds: number | null
}

export interface MaintenanceReport {
  readonly runner: Maintenance.Runner
  readonly jobs: ReadonlyArray<JobReport>
  readonly aggregates: ReadonlyArray<AggregateReport>
}

/** Null where the dependency it comes from is not up, or did not answer. */
export interface Report {
  readonly dependencies: ReadonlyArray<DependencyStatus>
  readonly queue: QueueReport | null
  readonly dead_letters: DeadLettersReport | null
  readonly maintenance: MaintenanceReport | null
  /** What could not be read although its dependency is up. */
  readonly problems: ReadonlyArray<string>
}

/** How long connecting to a dependency (and migrating the database) may take before it counts as down. */
const CONNECT_TIMEOUT = Duration.seconds(120)
/** How long each check and query may take. */
const CHECK_TIMEOUT = Duration.seconds(10)
/** For the listing of every stored payload. */
const SCAN_TIMEOUT = Duration.minutes(1)

/**
 * The effect's outcome, a failure or no answer within `duration` as the Left. Not answered, it is left behind
 * rather than waited for: a client's cleanup may hang (kafkajs's disconnect of a consumer still joining its group),
 * and the report would never come. The command exits once it is printed.
 */
const within = (duration: Duration.Duration) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.disconnect,
    Effect.timeoutFail({ duration, onTimeout: () => new Error(`no answer within ${Duration.format(duration)}`) }),
    Effect.either
  )

/** `effect` in a scope of its own, whose closing (the clients' disconnects) is waited for at most CHECK_TIMEOUT. */
const scopedWithin = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Scope.make(),
    (scope) => Scope.extend(effect, scope),
    (scope, exit) => Effect.ignore(within(CHECK_TIMEOUT)(Scope.close(scope, exit)))
  )

const messageOf = (error: unknown) => (error as { readonly message?: string })?.message ?? String(error)

const down = (name: DependencyStatus["name"], error: unknown): DependencyStatus => ({
  name,
  status: "down",
  latency_ms: null,
  error: messageOf(error)
})

const checked = (name: DependencyStatus["name"], check: Health.DependencyCheck): DependencyStatus => ({ name, ...check })

/** The embedded queue's or database's lock, held by a running `pnpm start` (DirectoryLock's words). */
const heldByServer = (error: unknown) => /is in use by process \d+/.test(messageOf(error))

/** The dead letters' report, without what the database tells, and the claims they hold. */
interface DeadLetterFacts {
  readonly report: DeadLettersReport
  readonly claims: ReadonlySet<string>
}

const queueFacts = (since: Date) =>
  Effect.gen(function*() {
    const queue = yield* ClaimQueue
    const check = checked("queue", yield* Health.timed(queue.check, CHECK_TIMEOUT))
    const backlog = yield* within(CHECK_TIMEOUT)(queue.backlog)
    const deadLetters = yield* within(CHECK_TIMEOUT)(
      Stream.runFold(
        queue.deadLetters({ from: since }),
        { counts: {} as Partial<Record<DeadLetterReason, number>>, claims: new Set<string>() },
        ({ claims, counts }, letter) => ({
          counts: { ...counts, [letter.reason]: (counts[letter.reason] ?? 0) + 1 },
          // A message that was not a claim check has none: it can never be loaded.
          claims: letter.claim === null ? claims : claims.add(letter.claim.claim_id)
        })
      )
    )
    return {
      check,
      queue: Either.map(backlog, (b): QueueReport => ({
        pending: b.pending,
        partitions: b.partitions
      })),
      deadLetters: Either.map(deadLetters, ({ claims, counts }): DeadLetterFacts => ({
        report: {
          since,
          total: Object.values(counts).reduce((a, b) => a + b, 0),
          by_reason: counts,
          claims: claims.size,
          loaded_since: null
        },
        claims
      }))
    }
  })

const storageFacts = Effect.flatMap(Health.storageReachable, (check) =>
  Effect.map(Health.timed(check, CHECK_TIMEOUT), (c) => checked("storage", c)))

const maintenanceReport = (status: Maintenance.MaintenanceStatus, now: number): MaintenanceReport => ({
  runner: status.runner,
  jobs: status.jobs.map((j) => ({
    job: j.job,
    last_run: j.lastRun,
    last_success: j.lastSuccess,
    last_outcome: j.lastOutcome,
    last_error: j.lastError,
    next_run: j.nextRun
  })),
  aggregates: status.aggregates.map(({ aggregate, watermark }) => ({
    aggregate,
    watermark,
    lag_seconds: watermark === null ? null : Math.round((now - watermark.getTime()) / 1000)
  }))
})

/** The database's facts, and which of `claims` (dead-lettered) the ledger holds as loaded. */
const databaseFacts = (claims: ReadonlySet<string>) =>
  Effect.gen(function*() {
    const check = checked("database", yield* Health.timed(yield* Health.databaseReachable, CHECK_TIMEOUT))
    const status = yield* within(CHECK_TIMEOUT)(Effect.flatMap(Maintenance.Maintenance, (m) => m.status))
    const loaded = yield* within(CHECK_TIMEOUT)(
      claims.size === 0 ? Effect.succeed(new Set<string>()) : Effect.flatMap(TelemetryStore, (store) => store.loadedClaims([...claims]))
    )
    const now = yield* Clock.currentTimeMillis
    return { check, maintenance: Either.map(status, (s) => maintenanceReport(s, now)), loaded }
  })

/** Builds `layer` for the scope; its failure, or no answer in time, as the Left. */
const connect = <A, E, R>(layer: Layer.Layer<A, E, R>) => within(CONNECT_TIMEOUT)(Layer.build(layer))

const problem = (what: string, result: Either.Either<unknown, unknown>) =>
  Either.isLeft(result) ? [`${what}: ${messageOf(result.left)}`] : []

/** Gathers the report, with the dead letters kept since `since` ago. */
export const gather = (since: Duration.Duration) =>
  scopedWithin(Effect.gen(function*() {
    const from = new Date((yield* Clock.currentTimeMillis) - Duration.toMillis(since))
    const problems: Array<string> = []

    // The queue first, as `pnpm replay` does: the in-process one takes its lock before the embedded database is
    // opened, and while a server holds that lock, neither is touched.
    const queueContext = yield* connect(Infrastructure.claimQueueWithoutRecovery)
    const embeddedTaken = Either.isLeft(queueContext) && heldByServer(queueContext.left)
    let queue: DependencyStatus
    let queueReport: QueueReport | null = null
    let deadLetters: DeadLetterFacts | null = null
    if (Either.isRight(queueContext)) {
      const facts = yield* Effect.provide(queueFacts(from), queueContext.right)
      queue = facts.check
      if (queue.status === "up") {
        queueReport = Either.getOrNull(facts.queue)
        deadLetters = Either.getOrNull(facts.deadLetters)
        problems.push(...problem("consumer lag", facts.queue), ...problem("dead letters", facts.deadLetters))
      }
    } else {
      queue = embeddedTaken
        ? { name: "queue", status: "in_use", latency_ms: null, error: messageOf(queueContext.left) }
        : down("queue", queueContext.left)
    }

    const storageContext = yield* connect(Infrastructure.objectStore)
    const storage = Either.isRight(storageContext)
      ? yield* Effect.provide(storageFacts, storageContext.right)
      : down("storage", storageContext.left)

    let database: DependencyStatus
    let maintenance: MaintenanceReport | null = null
    const external = Option.isSome(yield* Config.option(Config.string("DATABASE_URL")))
    const kafka = Option.isSome(yield* Config.option(Config.string("KAFKA_BROKERS")))
    if (embeddedTaken && !external) {
      database = {
        name: "database",
        status: "in_use",
        latency_ms: null,
        error: "the embedded database belongs to the process holding the embedded queue; ask its /api/v1/health/detailed"
      }
    } else {
      const databaseContext = yield* connect(Infrastructure.telemetryStore)
      if (Either.isRight(databaseContext)) {
        const facts = yield* Effect.provide(databaseFacts(deadLetters?.claims ?? new Set()), databaseContext.right)
        database = facts.check
        if (database.status === "up") {
          maintenance = Either.getOrNull(facts.maintenance)
          if (deadLetters !== null && Either.isRight(facts.loaded)) {
            deadLetters = { ...deadLetters, report: { ...deadLetters.report, loaded_since: facts.loaded.right.size } }
          }
          problems.push(...problem("maintenance", facts.maintenance), ...problem("dead letters loaded since", facts.loaded))
          // The in-process queue, held here, lives in its server's memory: what it held when that stopped is the
          // stored payloads not loaded, which the server's next start queues again.
          if (queueReport !== null && Either.isRight(queueContext) && Either.isRight(storageContext) && !kafka) {
            const lost = yield* within(SCAN_TIMEOUT)(Stream.runCount(StoredClaims.lost)).pipe(
              Effect.provide(Context.merge(queueContext.right, Context.merge(storageContext.right, databaseContext.right)))
            )
            if (Either.isRight(lost)) {
              const more = lost.right
              // Its one partition, "embedded".
              queueReport = {
                pending: queueReport.pending + more,
                partitions: queueReport.partitions.map((p) => ({ ...p, lag: p.lag + more }))
              }
            }
            problems.push(...problem("stored payloads not loaded", lost))
          }
        }
      } else {
        // Held by a server whose queue lies elsewhere (EMBEDDED_QUEUE_DIR set apart).
        database = heldByServer(databaseContext.left)
          ? { name: "database", status: "in_use", latency_ms: null, error: messageOf(databaseContext.left) }
          : down("database", databaseContext.left)
      }
    }

    return {
      dependencies: [storage, queue, database],
      queue: queueReport,
      dead_letters: deadLetters?.report ?? null,
      maintenance,
      problems
    } satisfies Report
  }))

// The human form.

const time = (date: Date | null) => (date === null ? "-" : date.toISOString().replace(/\.\d{3}Z$/, "Z"))

export const render = (report: Report): string => {
  const sections = [
    columns([
      ["DEPENDENCY", "STATUS", "LATENCY", "ERROR"],
      ...report.dependencies.map((d) => [
        d.name,
        d.status,
        d.latency_ms === null ? "-" : `${d.latency_ms} ms`,
        d.error ?? ""
      ])
    ])
  ]
  if (report.queue !== null) {
    const { partitions, pending } = report.queue
    sections.push(
      `Consumer lag: ${pending} claim(s) pending` +
        (pending > 0 ? " (which partition made no progress for how long: GET /api/v1/health/detailed of a running process)" : ""),
      ...(partitions.length > 0
        ? [columns([["TOPIC", "PARTITION", "LAG"], ...partitions.map((p) => [p.topic, String(p.partition), String(p.lag)])])]
        : [])
    )
  }
  if (report.dead_letters !== null) {
    const { by_reason, claims, loaded_since, since, total } = report.dead_letters
    sections.push(
      `Dead letters since ${time(since)}: ${total}` +
        (total > 0 ? ` of ${claims} claim(s)` : "") +
        (total > 0 && loaded_since !== null ? `, of which ${loaded_since} loaded since (replayed: settled)` : "") +
        (total > 0
          ? "\n" + columns([["REASON", "COUNT"], ...Object.entries(by_reason).map(([reason, n]) => [reason, String(n)])])
          : "")
    )
  }
  if (report.maintenance !== null) {
    const { aggregates, jobs, runner } = report.maintenance
    sections.push(
      `Maintenance jobs (run by ${runner}):\n` + columns([
        ["JOB", "LAST RUN", "OUTCOME", "LAST SUCCESS", "NEXT RUN", "ERROR"],
        ...jobs.map((j) => [
          j.job,
          time(j.last_run),
          j.last_outcome ?? "-",
          time(j.last_success),
          time(j.next_run),
          j.last_error ?? ""
        ])
      ]),
      "Aggregates:\n" + columns([
        ["AGGREGATE", "WATERMARK", "BEHIND"],
        ...aggregates.map((a) => [
          a.aggregate,
          time(a.watermark),
          a.lag_seconds === null ? "-" : Duration.format(Duration.seconds(a.lag_seconds))
        ])
      ])
    )
  }
  if (report.problems.length > 0) sections.push(`Not read:\n${report.problems.map((p) => `  ${p}`).join("\n")}`)
  return sections.join("\n\n")
}
