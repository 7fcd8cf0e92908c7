import { SqlError } from "@effect/sql/SqlError"
import {
  type ClaimCheck,
  ClaimRejected,
  type DeadLetterReason,
  decodePayload,
  integerSetting,
  limitBytes,
  LoadError,
  type LoadOutcome,
  Maintenance,
  ObjectStore,
  PayloadConfig,
  type ReadingDays,
  type StorageError,
  TelemetryStore,
  withRemoteParent
} from "@telemetry/domain"
import { gunzip } from "@telemetry/infra/compression"
import * as ClaimAttempts from "@telemetry/infra/db/ClaimAttempts"
import * as DatabaseErrors from "@telemetry/infra/db/DatabaseErrors"
import * as RevokedClaims from "@telemetry/infra/db/RevokedClaims"
import { RawRetention } from "@telemetry/infra/db/SqlMaintenance"
import { Cause, Clock, Config, Data, Duration, Effect, Exit, Metric, Option, Ref, Schedule, Stream } from "effect"
import * as Dependencies from "./Dependencies.js"
import * as Metrics from "./metrics.js"

/** How hard a claim is tried before the worker gives up on it. */
export const RetryConfig = Config.all({
  /** Loads tried in all, the first included. */
  attempts: integerSetting("WORKER_RETRY_ATTEMPTS", 6, { min: 1 }),
  /** The longest pause between two tries; pauses double from half a second up to it. */
  maxDelay: Config.duration("WORKER_RETRY_MAX_DELAY").pipe(Config.withDefault(Duration.seconds(30))),
  /** Deliveries of a claim that may begin loading without ending; the next one is dead-lettered unloaded. */
  maxDeliveries: integerSetting("WORKER_MAX_DELIVERIES", 5, { min: 1 })
})

const FIRST_DELAY = Duration.millis(500)

// Counting a delivery's end must not hold up a stopping worker for long; a count left behind costs one delivery.
const SETTLE_TIMEOUT = Duration.seconds(5)

/**
 * How often a claim not yet handled says so. Storage or a database that hangs (connections open, nothing answered)
 * holds its load without an error to log, for as long as that lasts: the worker would otherwise say nothing at all.
 */
const SLOW_NOTICE = Duration.minutes(1)

/** `effect`, handling the claim `claimId`, with a warning each SLOW_NOTICE until it ends. */
const noticedWhileSlow = (claimId: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Clock.currentTimeMillis, (start) =>
    Effect.raceFirst(
      effect,
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.logWarning(
          `claim ${claimId}: not loaded yet after ${Duration.format(Duration.seconds(Math.round((now - start) / 1000)))}; ` +
            "its load is waiting for storage or the database (or is a large one)"
        )).pipe(Effect.delay(SLOW_NOTICE), Effect.forever)
    ))

/** Claims whose give-backs are kept for their next delivery, at most. */
const MAX_OWED = 10_000

/** The outcome of a claim whose request was refused after it was published (see RevokedClaims). */
const REVOKED = { _tag: "Revoked" } as const

/** The loader threw (or died) instead of failing with an error of its own. */
class LoaderDefect extends Data.TaggedError("LoaderDefect")<{ readonly defect: unknown }> {
  override get message() {
    return this.defect instanceof Error ? `${this.defect.name}: ${this.defect.message}` : String(this.defect)
  }
}

type Transient = StorageError | LoadError

/** Failures that may pass on a retry: storage faults, and database faults the database does not blame on the data. */
const isTransient = (e: { readonly _tag: string }): e is Transient =>
  e._tag === "StorageError" || (e instanceof LoadError && e.transient)

/** What went wrong, with the database's own words when it answered. */
const messageOf = (e: { readonly message: string }) => (e instanceof LoadError ? DatabaseErrors.explain(e) : e.message)

/**
 * This delivery's count in `claim_attempts`: its number (0 until it is counted), and whether it is to count against
 * the claim however it ends (`kept`) rather than be given back when it ends without an outcome.
 */
