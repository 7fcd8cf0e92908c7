import { describe, expect, it } from "@effect/vitest"
import {
  ClaimCheck,
  ClaimCheckJson,
  ClaimQueue,
  EmbeddedClaimQueue,
  MemoryObjectStore,
  ObjectStore,
  QueueError
} from "@telemetry/domain"
import { Chunk, Deferred, Effect, Either, Fiber, Layer, Option, Schema, Stream } from "effect"
import { createHash } from "node:crypto"
import { gunzipSync, gzipSync } from "node:zlib"
import { Ingest } from "../src/Ingest.js"
import { haPayload } from "./support/payloads.js"

const bodyOf = (bytes: Uint8Array, chunkSize = 100) =>
  Stream.fromIterable(Array.from({ length: Math.ceil(bytes.length / chunkSize) }, (_, i) =>
    bytes.subarray(i * chunkSize, (i + 1) * chunkSize)))

const request = (bytes: Uint8Array, gzipped: boolean) => ({
  body: bodyOf(bytes),
  gzipped,
  requestId: "req-1",
  deviceId: "device-7",
  tenantId: "tenant-a"
})

const objects = Effect.flatMap(ObjectStore, (s) => Effect.map(Stream.runCollect(s.list("")), Chunk.toReadonlyArray))

/** The next claim on the queue, or none if nothing was published. */
const nextClaim = Effect.gen(function*() {
  const queue = yield* ClaimQueue
  const taken = yield* Deferred.make<ClaimCheck>()
  const consumer = yield* Effect.fork(queue.consume((claim) => Deferred.succeed(taken, claim)))
  const claim = yield* Deferred.await(taken).pipe(Effect.timeoutOption("200 millis"))
  yield* Fiber.interrupt(consumer)
  return claim
})

const inMemory = Ingest.Default.pipe(
  Layer.provideMerge(MemoryObjectStore.layer("telemetry-raw")),
  Layer.provideMerge(EmbeddedClaimQueue.layer({ capacity: 10, publishTimeout: "1 second" }))
)

describe("Ingest on in-memory storage and queue", () => {
  it.live("a plain body is stored gzip-compressed and its claim check follows the contract", () =>
    Effect.gen(function*() {
      const json = Buffer.from(JSON.stringify(haPayload("unit-1")))
      const accepted = yield* (yield* Ingest).accept(request(json, false))
      expect(accepted).toMatchObject({ items: 1, readings: 3 })

      const [object] = yield* objects
      expect(object!.key).toBe(accepted.key)
      const stored = yield* ObjectStore.pipe(Effect.flatMap((s) => Stream.runCollect(s.get(accepted.key))))
      expect(gunzipSync(Buffer.concat(Chunk.toReadonlyArray(stored)))).toEqual(json)
      expect(object!.metadata).toMatchObject({
        "request-id": "req-1",
        "device-id": "device-7",
        "original-size": String(json.length),
        sha256: createHash("sha256").update(json).digest("hex")
      })

      const claim = yield* Effect.flatten(nextClaim)
      expect(claim).toEqual(new ClaimCheck({
        version: 1,
        claim_id: accepted.claimId,
        claim_check: accepted.key,
        storage_type: "memory",
        bucket: "telemetry-raw",
        file_size: object!.size,
        original_size: json.length,
        compression: "gzip",
        timestamp: claim.timestamp,
        metadata: {
          requestId: "req-1",
          deviceId: "device-7",
          tenantId: "tenant-a",
          itemsCount: 1,
          totalSensors: 3,
          fileSize: object!.size
        }
      }))
      expect(Date.parse(claim.timestamp)).not.toBeNaN()
      // What goes on the wire decodes back to the same claim.
      const wire = Schema.encodeSync(ClaimCheckJson)(claim)
      expect(wire.length).toBeLessThan(1024)
      expect(Schema.decodeUnknownSync(ClaimCheckJson)(wire)).toEqual(claim)
    }).pipe(Effect.provide(inMemory)))

  it.live("a gzip body is stored byte for byte as it arrived", () =>
    Effect.gen(function*() {
      const gzipped = gzipSync(JSON.stringify(haPayload("unit-2")), { level: 9 })
      const accepted = yield* (yield* Ingest).accept(request(gzipped, true))
      const stored = yield* ObjectStore.pipe(Effect.flatMap((s) => Stream.runCollect(s.get(accepted.key))))
      expect(Buffer.concat(Chunk.toReadonlyArray(stored))).toEqual(gzipped)
    }).pipe(Effect.provide(inMemory)))

  it.live("an invalid body fails with its path and leaves nothing stored or queued", () =>
    Effect.gen(function*() {
      const bad = [{ ...haPayload("unit-3")[0], sensor: [{ valor: 1 }] }]
      const error = yield* Effect.flip((yield* Ingest).accept(request(Buffer.from(JSON.stringify(bad)), false)))
      expect(error).toMatchObject({ _tag: "InvalidPayload", path: "[0].sensor[0].sensor_uuid" })
      expect(yield* objects).toEqual([])
      expect(Option.isNone(yield* nextClaim)).toBe(true)
    }).pipe(Effect.provide(inMemory)))

  it.live("when the claim cannot be queued the request fails and the stored object is removed", () =>
    Effect.gen(function*() {
      const result = yield* Effect.either((yield* Ingest).accept(request(Buffer.from(JSON.stringify(haPayload())), false)))
      expect(Either.isLeft(result) && result.left._tag).toBe("QueueError")
      expect(yield* objects).toEqual([])
    }).pipe(
      Effect.provide(Ingest.Default.pipe(
        Layer.provideMerge(MemoryObjectStore.layer()),
        Layer.provideMerge(Layer.succeed(ClaimQueue, {
          publish: () => Effect.fail(new QueueError({ operation: "publish", message: "broker down" })),
          consume: () => Effect.never,
          check: Effect.fail(new QueueError({ operation: "check", message: "broker down" }))
        }))
      ))
    ))
})
