import {
  type ClaimCheck,
  claimFor,
  ClaimQueue,
  factsOf,
  OBJECT_PREFIX,
  ObjectStore,
  type StoredObject,
  TelemetryStore
} from "@telemetry/domain"
import * as RevokedClaims from "@telemetry/infra/db/RevokedClaims"
import { Chunk, Effect, Either, identity, Option, Stream } from "effect"

/**
 * The claims of the payloads stored under `prefix` (default: all of them) that `keep` selects. An object whose
 * metadata makes no claim (not ours, damaged, without a tenant) is left aside with an error in the log: it is never
 * loaded into a tenant it does not name.
 */
export const stored = (options: { readonly prefix?: string; readonly keep?: (object: StoredObject) => boolean } = {}) =>
  Stream.unwrap(Effect.map(ObjectStore, (storage) =>
    storage.list(options.prefix ?? OBJECT_PREFIX).pipe(
      Stream.filter((object) => options.keep?.(object) ?? true),
      Stream.mapEffect((object): Effect.Effect<Option.Option<ClaimCheck>> =>
        Either.match(factsOf(object), {
          onLeft: (e) => Effect.as(Effect.logError(`stored object ${e.key} makes no claim, left aside: ${e.message}`), Option.none()),
          onRight: (facts) => Effect.succeed(Option.some(claimFor(facts, object, storage)))
        })
      ),
      Stream.filterMap(identity)
    )))

/**
 * The claims still to load, looked up a few hundred at a time: not in the ledger, and not revoked (a refused
 * request's object that storage kept while it was down).
 */
export const unloaded = <E, R>(claims: Stream.Stream<ClaimCheck, E, R>) =>
  Stream.unwrap(Effect.map(TelemetryStore, (store) =>
    claims.pipe(
      Stream.grouped(500),
      Stream.mapEffect((group) => {
        const ids = Chunk.toReadonlyArray(Chunk.map(group, (c) => c.claim_id))
        return Effect.map(
          Effect.all([store.loadedClaims(ids), RevokedClaims.among(ids)]),
          ([loaded, revoked]) => Chunk.filter(group, (c) => !loaded.has(c.claim_id) && !revoked.has(c.claim_id))
        )
      }),
      Stream.flattenChunks
    )))

/**
 * The claims an in-process queue lost with its process (it lives in memory): stored payloads neither loaded nor
 * dead-lettered (those wait for `pnpm replay`).
 */
export const lost = Stream.unwrap(Effect.gen(function*() {
  const queue = yield* ClaimQueue
  const deadLettered = new Set(
    yield* queue.deadLetters({}).pipe(
      Stream.filterMap((letter) => Option.fromNullable(letter.claim?.claim_id)),
      Stream.runCollect
    )
  )
  return stored().pipe(Stream.filter((claim) => !deadLettered.has(claim.claim_id)), unloaded)
}))
