import {
  claimFor,
  currentTraceparent,
  factsToMetadata,
  integerSetting,
  limitBytes,
  objectKey,
  numberConfig,
  ObjectStore,
  PayloadConfig,
  type PayloadFacts,
  PayloadTooLarge,
  StorageError
} from "@telemetry/domain"
import { gunzip, gzip } from "@telemetry/infra/compression"
import { Clock, Config, Deferred, Duration, Effect, Either, Exit, Fiber, Metric, Option, Schedule, Stream } from "effect"
import { createHash, randomUUID } from "node:crypto"
import * as Idempotency from "./idempotency/IngestRequests.js"
import { Admission } from "./limits/Admission.js"
import * as BodyRate from "./limits/BodyRate.js"
import * as Metrics from "./metrics.js"
import { QueueGate } from "./QueueGate.js"
import { Validation } from "./validation/Validation.js"

export const IngestConfig = Config.all({
  maxBodyBytes: integerSetting("MAX_BODY_BYTES", 512 * 1024 * 1024, { min: 1 }),
  /** zlib level for plain bodies; gzip bodies are stored as they arrive. */
  gzipLevel: integerSetting("GZIP_LEVEL", 1, { min: 0, max: 9 }),
  /** Body chunks either branch (storage, validation) may run ahead of the other. */
  maxLagChunks: integerSetting("INGEST_MAX_LAG_CHUNKS", 16, { min: 1 }),
  /**
   * Decompressed bytes a gzip body may expand to per byte sent, past its first MiB: a gzip bomb (about 1 000) is
   * refused. Telemetry JSON expands 40–80 times (Home Assistant queues measured 44–77, one of identical readings
   * 103), and a client's queue refused for its ratio would be refused at every resend.
   */
  maxCompressionRatio: numberConfig("MAX_COMPRESSION_RATIO", { min: 1 }).pipe(Config.withDefault(200))
})

export interface IngestRequest<E> {
  readonly body: Stream.Stream<Uint8Array, E>
  /** The body's size as the client declared it (`Content-Length`), when it did. */
  readonly declaredLength: number | null
  readonly gzipped: boolean
  readonly requestId: string
  readonly deviceId: string | null
  readonly tenantId: string
  /** The zone of the device account, for naive reading times; else DEFAULT_TIMEZONE. */
  readonly timeZone: string | null
  /** The client's `Idempotency-Key`: a retry with it gets the first claim back. */
  readonly idempotencyKey: string | null
}

export interface Accepted {
  readonly claimId: string
  readonly key: string
  readonly items: number
  readonly readings: number
  /** The request repeated an accepted one (same key, or same body from the device): this is that one's claim. */
  readonly replayed: boolean
}

/**
 * How long revoking the claim of a refused request and deleting its object are tried, in the background: storage or
 * the database may be down for a while (their failure may be why the request was refused).
 */
const discardRetries = Schedule.exponential(Duration.seconds(1)).pipe(
  Schedule.jittered,
  Schedule.modifyDelay((delay) => Duration.min(delay, Duration.seconds(30))),
  Schedule.upTo(Duration.minutes(15))
)

