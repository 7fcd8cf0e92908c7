import { NodeStream } from "@effect/platform-node"
import { ObjectNotFound, ObjectStore, StorageError, type StoredObject } from "@telemetry/domain"
import { Chunk, Config, type ConfigError, Duration, Effect, Layer, Option, Redacted, Ref, Schedule, Stream } from "effect"
import * as Minio from "minio"
import type { Readable } from "node:stream"
import * as S3Metadata from "./S3Metadata.js"
import * as S3Parts from "./S3Parts.js"
import * as S3Staging from "./S3Staging.js"
import * as S3Transport from "./S3Transport.js"
import * as SpaceWatch from "../SpaceWatch.js"

const MiB = 1024 * 1024

export interface S3Options {
  /** e.g. `http://localhost:9000`; `https:` turns TLS on. */
  readonly endpoint: string
  readonly accessKey: string
  readonly secretKey: Redacted.Redacted
  readonly bucket: string
  /** Default `us-east-1`. */
  readonly region?: string | undefined
  /** Bytes per multipart part (5 MiB to 5 GiB, S3's limits); payloads up to this size go in one PUT. Default 8 MiB. */
  readonly partSize?: number | undefined
  /** Parts uploaded at once; an upload holds about `partSize × (concurrency + 1)` bytes. Default 4. */
  readonly concurrency?: number | undefined
  /**
   * How long a request may make no progress — connecting, sending, waiting for an answer, or a read of an object's
   * body waiting for bytes — before it is abandoned (and retried). Default 30 seconds.
   */
  readonly requestTimeout?: Duration.DurationInput | undefined
  /** Further attempts of a request that failed transiently (network, timeout, 5xx, throttling). Default 4. */
  readonly retries?: number | undefined
  /** The wait before the first retry, doubled for each next one, with jitter. Default 250 ms. */
  readonly retryDelay?: Duration.DurationInput | undefined
  /**
   * Multipart uploads are staged (S3Staging): staging objects and incomplete uploads older than this were abandoned
   * by a process that died, and are removed. Default 24 hours.
   */
  readonly stagingMaxAge?: Duration.DurationInput | undefined
}

/** HEADs in flight while listing: S3 listings carry no user metadata. */
const LIST_CONCURRENCY = 8

type Operation = StorageError["operation"]

const explain = (cause: unknown): string => {
  if (!(cause instanceof Error)) return String(cause)
  const code = (cause as { code?: unknown }).code
  // Connection failures to a name with several addresses come as an AggregateError with an empty message; a
  // socket's message names its code already ("connect ECONNREFUSED 10.0.0.5:9000").
  const named = typeof code === "string" && !cause.message.includes(code) ? code : undefined
  return [named, cause.message].filter(Boolean).join(": ") || cause.name
}

const storageError = (operation: Operation, key: string) => (cause: unknown) =>
  new StorageError({ operation, key, message: explain(cause), full: SpaceWatch.isNoSpace(cause), cause })

const notFoundOr = (operation: Operation, key: string) => (cause: unknown) => {
  const code = (cause as { code?: unknown } | null)?.code
  return code === "NoSuchKey" || code === "NotFound" ? new ObjectNotFound({ key }) : storageError(operation, key)(cause)
}

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
          full: error.full,
          cause: error.cause
        })
        : error
    /**
     * Sends a request again after transient failures; any other failure ends it at once. The first is logged, so
     * that an outage ridden out still shows, the others only at debug level: in an outage, every try of every claim
     * wrote a line for each of its requests' attempts (about one a second per claim).
     */
    const retrying = <A, E>(request: Effect.Effect<A, E>) =>
      Effect.flatMap(Ref.make(0), (failures) =>
        request.pipe(
          Effect.tapError((error) =>
            isTransientError(error)
              ? Effect.flatMap(Ref.getAndUpdate(failures, (n) => n + 1), (before) =>
                before === 0
                  ? Effect.logWarning(
                    `S3 ${error.operation} "${error.key}" failed: ${error.message}; trying again (at most ${retries} times)`
                  )
                  : Effect.logDebug(`S3 ${error.operation} "${error.key}" failed again: ${error.message}`))
              : Effect.void
          ),
          Effect.retry(backoff),
          Effect.mapError(exhausted)
        ))

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
        restore(retrying(Effect.uninterruptible(call("commit", key, run)))).pipe(
          Effect.zipRight(restore(Effect.void)),
          Effect.onInterrupt(() => call("delete", key, () => client.removeObject(bucket, key)).pipe(Effect.ignore))
        )
      )

    const putInParts = S3Parts.putInParts({ client, bucket, concurrency, call, send, commit })

    const head = (key: string) =>
      retrying(Effect.tryPromise({ try: () => client.statObject(bucket, key), catch: notFoundOr("head", key) })).pipe(
        Effect.map((stat): StoredObject => ({ key, size: stat.size, metadata: S3Metadata.fromHeaders(stat.metaData) }))
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

    return yield* SpaceWatch.watch(ObjectStore.of({
      storageType: "s3",
      bucket,
      put: (key, body, finalize) =>
        Effect.gen(function*() {
          // `concurrency` parts in flight and one being filled; reading the body waits for a free buffer beyond that.
          const pool = yield* S3Parts.makePool(partSize, concurrency + 1)
          // Two parts tell a payload that needs a multipart upload from one that fits a single PUT.
          const [first, parts] = yield* S3Parts.peek(S3Parts.toParts(body, pool, partSize), 2)
          if (first.length >= 2) return yield* putInParts(key, parts, pool, finalize)
          const data = Option.getOrElse(Chunk.head(first), () => Buffer.alloc(0))
          const metadata = yield* finalize
          const headers = S3Metadata.prefixed(yield* S3Metadata.toHeaders(key, metadata))
          yield* commit(key, () => client.putObject(bucket, key, data, data.length, headers))
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
      check: call("head", "", () => client.bucketExists(bucket)).pipe(
        // Once more, at once, for a kept-alive connection the server had closed meanwhile.
        Effect.retry({ times: 1, while: isTransientError }),
        Effect.filterOrFail((exists) => exists, () =>
          new StorageError({ operation: "head", key: "", message: `bucket "${bucket}" does not exist at ${options.endpoint}` })),
        Effect.asVoid
      ),
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
    }))
  })

export const layer = (options: S3Options): Layer.Layer<ObjectStore, StorageError> =>
  Layer.scoped(ObjectStore, make(options))

/** S3 or MinIO at the endpoint `config` names; the bucket is created if missing. */
export const layerConfig = (
  config: Config.Config.Wrap<S3Options>
): Layer.Layer<ObjectStore, StorageError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))
