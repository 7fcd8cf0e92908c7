import {
  type ClaimCheck,
  ClaimRejected,
  type DeadLetterReason,
  decodePayload,
  gunzip,
  limitBytes,
  type LoadError,
  Maintenance,
  ObjectStore,
  PayloadConfig,
  RevokedClaims,
  type StorageError,
  TelemetryStore
} from "@telemetry/domain"
import { Config, Duration, Effect, Ref, Schedule } from "effect"
import * as Dependencies from "./Dependencies.js"

/** How hard a claim is tried before the worker gives up on it. */
export const RetryConfig = Config.all({
  /** Loads tried in all, the first included. */
  attempts: Config.integer("WORKER_RETRY_ATTEMPTS").pipe(
    Config.withDefault(6),
    Config.validate({ message: "WORKER_RETRY_ATTEMPTS must be at least 1", validation: (n) => n >= 1 })
  ),
  /** The longest pause between two tries; pauses double from half a second up to it. */
  maxDelay: Config.duration("WORKER_RETRY_MAX_DELAY").pipe(Config.withDefault(Duration.seconds(30)))
})

const FIRST_DELAY = Duration.millis(500)

/** The outcome of a claim whose request was refused after it was published (see RevokedClaims). */
const REVOKED = { _tag: "Revoked" } as const

type Transient = StorageError | LoadError

const isTransient = (e: { readonly _tag: string }): e is Transient => e._tag === "StorageError" || e._tag === "LoadError"

/**
 * Streams a claim's payload back from storage, decodes it and loads it, exactly once. Storage and database faults
 * are retried with exponential backoff and jitter, a bounded number of times. A claim that cannot load fails with
 * `ClaimRejected` (the queue keeps it as a dead letter): at once when its payload is invalid, too large or gone,
 * and when the retries are spent while storage and database both answer — it is the claim, not them. When one of
 * them is down, the claim fails with its last error instead: it stays unacknowledged and comes back later, so an
 * outage does not empty the queue into the dead letters.
 */
export const make = Effect.gen(function*() {
  const storage = yield* ObjectStore
  const store = yield* TelemetryStore
  const config = yield* PayloadConfig
  const maintenance = yield* Maintenance.Maintenance
  const unreachable = yield* Dependencies.make
  const retry = yield* RetryConfig
  const backoff = Schedule.exponential(Duration.min(FIRST_DELAY, retry.maxDelay), 2).pipe(
    Schedule.jittered,
    Schedule.modifyDelay((delay) => Duration.min(delay, retry.maxDelay)),
    Schedule.intersect(Schedule.recurs(retry.attempts - 1))
  )

  const load = (claim: ClaimCheck) =>
    store.load(
      claim,
      storage.get(claim.claim_check).pipe(
        gunzip,
        limitBytes(config.maxDecompressedBytes, "decompressed payload"),
        decodePayload({ ...config, receivedAt: Date.parse(claim.timestamp) })
      )
    )

  return (claim: ClaimCheck) =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const reject = (reason: DeadLetterReason, what: string) => (e: { readonly message: string }) =>
        Effect.flatMap(Ref.get(attempts), (tried) =>
          Effect.zipRight(
            Effect.logError(`claim ${claim.claim_id}: ${what}, dead-lettered: ${e.message}`),
            new ClaimRejected({ reason, message: e.message, attempts: tried })
          ))
      // The retries are spent: the claim is to blame only if its dependencies answer.
      const exhausted = (e: Transient) =>
        Effect.flatMap(unreachable, (down): Effect.Effect<never, Transient | ClaimRejected> =>
          down.length > 0
            ? Effect.zipRight(
              Effect.logError(`claim ${claim.claim_id}: ${e.message}; ${down.join(", ")}: leaving the claim queued for later`),
              Effect.fail(e)
            )
            : reject("retries_exhausted", "retries exhausted")(e))

      const outcome = yield* Ref.update(attempts, (n) => n + 1).pipe(
        Effect.zipRight(load(claim)),
        Effect.tapError((e) =>
          isTransient(e)
            ? Effect.flatMap(Ref.get(attempts), (tried) =>
              Effect.logWarning(
                `claim ${claim.claim_id}: ${e.message}; ${tried < retry.attempts ? "retrying" : "giving up"} (attempt ${tried} of ${retry.attempts})`
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
          StorageError: exhausted,
          LoadError: exhausted
        })
      )
      if (outcome._tag === "Revoked") return yield* Effect.logInfo(`claim ${claim.claim_id}: its request was refused, nothing to load`)
      if (outcome._tag === "AlreadyLoaded") return yield* Effect.logInfo(`claim ${claim.claim_id}: already loaded, skipped`)
      yield* Effect.logInfo(`claim ${claim.claim_id}: loaded ${outcome.readings} readings of ${outcome.items} items`)
      // Readings older than the refresh policies' windows would stay out of the aggregates; the load is
      // committed whatever happens here, so a failure is only worth a warning.
      if (outcome.timeRange !== null) {
        yield* maintenance.refreshLate(outcome.timeRange).pipe(
          Effect.catchAll((e) => Effect.logWarning(`claim ${claim.claim_id}: late-data refresh failed: ${e.message}`))
        )
      }
    }).pipe(Effect.annotateLogs({ claim: claim.claim_id }))
})
