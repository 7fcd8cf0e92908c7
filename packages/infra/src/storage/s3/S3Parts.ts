import type { StorageError, StoredObject } from "@telemetry/domain"
import { Chunk, Effect, identity, Option, Queue, Stream } from "effect"
import * as Minio from "minio"
import { randomUUID } from "node:crypto"
import * as S3Metadata from "./S3Metadata.js"
import * as S3Staging from "./S3Staging.js"

export interface PartPool {
  readonly take: Effect.Effect<Buffer>
  readonly release: (part: Buffer) => Effect.Effect<void>
}

/** The first buffer of an upload starts this small and grows: most payloads are far smaller than a part. */
const FIRST_BUFFER = 64 * 1024

/**
 * Part buffers for one upload, allocated on demand up to `count`, then reused: the upload's memory stays within
 * `count × size` however late the garbage collector runs (V8 lets tens of MB of dead buffers pile up).
 */
export const makePool = (size: number, count: number): Effect.Effect<PartPool> =>
  Effect.map(Queue.bounded<Buffer>(count), (free) => {
    let allocated = 0
    const allocate = () => Buffer.allocUnsafe(allocated++ === 0 ? Math.min(size, FIRST_BUFFER) : size)
    return {
      take: Effect.flatMap(
        Queue.poll(free),
        Option.match({
          onSome: Effect.succeed,
          onNone: () => allocated < count ? Effect.sync(allocate) : Queue.take(free)
        })
      ),
      release: (part) => Queue.offer(free, part)
    }
  })

/**
 * Cuts a byte stream into parts of exactly `size` bytes, copied into buffers of `pool`, the last part shorter
 * (none for an empty stream). Input chunks are first sliced at part boundaries, so each full part is emitted
 * before the next buffer is taken: waiting for a free buffer never holds finished parts back.
 */
export const toParts = <E, R>(
  body: Stream.Stream<Uint8Array, E, R>,
  pool: PartPool,
  size: number
): Stream.Stream<Buffer, E, R> =>
  Stream.suspend(() => {
    let position = 0
    const slice = (chunk: Uint8Array): Array<Uint8Array> => {
      const pieces: Array<Uint8Array> = []
      for (let offset = 0; offset < chunk.length;) {
        const n = Math.min(size - position, chunk.length - offset)
        pieces.push(chunk.subarray(offset, offset + n))
        offset += n
        position = (position + n) % size
      }
      return pieces
    }
    let part: Buffer | undefined
    let filled = 0
    const fill = (piece: Uint8Array) =>
      Effect.gen(function*() {
        let target = part ??= yield* pool.take
        if (target.length < filled + piece.length) {
          const grown = Buffer.allocUnsafe(Math.min(size, Math.max(2 * target.length, filled + piece.length)))
          target.copy(grown, 0, 0, filled)
          target = part = grown
        }
        target.set(piece, filled)
        filled += piece.length
        if (filled < size) return Option.none()
        part = undefined
        filled = 0
        return Option.some(target)
      })
    return Stream.concat(
      body.pipe(Stream.mapConcat(slice), Stream.mapEffect(fill), Stream.filterMap(identity)),
      Stream.suspend(() => part === undefined ? Stream.empty : Stream.make(part.subarray(0, filled)))
    )
  })

/**
 * Pulls up to `n` elements off `stream` (fewer only if it ends), and returns them with the stream of all its
 * elements, those included. (`Stream.peel` turns a failure of the rest into a defect.)
 */
export const peek = <A, E, R>(stream: Stream.Stream<A, E, R>, n: number) =>
  Effect.gen(function*() {
    const pull = yield* Stream.toPull(stream)
    let head = Chunk.empty<A>()
    while (head.length < n) {
      const next = yield* pull.pipe(
        Effect.map(Option.some),
        Effect.catchAll(Option.match({ onNone: () => Effect.succeedNone, onSome: Effect.fail }))
      )
      if (Option.isNone(next)) return [head, Stream.fromChunk(head)] as const
      head = Chunk.appendAll(head, next.value)
    }
    return [head, Stream.concat(Stream.fromChunk(head), Stream.repeatEffectChunkOption(pull))] as const
  })

