import { NodeStream } from "@effect/platform-node"
import { BucketConfig, ObjectNotFound, ObjectStore, StorageError, type StoredObject } from "@telemetry/domain"
import { Chunk, Config, Duration, Effect, identity, Layer, Option, Queue, Redacted, Schedule, Stream } from "effect"
import * as Minio from "minio"
import { randomUUID } from "node:crypto"
import type { Readable } from "node:stream"
import * as S3Staging from "./S3Staging.js"
import * as S3Transport from "./S3Transport.js"

const MiB = 1024 * 1024

export interface S3Options {
  /** e.g. `http://localhost:9000`; `https:` turns TLS on. */
  readonly endpoint: string
  readonly accessKey: string
  readonly secretKey: Redacted.Redacted
  readonly bucket: string
  readonly region?: string
  /** Bytes per multipart part (5 MiB to 5 GiB, S3's limits); payloads up to this size go in one PUT. */
  readonly partSize?: number
  /** Parts uploaded at once; an upload holds about `partSize × (concurrency + 1)` bytes. */
  readonly concurrency?: number
  /**
   * How long a request may make no progress — connecting, sending, waiting for an answer, or a read of an object's
   * body waiting for bytes — before it is abandoned (and retried). Default 30 seconds.
   */
  readonly requestTimeout?: Duration.DurationInput
  /** Further attempts of a request that failed transiently (network, timeout, 5xx, throttling). Default 4. */
  readonly retries?: number
  /** The wait before the first retry, doubled for each next one, with jitter. Default 250 ms. */
  readonly retryDelay?: Duration.DurationInput
  /**
   * Multipart uploads are staged (S3Staging): staging objects and incomplete uploads older than this were abandoned
   * by a process that died, and are removed. Default 24 hours.
   */
  readonly stagingMaxAge?: Duration.DurationInput
}

/** HEADs in flight while listing: S3 listings carry no user metadata. */
const LIST_CONCURRENCY = 8

type Operation = StorageError["operation"]

const explain = (cause: unknown): string => {
  if (!(cause instanceof Error)) return String(cause)
  const code = (cause as { code?: unknown }).code
  // Connection failures to a name with several addresses come as an AggregateError with an empty message.
  return [typeof code === "string" ? code : undefined, cause.message].filter(Boolean).join(": ") || cause.name
}

const storageError = (operation: Operation, key: string) => (cause: unknown) =>
  new StorageError({ operation, key, message: explain(cause), cause })

const notFoundOr = (operation: Operation, key: string) => (cause: unknown) => {
  const code = (cause as { code?: unknown } | null)?.code
  return code === "NoSuchKey" || code === "NotFound" ? new ObjectNotFound({ key }) : storageError(operation, key)(cause)
}

// User metadata travels as `x-amz-meta-<key>` headers: keys come back lowercased, and values must be printable
// ASCII without surrounding spaces. Other values are stored RFC 2047-encoded, as S3 itself returns non-ASCII ones.
const TOKEN = /^[a-z0-9][a-z0-9._-]*$/
/** Headers minio reports next to user metadata under their own names (its `isSupportedHeader`). */
const RESERVED = new Set([
  "cache-control",
  "content-disposition",
  "content-encoding",
  "content-language",
  "content-type",
  "if-match",
  "if-none-match"
])
const PLAIN = /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/
const ENCODED = /^=\?UTF-8\?B\?([A-Za-z0-9+/]*={0,2})\?=$/i

const toHeaders = (
  key: string,
  metadata: Record<string, string>
): Effect.Effect<Record<string, string>, StorageError> => {
  const refused = Object.keys(metadata).find((name) =>
    !TOKEN.test(name) || RESERVED.has(name) || name.startsWith("x-amz-")
  )
  if (refused !== undefined) {
    return Effect.fail(
      new StorageError({
        operation: "put",
        key,
        message: `metadata key "${refused}" cannot round-trip through S3: use lowercase letters, digits, ".", "_", "-"`
      })
    )
  }
  return Effect.succeed(Object.fromEntries(Object.entries(metadata).map(([name, value]) => [
    name,
    PLAIN.test(value) && !ENCODED.test(value) ? value : `=?UTF-8?B?${Buffer.from(value).toString("base64")}?=`
  ])))
}