export class Ingest extends Effect.Service<Ingest>()("@telemetry/Ingest", {
  scoped: Effect.gen(function*() {
    const storage = yield* ObjectStore
    const gate = yield* QueueGate
    const payload = yield* PayloadConfig
    const config = yield* IngestConfig
    const admission = yield* Admission
    const requests = yield* Idempotency.IngestRequests
    const bodyRate = yield* BodyRate.BodyRateConfig
    const validation = yield* Validation
    yield* Metrics.exposeCounters
    /** Deletions of refused requests' objects still being tried run in it; they are interrupted when it closes. */
    const serviceScope = yield* Effect.scope

    /** Retried until storage or the database answers, without holding up the answer; logged if it never does. */
    const persistently = (what: string) => <E extends { readonly message: string }>(effect: Effect.Effect<void, E>) =>
      effect.pipe(
        Effect.retry(discardRetries),
        Effect.catchAll((e) => Effect.logError(`${what}: ${e.message}`))
      )

    /**
     * The request is refused, yet its object may have been stored (the store's commit failed without an answer,
     * or the claim was not acknowledged): the claim is revoked — a worker then never loads it, should Kafka deliver
     * it late or a replay find its object — and its object deleted. The revocation is tried before the answer;
     * failing that (the database down as well), again in the background before the object is deleted, since a late
     * delivery that finds neither is dead-lettered as `object_not_found`.
     */
    const discard = (claimId: string, key: string) =>
      Effect.gen(function*() {
        const revoked = yield* Effect.either(requests.revoke(claimId))
        if (Either.isLeft(revoked)) {
          yield* Effect.logWarning(`claim ${claimId} not revoked yet (${revoked.left.message}): trying again before deleting its object`)
        }
        const revokeLater = Either.isLeft(revoked)
          ? requests.revoke(claimId).pipe(
            persistently(`claim ${claimId} not revoked; should Kafka deliver it late, it is dead-lettered as object_not_found`)
          )
          : Effect.void
        const deleteLater = storage.delete(key).pipe(persistently(`the object ${key} of a refused request could not be deleted`))
        yield* Effect.zipRight(revokeLater, deleteLater).pipe(Effect.annotateLogs("claim_id", claimId), Effect.forkIn(serviceScope))
      })

    /** The decompressed body's sha256, as `store` computes it, to tell a retry from another body. */
    const sha256Of = <E>(request: IngestRequest<E>) =>
      (request.gzipped ? gunzip(request.body) : request.body).pipe(
        limitBytes(payload.maxDecompressedBytes, "decompressed body"),
        Stream.runFold(createHash("sha256"), (hash, bytes) => hash.update(bytes)),
        Effect.map((hash) => hash.digest("hex"))
      )

    /**
     * Streams the body to storage (gzip-compressed unless it already is) while validating it; the object is
     * committed only if validation passed and the request is not a retry of an accepted one, and the claim is
     * published only once the object is committed.
     */
    const store = <E>(request: IngestRequest<E>, claimId: string) => {
      let published = false
      return Effect.scoped(
        Effect.gen(function*() {
          yield* Effect.acquireRelease(
            Metric.incrementBy(Metrics.uploadsInFlight, 1),
            () => Metric.incrementBy(Metrics.uploadsInFlight, -1)
          )
          const receivedAt = new Date(yield* Clock.currentTimeMillis)
          const key = objectKey(claimId, receivedAt)
          const timeZone = request.timeZone ?? payload.timeZone
          const traceparent = Option.getOrUndefined(yield* currentTraceparent)
          const body = request.body.pipe(limitBytes(config.maxBodyBytes, "request body"), BodyRate.atLeast(bodyRate))
          const [toStore, toCheck] = yield* Stream.broadcast(body, 2, config.maxLagChunks)

          const sent = toCheck.pipe(Stream.tap((bytes) => Metric.incrementBy(Metrics.receivedBytes, bytes.length)))
          const check = validation.validate(sent, {
            gzipped: request.gzipped,
            timeZone,
            receivedAt: receivedAt.getTime(),
            payload,
            maxCompressionRatio: config.maxCompressionRatio
          }).pipe(
            Effect.map((validated): PayloadFacts => ({
              claimId,
              requestId: request.requestId,
              deviceId: request.deviceId,
              tenantId: request.tenantId,
              timeZone,
              traceparent,
              receivedAt,
              ...validated
            })),
            // Before the object is committed: a retry of an accepted request stores nothing.
            Effect.tap((facts) =>
              requests.reserve({
                tenantId: request.tenantId,
                deviceId: request.deviceId ?? "",
                idempotencyKey: request.idempotencyKey,
                sha256: facts.sha256,
                claimId,
                objectKey: key,
                items: facts.items,
                readings: facts.readings
              })
            )
          )
          const facts = yield* Deferred.make<PayloadFacts>()
          const stored = request.gzipped ? toStore : gzip(config.gzipLevel)(toStore)
          const [object, counted] = yield* Effect.all([
            storage.put(key, stored, Effect.map(Deferred.await(facts), factsToMetadata)).pipe(
              Effect.withSpan("ObjectStore.put"),
              Effect.tapError((e) => (e instanceof StorageError && e.operation === "commit" ? discard(claimId, key) : Effect.void))
            ),
            Effect.tap(check, (f) => Deferred.succeed(facts, f))
          ], { concurrency: "unbounded" })

          yield* gate.publish(claimFor(counted, object, storage)).pipe(
            Effect.withSpan("ClaimQueue.publish"),
            Effect.tapBoth({
              onSuccess: () => Metric.increment(Metrics.claimsPublished),
              onFailure: () => Metric.increment(Metrics.claimsPublishFailures)
            }),
            // Not acknowledged, so not kept: the client will send it again.
            Effect.tapError(() => discard(claimId, key))
          )
          published = true
          yield* requests.accept(claimId)
          // Replays are not counted: they accept nothing new.
          yield* Metric.increment(Metrics.payloadsAccepted)
          yield* Metric.incrementBy(Metrics.readingsAccepted, counted.readings)
          return { claimId, key, items: counted.items, readings: counted.readings, replayed: false } satisfies Accepted
        }).pipe(
          // Whatever failed or stopped it (a shutdown), a retry must be free to go ahead (a no-op when nothing was
          // reserved) — unless its claim is out: then the retry is to get that claim back.
          Effect.onError(() => (published ? requests.accept(claimId) : requests.release(claimId)))
        )
      ).pipe(Effect.annotateLogs("claim_id", claimId))
    }

    const replayed = (first: Idempotency.Submission): Accepted => ({
      claimId: first.claimId,
      key: first.objectKey,
      items: first.items,
      readings: first.readings,
      replayed: true
    })

    /**
     * A retry with an Idempotency-Key already accepted is answered before anything is stored: its body is only
     * read to tell a retry (the first claim back) from another body under the same key (refused).
     */
    const retryOf = <E>(request: IngestRequest<E>, key: string) =>
      Effect.gen(function*() {
        const recorded = yield* requests.find({ tenantId: request.tenantId, deviceId: request.deviceId ?? "", idempotencyKey: key })
        if (Option.isNone(recorded)) return Option.none<Accepted>()
        const first = recorded.value
        if (!first.accepted) return yield* new Idempotency.InProgress({ claimId: first.claimId })
        if ((yield* sha256Of(request)) !== first.sha256) return yield* new Idempotency.KeyReused({ key })
        return Option.some(replayed(first))
      })

    /**
     * The outcome of an upload whose client hung up before its answer: its request's line says only 499, and its
     * refusal is counted here, once known, as an upload accepted after all is no refusal.
     */
    const afterHangUp = <E>(upload: Fiber.Fiber<Accepted, E>) =>
      Effect.flatMap(Fiber.await(upload), Exit.match({
        onSuccess: (accepted) =>
          Effect.logInfo("upload accepted after its client hung up").pipe(
            Effect.annotateLogs({ claim_id: accepted.claimId, readings: accepted.readings, replayed: accepted.replayed })
          ),
        onFailure: () => Metric.increment(Metric.tagged(Metrics.payloadsRefused, "status", "499"))
      }))

    /**
     * Runs apart from the caller's fiber, which the HTTP server interrupts when the client hangs up: a body that came
     * in full is accepted all the same, so that the client's retry gets its claim back (interrupted between its
     * reservation and its acceptance, it held every retry off as in progress). A body cut off fails on its own.
     */
    const detached = <E>(effect: Effect.Effect<Accepted, E>) =>
      Effect.flatMap(Effect.forkIn(effect, serviceScope), (upload) =>
        Effect.onInterrupt(Fiber.join(upload), () => Effect.forkIn(afterHangUp(upload), serviceScope)))

    const accept = <E>(request: IngestRequest<E>) =>
      detached(Effect.gen(function*() {
        // Refused before a byte is read (and before they take a slot): too large, or nowhere to publish it.
        if (request.declaredLength !== null && request.declaredLength > config.maxBodyBytes) {
          return yield* new PayloadTooLarge({
            message: `the body's declared length, ${request.declaredLength} bytes, is over ${config.maxBodyBytes}`,
            limit: config.maxBodyBytes
          })
        }
        yield* gate.open
        return yield* admission.admit({ tenantId: request.tenantId, deviceId: request.deviceId ?? "" })(
          Effect.flatMap(
            request.idempotencyKey === null ? Effect.succeedNone : retryOf(request, request.idempotencyKey),
            Option.match({ onSome: Effect.succeed, onNone: () => store(request, randomUUID()) })
          )
        ).pipe(
          Effect.catchIf((e) => e instanceof Idempotency.Duplicate, ({ first }: Idempotency.Duplicate) =>
            Effect.succeed(replayed(first)))
        )
      }))

    return { accept } as const
  }),
  dependencies: [Admission.Default, Idempotency.layer, QueueGate.Default, Validation.Default]
}) {}

