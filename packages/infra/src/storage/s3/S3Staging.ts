import { Chunk, Clock, Duration, Effect, Option, Ref, Stream } from "effect"
import type * as Minio from "minio"

/**
 * Multipart uploads are written under this prefix and copied to their key once complete (S3ObjectStore's `put`).
 * A process killed mid-upload leaves an incomplete multipart upload there (its parts, billed, invisible to
 * listings), or, killed between completing and copying, a staging object: this module has them removed.
 */
export const STAGING = ".pending/"

/** Our rule in the bucket's lifecycle configuration. */
const RULE_ID = "telemetry-abandoned-uploads"

/** An object as a listing names it. */
export interface Listed {
  readonly name: string
  readonly lastModified: Date
}

export interface StagingOptions {
  readonly client: Minio.Client
  readonly bucket: string
  /** Staging objects and incomplete uploads older than this are abandoned: no upload takes so long. */
  readonly maxAge: Duration.Duration
  /** The objects whose key starts with a prefix, staging ones included. */
  readonly listed: (prefix: string) => Stream.Stream<Listed, unknown>
}

type Upload = Awaited<ReturnType<Minio.Client["listIncompleteUploadsQuery"]>>["uploads"][number]

const codeOf = (error: unknown) => (error as { code?: unknown } | null)?.code

const explain = (error: unknown) => [codeOf(error), (error as Error)?.message].filter(Boolean).join(": ")

/** A request whose failure is kept as the client threw it. */
const attempt = <A>(request: () => Promise<A>) => Effect.tryPromise({ try: request, catch: (error) => error })

const asArray = <A>(value: A | ReadonlyArray<A> | undefined): ReadonlyArray<A> =>
  value === undefined ? [] : Array.isArray(value) ? value : [value as A]

export const make = ({ bucket, client, listed, maxAge }: StagingOptions) =>
  Effect.gen(function*() {
    const days = Math.max(1, Math.ceil(Duration.toHours(maxAge) / 24))
    /** Cleared when the store answers that it cannot list incomplete uploads (s3rver): no use asking again. */
    const listsUploads = yield* Ref.make(true)

    /**
     * A lifecycle rule on the staging prefix that aborts incomplete multipart uploads and expires staging objects,
     * so that the store reclaims them itself. Only set on a bucket without lifecycle rules: the configuration is
     * replaced as a whole, and rules of the bucket's owner are not ours to drop. Best effort: stores without
     * lifecycles (s3rver) or credentials without the permission leave it to the sweep.
     */
    const lifecycle = attempt(async () => {
      const existing = await client.getBucketLifecycle(bucket).catch((error: unknown) =>
        codeOf(error) === "NoSuchLifecycleConfiguration" ? null : Promise.reject(error)
      )
      const rules = asArray<Minio.LifecycleRule>(existing?.Rule)
      if (rules.some((rule) => rule.ID === RULE_ID)) return "present" as const
      if (rules.length > 0) return "others" as const
      await client.setBucketLifecycle(bucket, {
        Rule: [{
          // In the order of S3's schema.
          ID: RULE_ID,
          Filter: { Prefix: STAGING },
          Status: "Enabled",
          Expiration: { Days: days },
          AbortIncompleteMultipartUpload: { DaysAfterInitiation: days }
        } as Minio.LifecycleRule]
      })
      return "set" as const
    }).pipe(
      Effect.flatMap((outcome) =>
        outcome === "set"
          ? Effect.logInfo(`S3: lifecycle rule set on ${bucket}: abandoned uploads under ${STAGING} are removed after ${days} day(s)`)
          : outcome === "others"
          ? Effect.logWarning(
            `S3: ${bucket} has lifecycle rules of its own, left as they are; add one that aborts incomplete multipart ` +
              `uploads and expires objects under ${STAGING} (abandoned uploads); the sweep removes them meanwhile`
          )
          : Effect.void
      ),
      Effect.catchAll((e) =>
        Effect.logInfo(`S3: no lifecycle rule on ${bucket} (${explain(e)}); abandoned uploads are removed by a sweep`)
      )
    )

    const abandoned = (time: Date, now: number) => now - time.getTime() > Duration.toMillis(maxAge)

    const staleObjects = (now: number) =>
      listed(STAGING).pipe(
        Stream.filter((object) => abandoned(object.lastModified, now)),
        Stream.mapEffect((object) => Effect.as(attempt(() => client.removeObject(bucket, object.name)), 1)),
        Stream.runSum
      )

    const staleUploads = (now: number) =>
      Effect.gen(function*() {
        if (!(yield* Ref.get(listsUploads))) return 0
        return yield* Stream.paginateChunkEffect<readonly [string, string], Upload, unknown, never>(["", ""], ([keyMarker, uploadIdMarker]) =>
          Effect.map(
            attempt(() => client.listIncompleteUploadsQuery(bucket, STAGING, keyMarker, uploadIdMarker, "")),
            (page) =>
              [
                Chunk.fromIterable(page.uploads),
                page.isTruncated ? Option.some([page.nextKeyMarker, page.nextUploadIdMarker]) : Option.none()
              ] as const
          )).pipe(
            Stream.filter((upload) => abandoned(new Date(upload.initiated), now)),
            Stream.mapEffect((upload) => attempt(() => client.abortMultipartUpload(bucket, upload.key, upload.uploadId))),
            Stream.runCount
          )
      }).pipe(
        Effect.catchAll((e) =>
          codeOf(e) === "NotImplemented"
            ? Effect.as(
              Effect.zipRight(
                Ref.set(listsUploads, false),
                Effect.logInfo(`S3: the store cannot list incomplete uploads (${explain(e)}); relying on its lifecycle`)
              ),
              0
            )
            : Effect.as(Effect.logWarning(`S3: incomplete uploads not swept: ${explain(e)}`), 0)
        )
      )

    /** Removes the staging objects and aborts the incomplete uploads older than `maxAge`. */
    const sweep = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const objects = yield* staleObjects(now).pipe(
        Effect.catchAll((e) => Effect.as(Effect.logWarning(`S3: staging objects not swept: ${explain(e)}`), 0))
      )
      const uploads = yield* staleUploads(now)
      if (objects + uploads > 0) {
        yield* Effect.logWarning(
          `S3: removed ${objects} staging object(s) and aborted ${uploads} incomplete upload(s) abandoned under ${STAGING}`
        )
      }
    })

    return { lifecycle, sweep } as const
  })