interface Count {
  readonly delivery: number
  readonly kept: boolean
}

/** How a delivery ended without an outcome, kept as its claim's last error. */
const describeEnd = (cause: Cause.Cause<unknown>) =>
  Cause.isInterruptedOnly(cause)
    ? "interrupted (the worker stopped)"
    : Option.match(Cause.failureOption(cause), {
      onNone: () => Cause.pretty(cause),
      onSome: (e) => (e instanceof Error ? messageOf(e) : String(e))
    })

/**
 * Streams a claim's payload back from storage, decodes it and loads it, exactly once, and decides what becomes of a
 * claim that does not load, so that none can hold up the claims behind it:
 * - a payload invalid, too large or gone, refused by the database for what it holds (a permanent SQLSTATE) or over
 *   its tenant's limits, fails at once with `ClaimRejected` (the queue keeps it as a dead letter);
 * - storage faults and transient database faults are retried with exponential backoff and jitter, a bounded number
 *   of times; then the claim is rejected if storage and database both answer — it is the claim, not them —, and
 *   otherwise fails with its last error: it stays unacknowledged and comes back later, so an outage does not empty
 *   the queue into the dead letters;
 * - a defect of the loader (an exception) is not retried: rejected too, unless a dependency is down;
 * - every delivery is counted in the database before it loads (ClaimAttempts) and the count given back when it
 *   ends here without an outcome, so what is left counts deliveries that took their process down (out of memory,
 *   a native crash): past `WORKER_MAX_DELIVERIES` of those the claim is rejected without loading;
 * - a load whose session was lost without the database's answer (no SQLSTATE: reset, "not queryable") while the
 *   database answers is what a failover's termination mid-COPY and a payload crashing the server look alike in: its
 *   delivery keeps its count and the claim stays queued, up to its `WORKER_MAX_DELIVERIES`th delivery, which
 *   rejects it.
 */
