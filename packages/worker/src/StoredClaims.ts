import {
  type ClaimCheck,
  claimFor,
  OBJECT_PREFIX,
  ObjectStore,
  type StoredObject,
  TelemetryStore
} from "@telemetry/domain"
import { Chunk, Effect, Either, Stream } from "effect"

/**
 * The claims of the payloads stored under `prefix` (default: all of them) that `keep` selects. Objects whose
 * metadata makes no claim (not ours, or damaged) are left out.
 */
export const stored = (options: { readonly prefix?: string; readonly keep?: (object: StoredObject) => boolean } = {}) =>
  Stream.unwrap(Effect.map(ObjectStore, (storage) =>
    storage.list(options.prefix ?? OBJECT_PREFIX).pipe(
      Stream.filter((object) => options.keep?.(object) ?? true),
      Stream.filterMap((object) => Either.getRight(Either.try(() => claimFor(object, storage))))
    )))

/** The claims the ledger does not hold yet (not loaded), looked up a few hundred at a time. */
export const unloaded = <E, R>(claims: Stream.Stream<ClaimCheck, E, R>) =>
  Stream.unwrap(Effect.map(TelemetryStore, (store) =>
    claims.pipe(
      Stream.grouped(500),
      Stream.mapEffect((group) =>
        Effect.map(
          store.loadedClaims(Chunk.toReadonlyArray(Chunk.map(group, (c) => c.claim_id))),
          (loaded) => Chunk.filter(group, (c) => !loaded.has(c.claim_id))
        )
      ),
      Stream.flattenChunks
    )))
