import { Config, Context, type Effect, type Stream } from "effect"
import type { ObjectNotFound, StorageError } from "../errors.js"

export interface StoredObject {
  readonly key: string
  /** Stored bytes. */
  readonly size: number
  readonly metadata: Readonly<Record<string, string>>
}

export interface ObjectStoreShape {
  /** Where objects live, as written in claim checks: `filesystem`, `memory`, `s3`. */
  readonly storageType: string
  readonly bucket: string
  /**
   * Streams `body` into a pending object, then runs `finalize`, which may fail, and only then commits the object
   * with the metadata it returned. On any failure or interruption nothing is committed — an object either exists
   * whole, with its metadata, or not at all —, but for a `StorageError` of operation `commit`: the request that
   * commits was sent and failed without an answer, so the object may exist; the caller is to delete it.
   */
  readonly put: <E, R, E2, R2>(
    key: string,
    body: Stream.Stream<Uint8Array, E, R>,
    finalize: Effect.Effect<Record<string, string>, E2, R2>
  ) => Effect.Effect<StoredObject, StorageError | E | E2, R | R2>
  readonly get: (key: string) => Stream.Stream<Uint8Array, StorageError | ObjectNotFound>
  readonly head: (key: string) => Effect.Effect<StoredObject, StorageError | ObjectNotFound>
  readonly delete: (key: string) => Effect.Effect<void, StorageError>
  /** Committed objects whose key starts with `prefix`. */
  readonly list: (prefix: string) => Stream.Stream<StoredObject, StorageError>
  /**
   * Succeeds when storage answers now: one request (S3: a second at once after a reset), not logged, so that a health
   * check says at once why storage is down (a refused connection) instead of running out of time in the retries,
   * warning at each.
   */
  readonly check: Effect.Effect<void, StorageError>
}

export class ObjectStore extends Context.Tag("@telemetry/ObjectStore")<ObjectStore, ObjectStoreShape>() {}

/** `STORAGE_BUCKET` (default `telemetry-raw`, contract §2): the bucket payloads are kept in, whatever the store. */
export const BucketConfig = Config.string("STORAGE_BUCKET").pipe(Config.withDefault("telemetry-raw"))