export const make = Effect.gen(function*() {
  const storage = yield* ObjectStore
  const store = yield* TelemetryStore
  const config = yield* PayloadConfig
  const maintenance = yield* Maintenance.Maintenance
  const unreachable = yield* Dependencies.make
  const retry = yield* RetryConfig
  const rawRetention = Duration.toMillis(yield* RawRetention)
  const backoff = Schedule.exponential(Duration.min(FIRST_DELAY, retry.maxDelay), 2).pipe(
    Schedule.jittered,
    Schedule.modifyDelay((delay) => Duration.min(delay, retry.maxDelay)),
    Schedule.intersect(Schedule.recurs(retry.attempts - 1))
  )

  const load = (claim: ClaimCheck) =>
    store.load(
      claim,
      storage.get(claim.claim_check).pipe(
        Stream.withSpan("ObjectStore.get"),
        gunzip,
        limitBytes(config.maxDecompressedBytes, "decompressed payload"),
        // Naive times in the zone ingest validated them in (claims of earlier versions carry none). Readings older
        // than the raw retention are left out: from the claim's receipt, so that every delivery leaves out the same.
        decodePayload({
          ...config,
          timeZone: claim.metadata.timeZone ?? config.timeZone,
          receivedAt: Date.parse(claim.timestamp),
          keepFrom: Date.parse(claim.timestamp) - rawRetention
        })
      )
    ).pipe(
      Effect.catchAllDefect((defect) =>
        Effect.fail(
          // @effect/sql dies when COMMIT or ROLLBACK fails (e.g. the connection was cut): a database failure, not
          // the loader's, judged by its SQLSTATE like any other.
          defect instanceof SqlError
            ? new LoadError({ claimId: claim.claim_id, message: defect.message, transient: DatabaseErrors.isTransient(defect), cause: defect })
            : new LoaderDefect({ defect })
        )
      )
    )

  // Deliveries ended here without an outcome whose give-back did not reach the database — mostly because it was
  // down, which is why they ended —, given back with the claim's next delivery here: an outage is not a crash.
  const owed = new Map<string, ClaimAttempts.Owed>()
  const owe = (claimId: string, lastError: string) =>
    Effect.sync(() => {
      // Claims that went to another worker leave theirs behind: bounded, the oldest dropped.
      if (owed.size >= MAX_OWED) owed.delete(owed.keys().next().value!)
      owed.set(claimId, { deliveries: (owed.get(claimId)?.deliveries ?? 0) + 1, lastError })
    })

  /** The delivery's count removed (it ended: loaded or rejected), given back or kept (it will come again). */
  const endDelivery = (claim: ClaimCheck, exit: Exit.Exit<unknown, unknown>, count: Count) => {
    const ended = Exit.isSuccess(exit) || Option.getOrUndefined(Cause.failureOption(exit.cause)) instanceof ClaimRejected
    const error = Exit.isFailure(exit) ? describeEnd(exit.cause) : ""
    const counts = count.kept ? "kept" : "given back"
    return Effect.interruptible(ended ? ClaimAttempts.settle(claim.claim_id) : ClaimAttempts.unfinished(claim.claim_id, error, counts)).pipe(
      Effect.timeoutFail({ duration: SETTLE_TIMEOUT, onTimeout: () => new Error(`no answer within ${Duration.format(SETTLE_TIMEOUT)}`) }),
      Effect.catchAll((e) =>
        ended
          ? Effect.logWarning(`claim ${claim.claim_id}: its delivery count was not removed: ${e.message}`)
          : count.kept
          // Its count stands as it is: only its error is not recorded.
          ? Effect.logWarning(`claim ${claim.claim_id}: its delivery's error was not recorded: ${e.message}`)
          : Effect.zipRight(
            owe(claim.claim_id, error),
            Effect.logWarning(`claim ${claim.claim_id}: its delivery count was not given back (${e.message}): it will be with its next delivery here`)
          )
      )
    )
  }

  const handle = (claim: ClaimCheck, count: Ref.Ref<Count>) =>
    Effect.gen(function*() {
      const tries = yield* Ref.make(0)
      const reject = (reason: DeadLetterReason, what: string) => (e: { readonly message: string }) =>
        Effect.flatMap(Ref.get(tries), (tried) =>
          Effect.zipRight(
            Effect.logError(`claim ${claim.claim_id}: ${what}, dead-lettered: ${messageOf(e)}`),
            new ClaimRejected({ reason, message: messageOf(e), attempts: tried })
          ))
      // The claim is to blame only if its dependencies answer, and the database did not end the session itself
      // (an operator's or a failover's termination, again and again), nor run out of disk space, nor lose the
      // session without an answer (`lost`: the load's own failure) before the claim's last delivery; else it fails
      // with `failure`, to come again.
      const unlessDown = (e: { readonly message: string }, failure: Transient, reason: DeadLetterReason, what: string, lost = false) =>
        Effect.flatMap(Effect.zip(unreachable, Ref.get(count)), ([down, { delivery }]): Effect.Effect<never, Transient | ClaimRejected> => {
          const endedByServer = DatabaseErrors.isEndedByServer(failure)
          // A lost session has no SQLSTATE, so it is never one the server ended itself.
          const kept = down.length === 0 && lost && delivery > 0 && delivery < retry.maxDeliveries
          const excuses = [
            ...down,
            ...(endedByServer ? ["the database ended the session itself"] : []),
            ...(DatabaseErrors.isDiskFull(failure) ? ["the database's disk is full"] : []),
            ...(kept
              ? [
                `the session was lost without the database's answer ` +
                `(delivery ${delivery} of WORKER_MAX_DELIVERIES, ${retry.maxDeliveries}, counted)`
              ]
              : [])
          ]
          if (excuses.length === 0) {
            // The dead letter says that its deliveries are spent, not only how its last try failed.
            const spent = lost && delivery >= retry.maxDeliveries
              ? ` (the session lost without an answer in delivery ${delivery} of WORKER_MAX_DELIVERIES, ${retry.maxDeliveries})`
              : ""
            return reject(reason, what)({ message: messageOf(e) + spent })
          }
          return Ref.update(count, (c) => ({ ...c, kept })).pipe(
            Effect.zipRight(
              Effect.logError(`claim ${claim.claim_id}: ${messageOf(e)}; ${excuses.join(", ")}: leaving the claim queued for later`)
            ),
            Effect.zipRight(Effect.fail(failure))
          )
        })

      // Counted once per delivery, in a statement of its own, committed before the first load begins; true when
      // the claim was revoked (its object may have outlived its request: storage was down when it was deleted).
      const countDelivery = Effect.gen(function*() {
        if ((yield* Ref.get(count)).delivery > 0) return false
        const delivery = yield* ClaimAttempts.begin(claim.claim_id, owed.get(claim.claim_id)).pipe(
          Effect.mapError((cause) =>
            new LoadError({
              claimId: claim.claim_id,
              message: `cannot count its delivery: ${cause.message}`,
              transient: DatabaseErrors.isTransient(cause),
              cause
            })
          )
        )
        yield* Ref.set(count, { delivery: delivery.attempts, kept: false })
        owed.delete(claim.claim_id)
        if (delivery.revoked) return true
        if (delivery.attempts > retry.maxDeliveries) {
          const message = `delivered ${delivery.attempts} times, ${delivery.attempts - 1} of them never ended or lost ` +
            `their session, more than WORKER_MAX_DELIVERIES (${retry.maxDeliveries}): loading it may take its worker down; ` +
            `last error: ${delivery.lastError ?? "none recorded"}`
          yield* Effect.logError(`claim ${claim.claim_id}: too many deliveries, dead-lettered unloaded: ${message}`)
          // Its attempts: the loads begun before, none in this delivery.
          return yield* new ClaimRejected({ reason: "too_many_attempts", message, attempts: delivery.attempts - 1 })
        }
        return false
      })

      const outcome = yield* Ref.update(tries, (n) => n + 1).pipe(
        Effect.zipRight(countDelivery),
        Effect.flatMap((revoked) =>
          revoked
            ? Effect.succeed<LoadOutcome | typeof REVOKED>(REVOKED)
            : load(claim).pipe(Metric.trackDurationWith(Metrics.loadDuration, Duration.toSeconds))
        ),
        Effect.tapError((e) =>
          isTransient(e)
            ? Effect.flatMap(Ref.get(tries), (tried) =>
              Effect.zipRight(
                tried < retry.attempts ? Metric.increment(Metrics.claimHandled("retried")) : Effect.void,
                Effect.logWarning(
                  `claim ${claim.claim_id}: ${messageOf(e)}; ${tried < retry.attempts ? "retrying" : "giving up"} (attempt ${tried} of ${retry.attempts})`
                )
              ))
            : Effect.void
        ),
        Effect.retry({ schedule: backoff, while: isTransient }),
        // A payload that cannot be loaded as it is will not load on a retry either; it stays in storage.
        Effect.catchTags({
          InvalidPayload: reject("invalid_payload", "invalid payload"),
          PayloadTooLarge: reject("payload_too_large", "payload too large"),
          // Unless its request was refused after the publish timed out: then there is nothing to load.
          ObjectNotFound: (e) =>
            Effect.flatMap(RevokedClaims.isRevoked(claim.claim_id).pipe(Effect.orElseSucceed(() => false)), (revoked) =>
              revoked ? Effect.succeed(REVOKED) : reject("object_not_found", "payload not found")(e)),
          StorageError: (e) => unlessDown(e, e, "retries_exhausted", "retries exhausted"),
          LoadError: (e) =>
            e.transient
              ? unlessDown(e, e, "retries_exhausted", "retries exhausted", DatabaseErrors.sqlStateOf(e) === undefined)
              // The database's refusal or a tenant's limit: the message says which.
              : reject("unloadable", "not loadable")(e),
          LoaderDefect: (e) =>
            Effect.zipRight(
              Effect.logError(`claim ${claim.claim_id}: the loader failed`, Cause.die(e.defect)),
              unlessDown(
                e,
                new LoadError({ claimId: claim.claim_id, message: e.message, transient: true, cause: e.defect }),
                "loader_defect",
                "loader defect"
              )
            )
        })
      )
      if (outcome._tag === "Revoked") return yield* Effect.logInfo(`claim ${claim.claim_id}: its request was refused, nothing to load`)
      // Readings older than the refresh policies' windows would stay out of the aggregates: their days are noted
      // for the maintenance's next late-data poll. The load is committed whatever happens here, so a failure is
      // only worth a warning. A loaded claim delivered again notes them too: its earlier delivery may have stopped
      // between its commit and its note.
      const noteLate = (days: ReadingDays, earliest?: number | null) =>
        days.length === 0 ? Effect.void : maintenance.noteLate(days, earliest).pipe(
          Effect.catchAll((e) => Effect.logWarning(`claim ${claim.claim_id}: late data not noted for refresh: ${e.message}`))
        )
      if (outcome._tag === "AlreadyLoaded") {
        yield* Metric.increment(Metrics.claimHandled("already_loaded"))
        yield* Effect.logInfo(`claim ${claim.claim_id}: already loaded, skipped`)
        return yield* noteLate(outcome.days)
      }
      yield* Metric.increment(Metrics.claimHandled("loaded"))
      yield* Metric.incrementBy(Metrics.readingsLoaded, outcome.readings - outcome.duplicates)
      yield* Metric.incrementBy(Metrics.readingsDuplicate, outcome.duplicates)
      yield* Metric.incrementBy(Metrics.readingsExpired, outcome.expired)
      yield* Metric.set(Metrics.lastLoadTimestamp, (yield* Clock.currentTimeMillis) / 1000)
      yield* Effect.logInfo(
        `claim ${claim.claim_id}: loaded ${outcome.readings - outcome.duplicates} readings of ${outcome.items} items` +
          (outcome.duplicates > 0 ? `; ${outcome.duplicates} were stored already` : "") +
          (outcome.expired > 0
            ? `; ${outcome.expired} were older than RAW_RETENTION (${Duration.format(Duration.millis(rawRetention))}) and were not stored`
            : "")
      )
      yield* noteLate(outcome.days, outcome.earliest)
    })

  return (claim: ClaimCheck) =>
    Effect.flatMap(Ref.make<Count>({ delivery: 0, kept: false }), (count) =>
      handle(claim, count).pipe(
        Effect.tapError((e) =>
          e instanceof ClaimRejected
            ? Effect.zipRight(Metric.increment(Metrics.claimHandled("dead_lettered")), Metric.increment(Metrics.deadLettered(e.reason)))
            : Metric.increment(Metrics.claimHandled("left_queued"))
        ),
        Effect.onExit((exit) => Effect.flatMap(Ref.get(count), (c) => (c.delivery > 0 ? endDelivery(claim, exit, c) : Effect.void)))
      )).pipe(
        noticedWhileSlow(claim.claim_id),
        // Every line about the claim, the loader's included, joins the request that brought it.
        Effect.annotateLogs({
          claim_id: claim.claim_id,
          tenant: claim.metadata.tenantId,
          request_id: claim.metadata.requestId,
          ...(claim.metadata.deviceId === null ? {} : { device: claim.metadata.deviceId })
        }),
        // A child of the ingest request's span, when the claim carries its trace.
        Effect.withSpan("ClaimProcessor.process", { attributes: { "claim.id": claim.claim_id } }),
        withRemoteParent(claim.metadata.traceparent)
      )
})