type Request = <A>(
  operation: StorageError["operation"],
  key: string,
  run: () => Promise<A>
) => Effect.Effect<A, StorageError>

/** What a multipart upload needs of the store: its client and how it sends requests. */
export interface Uploads {
  readonly client: Minio.Client
  readonly bucket: string
  /** Parts uploaded at once. */
  readonly concurrency: number
  /** A request tried once. */
  readonly call: Request
  /** A request tried again after transient failures. */
  readonly send: Request
  /** The request that makes `key` visible, never left racing on its own (the store's `commit`). */
  readonly commit: (key: string, run: () => Promise<unknown>) => Effect.Effect<void, StorageError>
}

/**
 * Larger payloads are uploaded in parts, but their metadata is known only once `finalize` ran, after the last
 * part, while S3 takes metadata only when an upload starts or in a copy. So the parts go to a staging key, and
 * once finalized the completed upload is copied server-side to its key with the metadata (directive REPLACE),
 * then the staging object is deleted. The key appears in one step, whole and with its metadata, as with a
 * single PUT; completing under the key and then copying it onto itself would show it without metadata for a
 * moment, and for good after a crash. S3 copies up to 5 GiB in one request.
 */
export const putInParts = ({ bucket, call, client, commit, concurrency, send }: Uploads) =>
<E, R, E2, R2>(
  key: string,
  parts: Stream.Stream<Buffer, E, R>,
  pool: PartPool,
  finalize: Effect.Effect<Record<string, string>, E2, R2>
) =>
  Effect.gen(function*() {
    const staging = `${S3Staging.STAGING}${randomUUID()}`
    const uploadId = yield* Effect.acquireRelease(
      send("put", key, () => client.initiateNewMultipartUpload(bucket, staging, {})),
      // Best effort: s3rver does not implement AbortMultipartUpload.
      (uploadId, exit) =>
        exit._tag === "Success"
          ? Effect.void
          : call("put", key, () => client.abortMultipartUpload(bucket, staging, uploadId)).pipe(Effect.ignore)
    )
    const uploaded = yield* parts.pipe(
      Stream.zipWithIndex,
      Stream.mapEffect(([data, index]) =>
        // The part stays in its buffer until its request is over, so a failed attempt can be sent again.
        send("put", key, () =>
          client.uploadPart(
            { bucketName: bucket, objectName: staging, uploadID: uploadId, partNumber: index + 1, headers: {} },
            data
          )).pipe(
            // Only a part whose request is over may be refilled.
            Effect.zipLeft(pool.release(data)),
            Effect.map(({ etag }) => ({ part: index + 1, etag, size: data.length }))
          ), { concurrency }),
      Stream.runCollect
    )
    const metadata = yield* finalize
    const headers = yield* S3Metadata.toHeaders(key, metadata)
    const etags = Chunk.toReadonlyArray(uploaded).map(({ etag, part }) => ({ part, etag }))
    // Registered before completing: a completion that landed although its answer was lost leaves nothing behind.
    yield* Effect.addFinalizer(() =>
      call("delete", key, () => client.removeObject(bucket, staging)).pipe(Effect.ignore)
    )
    yield* send("put", key, () => client.completeMultipartUpload(bucket, staging, uploadId, etags))
    yield* commit(key, () =>
      client.copyObject(
        new Minio.CopySourceOptions({ Bucket: bucket, Object: staging }),
        new Minio.CopyDestinationOptions({
          Bucket: bucket,
          Object: key,
          MetadataDirective: "REPLACE",
          UserMetadata: headers
        })
      ))
    const size = Chunk.reduce(uploaded, 0, (total, part) => total + part.size)
    return { key, size, metadata } satisfies StoredObject
  }).pipe(Effect.scoped)
