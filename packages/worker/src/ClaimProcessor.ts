import {
  type ClaimCheck,
  decodePayload,
  gunzip,
  limitBytes,
  Maintenance,
  ObjectStore,
  PayloadConfig,
  TelemetryStore
} from "@telemetry/domain"
import { Duration, Effect, Schedule } from "effect"

// Storage or database trouble passes; keep retrying so a claim waits for them rather than getting lost.
const transientRetry = Schedule.exponential(Duration.millis(200), 2).pipe(
  Schedule.jittered,
  Schedule.union(Schedule.spaced(Duration.seconds(30)))
)

const isTransient = (e: { readonly _tag: string }) => e._tag === "StorageError" || e._tag === "LoadError"

/** Streams a claim's payload back from storage, decodes it and loads it, exactly once. */
export const make = Effect.gen(function*() {
  const storage = yield* ObjectStore
  const store = yield* TelemetryStore
  const config = yield* PayloadConfig
  const maintenance = yield* Maintenance.Maintenance

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
    load(claim).pipe(
      Effect.tapError((e) =>
        isTransient(e) ? Effect.logWarning(`claim ${claim.claim_id}: ${e.message}; retrying`) : Effect.void
      ),
      Effect.retry({ schedule: transientRetry, while: isTransient }),
      Effect.tap((outcome) =>
        outcome._tag === "Loaded"
          ? Effect.logInfo(`claim ${claim.claim_id}: loaded ${outcome.readings} readings of ${outcome.items} items`)
          : Effect.logInfo(`claim ${claim.claim_id}: already loaded, skipped`)
      ),
      // Readings older than the refresh policies' windows would stay out of the aggregates; the load is
      // committed whatever happens here, so a failure is only worth a warning.
      Effect.tap((outcome) =>
        outcome._tag === "Loaded" && outcome.timeRange !== null
          ? maintenance.refreshLate(outcome.timeRange).pipe(
            Effect.catchAll((e) => Effect.logWarning(`claim ${claim.claim_id}: late-data refresh failed: ${e.message}`))
          )
          : Effect.void
      ),
      // A payload that cannot be loaded as it is will not load on a retry either; it stays in storage.
      Effect.catchTags({
        InvalidPayload: (e) => Effect.logError(`claim ${claim.claim_id}: invalid payload, not loaded: ${e.message}`),
        PayloadTooLarge: (e) => Effect.logError(`claim ${claim.claim_id}: payload too large, not loaded: ${e.message}`),
        ObjectNotFound: (e) => Effect.logError(`claim ${claim.claim_id}: ${e.message}, not loaded`)
      }),
      Effect.asVoid,
      Effect.annotateLogs({ claim: claim.claim_id })
    )
})
