import {
  ClaimQueue,
  claimFor,
  decodePayload,
  factsToMetadata,
  gunzip,
  gzip,
  limitBytes,
  ObjectStore,
  objectKey,
  type PayloadFacts,
  PayloadConfig
} from "@telemetry/domain"
import { Config, Deferred, Effect, Stream } from "effect"
import { createHash, randomUUID } from "node:crypto"

export const IngestConfig = Config.all({
  maxBodyBytes: Config.integer("MAX_BODY_BYTES").pipe(Config.withDefault(512 * 1024 * 1024)),
  /** zlib level for plain bodies; gzip bodies are stored as they arrive. */
  gzipLevel: Config.integer("GZIP_LEVEL").pipe(Config.withDefault(1)),
  /** Body chunks either branch (storage, validation) may run ahead of the other. */
  maxLagChunks: Config.integer("INGEST_MAX_LAG_CHUNKS").pipe(Config.withDefault(16))
})

export interface IngestRequest<E> {
  readonly body: Stream.Stream<Uint8Array, E>
  readonly gzipped: boolean
  readonly requestId: string
  readonly deviceId: string | null
  readonly tenantId: string
}

export interface Accepted {
  readonly claimId: string
  readonly key: string
  readonly items: number
  readonly readings: number
}

export class Ingest extends Effect.Service<Ingest>()("@telemetry/Ingest", {
  effect: Effect.gen(function*() {
    const storage = yield* ObjectStore
    const queue = yield* ClaimQueue
    const payload = yield* PayloadConfig
    const config = yield* IngestConfig

    /**
     * Streams the body to storage (gzip-compressed unless it already is) while validating it; the object is
     * committed only if validation passed, and the claim is published only once the object is committed.
     */
    const accept = <E>(request: IngestRequest<E>) =>
      Effect.scoped(
        Effect.gen(function*() {
          const claimId = randomUUID()
          const receivedAt = new Date()
          const key = objectKey(claimId, receivedAt)
          const body = request.body.pipe(limitBytes(config.maxBodyBytes, "request body"))
          const [toStore, toCheck] = yield* Stream.broadcast(body, 2, config.maxLagChunks)

          const sha256 = createHash("sha256")
          let originalSize = 0
          const check = (request.gzipped ? gunzip(toCheck) : toCheck).pipe(
            limitBytes(payload.maxDecompressedBytes, "decompressed body"),
            Stream.tap((bytes) =>
              Effect.sync(() => {
                sha256.update(bytes)
                originalSize += bytes.length
              })
            ),
            decodePayload({ ...payload, receivedAt: receivedAt.getTime() }),
            Stream.runFold({ items: 0, readings: 0 }, (n, item) => ({
              items: n.items + 1,
              readings: n.readings + item.readings.length
            })),
            Effect.map((counts): PayloadFacts => ({
              claimId,
              requestId: request.requestId,
              deviceId: request.deviceId,
              tenantId: request.tenantId,
              receivedAt,
              originalSize,
              sha256: sha256.digest("hex"),
              ...counts
            }))
          )
          const facts = yield* Deferred.make<PayloadFacts>()
          const stored = request.gzipped ? toStore : gzip(config.gzipLevel)(toStore)
          const [object, counted] = yield* Effect.all([
            storage.put(key, stored, Effect.map(Deferred.await(facts), factsToMetadata)),
            Effect.tap(check, (f) => Deferred.succeed(facts, f))
          ], { concurrency: "unbounded" })

          yield* queue.publish(claimFor(object, storage)).pipe(
            // Not acknowledged, so not kept: the client will send it again.
            // A claim Kafka delivers after all would then find no object and load nothing.
            Effect.tapError(() =>
              storage.delete(key).pipe(
                Effect.catchAll((e) => Effect.logError(`unpublished payload ${key} could not be deleted: ${e.message}`))
              )
            )
          )
          return { claimId, key, items: counted.items, readings: counted.readings } satisfies Accepted
        })
      )

    return { accept } as const
  })
}) {}