const fromHeaders = (metaData: Record<string, unknown>): Record<string, string> =>
  Object.fromEntries(
    Object.entries(metaData)
      .filter(([name]) => !RESERVED.has(name) && !name.startsWith("x-amz-"))
      .map(([name, raw]) => {
        const value = String(raw)
        const encoded = ENCODED.exec(value)
        return [name, encoded ? Buffer.from(encoded[1]!, "base64").toString() : value]
      })
  )

interface PartPool {
  readonly take: Effect.Effect<Buffer>
  readonly release: (part: Buffer) => Effect.Effect<void>
}

/** The first buffer of an upload starts this small and grows: most payloads are far smaller than a part. */
const FIRST_BUFFER = 64 * 1024

/**
 * Part buffers for one upload, allocated on demand up to `count`, then reused: the upload's memory stays within
 * `count × size` however late the garbage collector runs (V8 lets tens of MB of dead buffers pile up).
 */
const makePool = (size: number, count: number): Effect.Effect<PartPool> =>
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
const toParts = <E, R>(
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
const peek = <A, E, R>(stream: Stream.Stream<A, E, R>, n: number) =>
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

/**
 * Resolves once `body` has bytes to read or has ended, and rejects if it fails first. Its later failures are
 * listened to as well, so one that comes before its reader does cannot crash the process; `errored` keeps it.
 */
const firstBytes = (body: Readable) =>
  new Promise<void>((resolve, reject) => {
    // An empty body may have ended before this listens: it then emits "end", not "readable".
    body.once("readable", resolve).once("end", resolve).on("error", reject)
  })

const DEFAULT_REQUEST_TIMEOUT = Duration.seconds(30)
const DEFAULT_RETRIES = 4
const DEFAULT_RETRY_DELAY = Duration.millis(250)
const DEFAULT_STAGING_MAX_AGE = Duration.hours(24)
/** How often abandoned staging uploads are looked for, after the first time at start. */
const SWEEP_INTERVAL = Duration.hours(1)

const isTransientError = (error: unknown): error is StorageError =>
  error instanceof StorageError && S3Transport.isTransient(error.cause)

export const make = (options: S3Options) =>
  Effect.gen(function*() {
    const { bucket } = options
    const region = options.region ?? "us-east-1"
    const partSize = options.partSize ?? 8 * MiB
    const concurrency = options.concurrency ?? 4
    const retries = options.retries ?? DEFAULT_RETRIES
    const url = new URL(options.endpoint)
    const { agent, transport } = yield* Effect.acquireRelease(
      Effect.sync(() =>
        S3Transport.make(url.protocol, Duration.toMillis(options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT))
      ),
      ({ agent }) => Effect.sync(() => agent.destroy())
    )
    const client = new Minio.Client({
      endPoint: url.hostname,
      ...(url.port === "" ? {} : { port: Number(url.port) }),
      useSSL: url.protocol === "https:",
      accessKey: options.accessKey,
      secretKey: Redacted.value(options.secretKey),
      region,
      // minio's putObject then sends any Buffer up to a part as one PUT of known length.
      partSize,
      transport,
      transportAgent: agent,
      // Retries are ours, below: minio's would resend only on some statuses, and warn on the console.
      retryOptions: { disableRetry: true }
    })

    /** Jittered exponential backoff, `retries` times at most, after transient failures only. */
    const backoff = Schedule.exponential(options.retryDelay ?? DEFAULT_RETRY_DELAY).pipe(
      Schedule.jittered,
      Schedule.intersect(Schedule.recurs(retries)),
      Schedule.whileInput(isTransientError)
    )
    /** A transient failure that ended the retries was the last of them all. */
    const exhausted = <E>(error: E) =>
      isTransientError(error) && retries > 0
        ? new StorageError({
          operation: error.operation,
          key: error.key,
          message: `${error.message} (${retries + 1} attempts)`,
          cause: error.cause
        })
        : error
    /**
     * Sends a request again after transient failures, each logged so that an outage ridden out still shows; any
     * other failure ends it at once.
     */
    const retrying = <A, E>(request: Effect.Effect<A, E>) =>
      request.pipe(
        Effect.tapError((error) =>
          isTransientError(error)
            ? Effect.logWarning(`S3 ${error.operation} "${error.key}" failed: ${error.message}`)
            : Effect.void
        ),
        Effect.retry(backoff),
        Effect.mapError(exhausted)
      )

    yield* retrying(Effect.tryPromise({
      try: async () => {
        if (await client.bucketExists(bucket)) return
        await client.makeBucket(bucket, region).catch(async (error: unknown) => {
          // Processes starting together race to create it: one wins, and the others' refusals (S3 and MinIO
          // name them differently) do not matter once the bucket is there.
          if (!(await client.bucketExists(bucket))) throw error
        })
      },
      catch: (cause) =>
        new StorageError({
          operation: "head",
          key: "",
          message: `bucket "${bucket}" at ${options.endpoint} cannot be used: ${explain(cause)}`,
          cause
        })
    }))

    const call = <A>(operation: Operation, key: string, run: () => Promise<A>) =>
      Effect.tryPromise({ try: run, catch: storageError(operation, key) })
    const send = <A>(operation: Operation, key: string, run: () => Promise<A>) => retrying(call(operation, key, run))

    /** The objects whose key starts with `prefix`, staging ones included. */
    const listed = (prefix: string) =>
      // ListObjects V1, paged by the last key: s3rver's V2 continuation tokens need DES, which Node 20 lacks.
      Stream.paginateChunkEffect("", (marker) =>
        send("list", prefix, () => client.listObjectsQuery(bucket, prefix, marker, { Delimiter: "", MaxKeys: 1000 })).pipe(
          Effect.map((page) => [
            Chunk.fromIterable(page.objects.flatMap(({ lastModified, name }) =>
              name === undefined ? [] : [{ name, lastModified: lastModified ?? new Date(0) }]
            )),
            page.isTruncated && page.nextMarker !== undefined ? Option.some(page.nextMarker) : Option.none()
          ] as const)
        ))

    const staging = yield* S3Staging.make({
      client,
      bucket,
      maxAge: Duration.decode(options.stagingMaxAge ?? DEFAULT_STAGING_MAX_AGE),
      listed
    })
    yield* staging.lifecycle
    // The first sweep as the store starts, so that what a crash left is gone before anything else is asked of it.
    yield* staging.sweep
    yield* Effect.forkScoped(staging.sweep.pipe(Effect.delay(SWEEP_INTERVAL), Effect.forever))

    /**
     * Runs the request that makes `key` visible without interruption, so it is never left racing on its own; an
     * interruption that came meanwhile — or during a wait between attempts, when an earlier attempt that timed out
     * may still have landed — then deletes the object, keeping "interrupted, so nothing committed" true.
     */
    const commit = (key: string, run: () => Promise<unknown>) =>
      Effect.uninterruptibleMask((restore) =>
        restore(retrying(Effect.uninterruptible(call("put", key, run)))).pipe(
          Effect.zipRight(restore(Effect.void)),
          Effect.onInterrupt(() => call("delete", key, () => client.removeObject(bucket, key)).pipe(Effect.ignore))
        )
      )

    /**
     * Larger payloads are uploaded in parts, but their metadata is known only once `finalize` ran, after the last
     * part, while S3 takes metadata only when an upload starts or in a copy. So the parts go to a staging key, and
     * once finalized the completed upload is copied server-side to its key with the metadata (directive REPLACE),
     * then the staging object is deleted. The key appears in one step, whole and with its metadata, as with a
     * single PUT; completing under the key and then copying it onto itself would show it without metadata for a
     * moment, and for good after a crash. S3 copies up to 5 GiB in one request.
     */
    const putInParts = <E, R, E2, R2>(
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
        const headers = yield* toHeaders(key, metadata)
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

    const head = (key: string) =>
      retrying(Effect.tryPromise({ try: () => client.statObject(bucket, key), catch: notFoundOr("head", key) })).pipe(
        Effect.map((stat): StoredObject => ({ key, size: stat.size, metadata: fromHeaders(stat.metaData) }))
      )

    /**
     * A GET answered, up to its first bytes (or the end of an empty body): a failure until then is retried, as the
     * reader has seen nothing yet; once bytes flow, a failure ends the read, for the reader never to see one twice.
     */
    const open = (key: string) =>
      Effect.acquireRelease(
        retrying(Effect.tryPromise({
          try: async () => {
            const response = await client.getObject(bucket, key)
            await firstBytes(response)
            return response
          },
          catch: notFoundOr("get", key)
        })),
        (response) => Effect.sync(() => response.destroy())
      )

    return ObjectStore.of({
      storageType: "s3",
      bucket,
      put: (key, body, finalize) =>
        Effect.gen(function*() {
          // `concurrency` parts in flight and one being filled; reading the body waits for a free buffer beyond that.
          const pool = yield* makePool(partSize, concurrency + 1)
          // Two parts tell a payload that needs a multipart upload from one that fits a single PUT.
          const [first, parts] = yield* peek(toParts(body, pool, partSize), 2)
          if (first.length >= 2) return yield* putInParts(key, parts, pool, finalize)
          const data = Option.getOrElse(Chunk.head(first), () => Buffer.alloc(0))
          const metadata = yield* finalize
          const headers = yield* toHeaders(key, metadata)
          const prefixed = Object.fromEntries(
            Object.entries(headers).map(([name, value]) => [`x-amz-meta-${name}`, value])
          )
          yield* commit(key, () => client.putObject(bucket, key, data, data.length, prefixed))
          return { key, size: data.length, metadata } satisfies StoredObject
        }).pipe(Effect.scoped),
      get: (key) =>
        Stream.unwrapScoped(
          Effect.map(open(key), (response) =>
            Stream.suspend(() =>
              // A failure that came before the reader did is only in `errored` (`fromReadable` would end quietly).
              response.errored
                ? Stream.fail(storageError("get", key)(response.errored))
                : NodeStream.fromReadable<StorageError>(() => response, storageError("get", key))
            ))
        ),
      head,
      delete: (key) => send("delete", key, () => client.removeObject(bucket, key)),
      list: (prefix) =>
        listed(prefix).pipe(
          Stream.filter(({ name }) => !name.startsWith(S3Staging.STAGING)),
          Stream.mapEffect(
            ({ name }) =>
              head(name).pipe(
                Effect.asSome,
                // Deleted between the listing and the HEAD.
                Effect.catchTag("ObjectNotFound", () => Effect.succeedNone)
              ),
            { concurrency: LIST_CONCURRENCY }
          ),
          Stream.filterMap((found) => found)
        )
    })
  })

export const layer = (options: S3Options): Layer.Layer<ObjectStore, StorageError> =>
  Layer.scoped(ObjectStore, make(options))

export const S3Config = Config.all({
  endpoint: Config.url("S3_ENDPOINT").pipe(Config.map((url) => url.href)),
  accessKey: Config.string("S3_ACCESS_KEY"),
  secretKey: Config.redacted("S3_SECRET_KEY"),
  region: Config.string("S3_REGION").pipe(Config.withDefault("us-east-1")),
  bucket: BucketConfig,
  partSize: Config.integer("S3_PART_SIZE").pipe(
    Config.withDefault(8 * MiB),
    Config.validate({
      message: "must be between 5 MiB and 5 GiB",
      validation: (n) => n >= 5 * MiB && n <= 5 * 1024 * MiB
    })
  ),
  concurrency: Config.integer("S3_UPLOAD_CONCURRENCY").pipe(
    Config.withDefault(4),
    Config.validate({ message: "must be at least 1", validation: (n) => n >= 1 })
  ),
  requestTimeout: Config.duration("S3_REQUEST_TIMEOUT").pipe(Config.withDefault(DEFAULT_REQUEST_TIMEOUT)),
  retries: Config.integer("S3_RETRIES").pipe(
    Config.withDefault(DEFAULT_RETRIES),
    Config.validate({ message: "must be at least 0", validation: (n) => n >= 0 })
  ),
  retryDelay: Config.duration("S3_RETRY_DELAY").pipe(Config.withDefault(DEFAULT_RETRY_DELAY)),
  stagingMaxAge: Config.duration("S3_STAGING_MAX_AGE").pipe(Config.withDefault(DEFAULT_STAGING_MAX_AGE))
})

/** S3 or MinIO at `S3_ENDPOINT`; the bucket is created if missing. */
export const layerConfig = Layer.scoped(ObjectStore, Effect.flatMap(S3Config, make))
