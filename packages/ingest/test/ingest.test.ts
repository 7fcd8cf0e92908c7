import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { ClaimCheck, ClaimCheckJson, ClaimQueue, InvalidPayload, ObjectStore, QueueError, StorageError } from "@telemetry/domain"
import { haPayload, piecesOf } from "@telemetry/domain/testing"
import * as EmbeddedClaimQueue from "@telemetry/infra/queue/embedded/EmbeddedClaimQueue"
import * as MemoryObjectStore from "@telemetry/infra/storage/MemoryObjectStore"
import { inMemoryStore, nextClaim } from "@telemetry/infra/testing"
import {
  Chunk,
  ConfigProvider,
  Context,
  Deferred,
  Effect,
  Either,
  Fiber,
  HashMap,
  Layer,
  Logger,
  Metric,
  Option,
  Queue,
  Ref,
  Schedule,
  Schema,
  Stream,
  TestClock
} from "effect"
import { createHash } from "node:crypto"
import { gunzipSync, gzipSync } from "node:zlib"
import { Ingest } from "../src/Ingest.js"
import * as Metrics from "../src/metrics.js"

const bodyOf = (bytes: Uint8Array, chunkSize = 100) => Stream.fromIterable(piecesOf(bytes, chunkSize))

const request = (
  bytes: Uint8Array,
  gzipped: boolean,
  more: { idempotencyKey?: string; deviceId?: string; timeZone?: string; declaredLength?: number } = {}
) => ({
  body: bodyOf(bytes),
  declaredLength: more.declaredLength ?? null,
  gzipped,
  requestId: "req-1",
  deviceId: more.deviceId ?? "device-7",
  tenantId: "tenant-a",
  timeZone: more.timeZone ?? null,
  idempotencyKey: more.idempotencyKey ?? null
})

const objects = Effect.flatMap(ObjectStore, (s) => Effect.map(Stream.runCollect(s.list("")), Chunk.toReadonlyArray))

/** A queue that is down until `up`, and the claims it took. */
class Flaky extends Context.Tag("Flaky")<Flaky, { readonly published: Ref.Ref<ReadonlyArray<string>>; readonly up: Ref.Ref<boolean> }>() {}

/** Ingest on in-memory storage and queue, and an in-memory embedded database for its idempotency records. */
const inMemoryWith = (env: Record<string, string> = {}) =>
  Ingest.Default.pipe(
    Layer.provideMerge(MemoryObjectStore.layer("telemetry-raw")),
    Layer.provideMerge(EmbeddedClaimQueue.layer({ capacity: 10, publishTimeout: "1 second" })),
    Layer.provideMerge(inMemoryStore(1000)),
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))
  )
const inMemory = inMemoryWith()

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
        "time-zone": "UTC",
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
          timeZone: "UTC",
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

  /** Ingest whose queue never takes a claim (the broker down). */
  const brokenQueue = Ingest.Default.pipe(
    Layer.provideMerge(MemoryObjectStore.layer()),
    Layer.provideMerge(inMemoryStore(1000)),
    Layer.provideMerge(Layer.succeed(ClaimQueue, {
      publish: () => Effect.fail(new QueueError({ operation: "publish", message: "broker down" })),
      consume: () => Effect.never,
      deadLetters: () => Stream.empty,
      check: Effect.fail(new QueueError({ operation: "check", message: "broker down" })),
      backlog: Effect.fail(new QueueError({ operation: "check", message: "broker down" }))
    }))
  )

  it.live("when the claim cannot be queued the request fails and the stored object is removed", () =>
    Effect.gen(function*() {
      const result = yield* Effect.either((yield* Ingest).accept(request(Buffer.from(JSON.stringify(haPayload())), false)))
      expect(Either.isLeft(result) && result.left._tag).toBe("QueueError")
      expect(yield* objects).toEqual([])
      // Kafka may deliver the claim late all the same: it is revoked, so a worker settles it without loading.
      const sql = yield* SqlClient.SqlClient
      expect(yield* sql`SELECT count(*)::int AS n FROM revoked_claims`).toEqual([{ n: 1 }])
    }).pipe(Effect.provide(brokenQueue)))

  it.live("a revocation the database fails is tried again in the background, and the object deleted only after it", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // The database fails the first revocations (down with the broker), then answers.
      yield* sql`CREATE FUNCTION refuse_revocation() RETURNS trigger LANGUAGE plpgsql
        AS $$ BEGIN RAISE EXCEPTION 'connection terminated unexpectedly'; END $$`
      yield* sql`CREATE TRIGGER refuse_revocation BEFORE INSERT ON revoked_claims FOR EACH ROW EXECUTE FUNCTION refuse_revocation()`
      const error = yield* Effect.flip((yield* Ingest).accept(request(Buffer.from(JSON.stringify(haPayload("unit-revoke"))), false)))
      expect(error._tag).toBe("QueueError")
      // Kept while its claim is not revoked: a late delivery loads it rather than find neither object nor revocation.
      yield* Effect.sleep("1500 millis")
      expect(yield* objects).toHaveLength(1)
      yield* sql`DROP TRIGGER refuse_revocation ON revoked_claims`
      const left = yield* objects.pipe(
        Effect.delay("200 millis"),
        Effect.repeat({ until: (o) => o.length === 0 }),
        Effect.timeout("20 seconds")
      )
      expect(left).toEqual([])
      expect(yield* sql`SELECT count(*)::int AS n FROM revoked_claims`).toEqual([{ n: 1 }])
    }).pipe(Effect.provide(brokenQueue)))

  it.live("once a publish failed, uploads are refused before a byte is read until the queue answers a check again", () => {
    const lines: Array<{ message: string; claimId: unknown }> = []
    return Effect.gen(function*() {
      const ingest = yield* Ingest
      const { published, up } = yield* Flaky
      const json = Buffer.from(JSON.stringify(haPayload("unit-down")))
      const first = yield* Effect.flip(ingest.accept(request(json, false)))
      expect(first).toMatchObject({ _tag: "QueueError", message: "broker down" })

      let read = false
      const unread = { ...request(json, false), body: Stream.fromEffect(Effect.sync(() => (read = true, json))) }
      const refused = yield* Effect.flip(ingest.accept(unread))
      expect(refused._tag).toBe("QueueDown")
      expect(refused.message).toMatch(/^the claim queue has failed since \d{4}-\d\d-\d\dT[\d:.]+Z \(broker down\)$/)
      expect(read).toBe(false)
      expect(yield* objects).toEqual([])

      // The broker back: a check answers within a second, and uploads are taken again.
      yield* Ref.set(up, true)
      const accepted = yield* Effect.suspend(() => ingest.accept(request(json, false))).pipe(
        Effect.retry({ while: (e) => e._tag === "QueueDown", schedule: Schedule.spaced("100 millis"), times: 50 })
      )
      expect(yield* Ref.get(published)).toEqual([accepted.claimId])
      expect((yield* objects).map((o) => o.key)).toEqual([accepted.key])
      // Said once each, the reopening without the request whose publish closed the gate (it outlived it).
      expect(lines.filter((l) => /uploads are (refused|taken again)/.test(l.message))).toEqual([
        { message: "ingest: a claim was not published (broker down): uploads are refused until the queue answers", claimId: expect.any(String) },
        { message: "ingest: the claim queue answers again: uploads are taken again", claimId: undefined }
      ])
    }).pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, Logger.make(({ annotations, message }) => {
        lines.push({ message: Array.isArray(message) ? message.join(" ") : String(message), claimId: Option.getOrUndefined(HashMap.get(annotations, "claim_id")) })
      }))),
      Effect.provide(Ingest.Default.pipe(
        Layer.provideMerge(MemoryObjectStore.layer()),
        Layer.provideMerge(inMemoryStore(1000)),
        Layer.provideMerge(Layer.effect(ClaimQueue, Effect.map(Flaky, ({ published, up }) => {
          const down = Effect.unlessEffect(Effect.fail(new QueueError({ operation: "publish", message: "broker down" })), Ref.get(up))
          return ClaimQueue.of({
            publish: (claim) => Effect.zipRight(down, Ref.update(published, (ids) => [...ids, claim.claim_id])),
            consume: () => Effect.never,
            deadLetters: () => Stream.empty,
            check: Effect.asVoid(down),
            backlog: Effect.die("not used")
          })
        }))),
        Layer.provideMerge(Layer.effect(Flaky, Effect.all({ published: Ref.make<ReadonlyArray<string>>([]), up: Ref.make(false) })))
      ))
    )
  })

  it.live("a queue without room for a claim has not failed: the next upload is taken, not refused unread", () =>
    Effect.gen(function*() {
      const ingest = yield* Ingest
      const { published } = yield* Flaky
      const json = Buffer.from(JSON.stringify(haPayload("unit-full")))
      expect(yield* Effect.flip(ingest.accept(request(json, false)))).toMatchObject({ _tag: "QueueError", full: true })
      const accepted = yield* ingest.accept(request(Buffer.from(JSON.stringify(haPayload("unit-room"))), false))
      expect(yield* Ref.get(published)).toEqual([accepted.claimId])
    }).pipe(Effect.provide(Ingest.Default.pipe(
      Layer.provideMerge(MemoryObjectStore.layer()),
      Layer.provideMerge(inMemoryStore(1000)),
      // Full for its first claim; its check never answers, so that a gate it closed would stay closed.
      Layer.provideMerge(Layer.effect(ClaimQueue, Effect.map(Flaky, ({ published }) => {
        let attempts = 0
        return ClaimQueue.of({
          publish: (claim) =>
            Effect.suspend(() =>
              attempts++ === 0
                ? Effect.fail(new QueueError({ operation: "publish", message: "the claim queue is full", full: true }))
                : Ref.update(published, (ids) => [...ids, claim.claim_id])
            ),
          consume: () => Effect.never,
          deadLetters: () => Stream.empty,
          check: Effect.never,
          backlog: Effect.die("not used")
        })
      }))),
      Layer.provideMerge(Layer.effect(Flaky, Effect.all({ published: Ref.make<ReadonlyArray<string>>([]), up: Ref.make(true) })))
    ))))

  /**
   * Storage failing a put with `operation`: as it commits, the object is stored all the same (a connection cut
   * before the answer); storage is then down for the first deletion.
   */
  const storageFailing = (operation: "commit" | "put") => {
    const deletes = { count: 0 }
    const layer = Layer.effect(ObjectStore, Effect.map(ObjectStore, (inner) =>
      ObjectStore.of({
        ...inner,
        put: (key, body, finalize) =>
          Effect.zipRight(
            operation === "commit" ? Effect.asVoid(inner.put(key, body, finalize)) : Stream.runDrain(body),
            Effect.fail(new StorageError({ operation, key, message: "socket hang up" }))
          ),
        delete: (key) =>
          Effect.suspend(() =>
            ++deletes.count === 1 ? new StorageError({ operation: "delete", key, message: "connect ECONNREFUSED" }) : inner.delete(key)
          )
      }))).pipe(Layer.provide(MemoryObjectStore.layer("telemetry-raw")))
    return {
      deletes,
      provide: Effect.provide(Ingest.Default.pipe(
        Layer.provideMerge(layer),
        Layer.provideMerge(EmbeddedClaimQueue.layer({ capacity: 10, publishTimeout: "1 second" })),
        Layer.provideMerge(inMemoryStore(1000))
      ))
    }
  }
  const refusedForStorage = Effect.gen(function*() {
    const result = yield* Effect.either((yield* Ingest).accept(request(Buffer.from(JSON.stringify(haPayload())), false)))
    expect(Either.isLeft(result) && result.left._tag).toBe("StorageError")
    expect(Option.isNone(yield* nextClaim)).toBe(true)
    const sql = yield* SqlClient.SqlClient
    return (yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM revoked_claims`)[0]!.n
  })

  it.live("when storage's commit fails without an answer, the claim is revoked and the object deleted once storage answers", () => {
    const storage = storageFailing("commit")
    return Effect.gen(function*() {
      expect(yield* refusedForStorage).toBe(1)
      // Deleted by the retry, after the answer.
      const left = yield* objects.pipe(
        Effect.delay("100 millis"),
        Effect.repeat({ until: (o) => o.length === 0 }),
        Effect.timeout("10 seconds")
      )
      expect(left).toEqual([])
      expect(storage.deletes.count).toBe(2)
    }).pipe(storage.provide)
  })

  it.live("a put failing before its commit leaves nothing to revoke or delete", () => {
    const storage = storageFailing("put")
    return Effect.gen(function*() {
      expect(yield* refusedForStorage).toBe(0)
      yield* Effect.sleep("1500 millis")
      expect(storage.deletes.count).toBe(0)
      expect(yield* objects).toEqual([])
    }).pipe(storage.provide)
  })

  it.live("a retry with the same Idempotency-Key gets the first claim back and stores nothing more", () =>
    Effect.gen(function*() {
      const ingest = yield* Ingest
      const json = Buffer.from(JSON.stringify(haPayload("unit-5")))
      const first = yield* ingest.accept(request(json, false, { idempotencyKey: "k-1" }))
      const retry = yield* ingest.accept(request(json, false, { idempotencyKey: "k-1" }))
      expect(first.replayed).toBe(false)
      expect(retry).toEqual({ ...first, replayed: true })
      expect((yield* objects).map((o) => o.key)).toEqual([first.key])
      expect(Option.map(yield* nextClaim, (c) => c.claim_id)).toEqual(Option.some(first.claimId))
      expect(Option.isNone(yield* nextClaim)).toBe(true)
      // The same key for another body is a client bug, refused; a new key is a new request.
      const other = Buffer.from(JSON.stringify(haPayload("unit-6")))
      expect(yield* Effect.flip(ingest.accept(request(other, false, { idempotencyKey: "k-1" })))).toMatchObject({ _tag: "KeyReused" })
      expect((yield* ingest.accept(request(json, false, { idempotencyKey: "k-2" }))).replayed).toBe(false)
      expect(yield* objects).toHaveLength(2)
    }).pipe(Effect.provide(inMemory)))

  it.live("the same body again from the same device is a retry; from another device it is new", () =>
    Effect.gen(function*() {
      const ingest = yield* Ingest
      const gzipped = gzipSync(JSON.stringify(haPayload("unit-7")))
      const first = yield* ingest.accept(request(gzipped, true))
      expect(yield* ingest.accept(request(gzipped, true))).toEqual({ ...first, replayed: true })
      expect((yield* ingest.accept(request(gzipped, true, { deviceId: "device-8" }))).replayed).toBe(false)
      expect(yield* objects).toHaveLength(2)
    }).pipe(Effect.provide(inMemory)))

  it.live("a failed request leaves its retry free to go ahead", () =>
    Effect.gen(function*() {
      const ingest = yield* Ingest
      const json = Buffer.from(JSON.stringify(haPayload("unit-8")))
      const failing = { ...request(json, false, { idempotencyKey: "k-3" }), body: Stream.concat(bodyOf(json.subarray(0, 50)), Stream.fail(new Error("connection reset"))) }
      yield* Effect.flip(ingest.accept(failing))
      expect((yield* ingest.accept(request(json, false, { idempotencyKey: "k-3" }))).replayed).toBe(false)
    }).pipe(Effect.provide(inMemory)))

  /** The embedded queue, whose publishing waits, once begun, until `open`. */
  const gatedQueue = Effect.gen(function*() {
    const publishing = yield* Deferred.make<void>()
    const open = yield* Deferred.make<void>()
    const layer = Layer.effect(ClaimQueue, Effect.map(ClaimQueue, (inner) =>
      ClaimQueue.of({
        ...inner,
        publish: (claim) =>
          Effect.zipRight(Effect.zipRight(Deferred.succeed(publishing, undefined), Deferred.await(open)), inner.publish(claim))
      }))).pipe(Layer.provideMerge(EmbeddedClaimQueue.layer({ capacity: 10, publishTimeout: "1 second" })))
    return { publishing, open, layer }
  })

  /** Uploads counted as refused because their client hung up (`telemetry_ingest_payloads_refused_total{status="499"}`). */
  const hungUpRefusals = Effect.map(Metric.value(Metric.tagged(Metrics.payloadsRefused, "status", "499")), (s) => s.count)

  it.live("a client that hangs up once its body is in still has it accepted: its retry gets the claim back", () =>
    Effect.gen(function*() {
      const gate = yield* gatedQueue
      const lines: Array<{ message: string; claimId: unknown }> = []
      const refusedBefore = yield* hungUpRefusals
      yield* Effect.gen(function*() {
        const ingest = yield* Ingest
        const json = Buffer.from(JSON.stringify(haPayload("unit-hangup")))
        // The HTTP server interrupts a request's handler when its client hangs up: here while the claim is published.
        const hungUp = yield* Effect.fork(ingest.accept(request(json, false)))
        yield* Deferred.await(gate.publishing)
        yield* Fiber.interrupt(hungUp)
        yield* Deferred.succeed(gate.open, undefined)
        // The retry: in progress until the first request is accepted, then answered with its claim.
        const retry = yield* ingest.accept(request(json, false)).pipe(
          Effect.retry({ while: (e) => e._tag === "InProgress", schedule: Schedule.spaced("100 millis"), times: 30 })
        )
        expect(retry.replayed).toBe(true)
        const [object] = yield* objects
        expect(retry.key).toBe(object!.key)
        expect(Option.map(yield* nextClaim, (c) => c.claim_id)).toEqual(Option.some(retry.claimId))
        expect(Option.isNone(yield* nextClaim)).toBe(true)
        expect(yield* objects).toHaveLength(1)
        // Its request's line said 499: its outcome is logged with its claim, and it is no refusal.
        yield* Effect.suspend(() =>
          lines.some((l) => l.message === "upload accepted after its client hung up" && l.claimId === retry.claimId)
            ? Effect.void
            : Effect.fail("not logged")
        ).pipe(Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 40 }))
        expect(yield* hungUpRefusals).toBe(refusedBefore)
      }).pipe(
        Effect.provide(Ingest.Default.pipe(
          Layer.provideMerge(MemoryObjectStore.layer("telemetry-raw")),
          Layer.provideMerge(gate.layer),
          Layer.provideMerge(inMemoryStore(1000))
        )),
        Effect.provide(Logger.replace(Logger.defaultLogger, Logger.make(({ annotations, message }) => {
          const claimId = HashMap.get(annotations, "claim_id")
          lines.push({ message: Array.isArray(message) ? message.join(" ") : String(message), claimId: Option.getOrUndefined(claimId) })
        })))
      )
    }))

  it.live("a client that hangs up part-way through its body has it refused, and counted as such, once it fails", () =>
    Effect.gen(function*() {
      const ingest = yield* Ingest
      const refusedBefore = yield* hungUpRefusals
      const json = Buffer.from(JSON.stringify(haPayload("unit-cut")))
      const reading = yield* Deferred.make<void>()
      const cut = yield* Deferred.make<void>()
      const body = bodyOf(json.subarray(0, 200)).pipe(
        Stream.tap(() => Deferred.succeed(reading, undefined)),
        Stream.concat(Stream.fromEffect(Effect.zipRight(
          Deferred.await(cut),
          Effect.fail(new InvalidPayload({ message: "request body could not be read: aborted" }))
        )))
      )
      const hungUp = yield* Effect.fork(ingest.accept({ ...request(json, false), body }))
      yield* Deferred.await(reading)
      yield* Fiber.interrupt(hungUp)
      yield* Deferred.succeed(cut, undefined)
      yield* Effect.suspend(() => hungUpRefusals).pipe(
        Effect.repeat({ until: (n) => n === refusedBefore + 1, schedule: Schedule.spaced("50 millis"), times: 40 })
      )
      expect(yield* hungUpRefusals).toBe(refusedBefore + 1)
      expect(yield* objects).toHaveLength(0)
      expect(Option.isNone(yield* nextClaim)).toBe(true)
    }).pipe(Effect.provide(inMemory)))

  it.live("a device over its rate is refused with the time to wait; other devices go on", () =>
    Effect.gen(function*() {
      const ingest = yield* Ingest
      const body = (i: number) => Buffer.from(JSON.stringify(haPayload(`rate-${i}`)))
      yield* ingest.accept(request(body(1), false))
      yield* ingest.accept(request(body(2), false))
      const refused = yield* Effect.flip(ingest.accept(request(body(3), false)))
      expect(refused).toMatchObject({ _tag: "RateLimited", device: "tenant-a/device-7", limit: 2 })
      expect(refused._tag === "RateLimited" && refused.retryAfter).toBeTruthy()
      yield* ingest.accept(request(body(4), false, { deviceId: "device-9" }))
      expect(yield* objects).toHaveLength(3)
    }).pipe(Effect.provide(inMemoryWith({ RATE_LIMIT_PER_DEVICE: "2", RATE_LIMIT_WINDOW: "1 hour" }))))

  it.live("past the bound of uploads in flight a request is refused at once, not queued", () =>
    Effect.gen(function*() {
      const ingest = yield* Ingest
      const json = Buffer.from(JSON.stringify(haPayload("slow")))
      const release = yield* Deferred.make<void>()
      const reading = yield* Deferred.make<void>()
      // An upload that stays in flight until released; its body is read only once it holds its slot.
      const slow = {
        ...request(json, false),
        body: Stream.concat(
          bodyOf(json.subarray(0, 10)),
          Stream.fromEffect(Effect.as(Effect.zipRight(Deferred.succeed(reading, undefined), Deferred.await(release)), json.subarray(10)))
        )
      }
      const inFlight = yield* Effect.fork(ingest.accept(slow))
      yield* Deferred.await(reading)
      const refused = yield* Effect.flip(ingest.accept(request(Buffer.from(JSON.stringify(haPayload("second"))), false, { deviceId: "device-2" })))
      expect(refused).toMatchObject({ _tag: "Overloaded", inFlight: 1 })
      yield* Deferred.succeed(release, undefined)
      expect((yield* Fiber.join(inFlight)).readings).toBe(3)
      expect(yield* objects).toHaveLength(1)
    }).pipe(Effect.provide(inMemoryWith({ MAX_INFLIGHT_UPLOADS: "1" }))))

  it.live("a gzip bomb is refused as too large before it is expanded, and nothing is stored", () =>
    Effect.gen(function*() {
      const item = JSON.stringify(haPayload("bomb")[0])
      const bomb = gzipSync(Buffer.concat([Buffer.from(`[${item},`), Buffer.alloc(32 * 1024 * 1024, 0x20), Buffer.from(`${item}]`)]), { level: 9 })
      const refused = yield* Effect.flip((yield* Ingest).accept(request(bomb, true)))
      expect(refused).toMatchObject({ _tag: "PayloadTooLarge", limit: 200 })
      expect(yield* objects).toEqual([])
      expect(Option.isNone(yield* nextClaim)).toBe(true)
    }).pipe(Effect.provide(inMemory)))
})


describe("Ingest refuses what would hold it for nothing", () => {
  /** How many uploads storage was asked to start. */
  class Puts extends Context.Tag("test/Puts")<Puts, Ref.Ref<number>>() {}
  const countingPuts = Layer.effect(
    ObjectStore,
    Effect.gen(function*() {
      const storage = yield* ObjectStore
      const puts = yield* Puts
      return ObjectStore.of({
        ...storage,
        put: (key, body, finalize) => Effect.zipRight(Ref.update(puts, (n) => n + 1), storage.put(key, body, finalize))
      })
    })
  ).pipe(Layer.provide(MemoryObjectStore.layer()), Layer.provideMerge(Layer.effect(Puts, Ref.make(0))))

  it.live("a declared length over MAX_BODY_BYTES is refused before a byte is read, taking no slot", () =>
    Effect.gen(function*() {
      const unread = { ...request(Buffer.from("[]"), false, { declaredLength: 5_000_000_000 }), body: Stream.die("read") }
      expect(yield* Effect.flip((yield* Ingest).accept(unread))).toMatchObject({ _tag: "PayloadTooLarge", limit: 1_000_000 })
      expect(yield* objects).toEqual([])
    }).pipe(Effect.provide(inMemoryWith({ MAX_BODY_BYTES: "1000000", MAX_INFLIGHT_UPLOADS: "1" }))))

  it.effect("a body slower than MIN_BODY_RATE past its grace is cut, and nothing is stored", () =>
    Effect.gen(function*() {
      const json = Buffer.from(JSON.stringify(haPayload("slow-body")))
      // Ten bytes, then nothing: what a client holding a slot open sends.
      const stalled = { ...request(json, false), body: Stream.concat(bodyOf(json.subarray(0, 10)), Stream.never) }
      const upload = yield* Effect.fork(Effect.flip((yield* Ingest).accept(stalled)))
      yield* TestClock.adjust("9 seconds")
      expect(upload.unsafePoll()).toBeNull()
      yield* TestClock.adjust("2 seconds")
      const refused = yield* Fiber.join(upload)
      expect(refused).toMatchObject({ _tag: "BodyTooSlow", received: 10, minBytesPerSecond: 1024 })
      // The ten seconds it waited for the rest, in its facts and its message.
      expect(refused.message).toContain("(10 bytes in 10s of waiting)")
      expect(yield* objects).toEqual([])
    }).pipe(Effect.provide(inMemoryWith({ MIN_BODY_RATE: "1024", BODY_RATE_GRACE: "10 seconds" }))))

  it.live("bytes after the end of the gzip data are refused; a second gzip member is read", () =>
    Effect.gen(function*() {
      const gzipped = gzipSync(JSON.stringify(haPayload("trailing")))
      const padded = Buffer.concat([gzipped, Buffer.alloc(64 * 1024)])
      expect(yield* Effect.flip((yield* Ingest).accept(request(padded, true)))).toMatchObject({
        _tag: "InvalidPayload",
        message: expect.stringContaining("after the end of its gzip data")
      })
      expect(yield* objects).toEqual([])
      const json = JSON.stringify(haPayload("members"))
      const members = Buffer.concat([gzipSync(json.slice(0, 40)), gzipSync(json.slice(40))])
      expect(yield* (yield* Ingest).accept(request(members, true))).toMatchObject({ items: 1, readings: 3 })
    }).pipe(Effect.provide(inMemory)))

  it.live("a retry under an accepted Idempotency-Key is answered without uploading anything again", () =>
    Effect.gen(function*() {
      const ingest = yield* Ingest
      const json = Buffer.from(JSON.stringify(haPayload("keyed")))
      const first = yield* ingest.accept(request(json, false, { idempotencyKey: "k-early" }))
      const puts = yield* Puts
      expect(yield* Ref.get(puts)).toBe(1)
      expect(yield* ingest.accept(request(json, false, { idempotencyKey: "k-early" }))).toEqual({ ...first, replayed: true })
      const other = Buffer.from(JSON.stringify(haPayload("other-body")))
      expect(yield* Effect.flip(ingest.accept(request(other, false, { idempotencyKey: "k-early" })))).toMatchObject({
        _tag: "KeyReused"
      })
      expect(yield* Ref.get(puts)).toBe(1)
      expect(yield* objects).toHaveLength(1)
    }).pipe(Effect.provide(Ingest.Default.pipe(
      Layer.provideMerge(countingPuts),
      Layer.provideMerge(EmbeddedClaimQueue.layer({ capacity: 10, publishTimeout: "1 second" })),
      Layer.provideMerge(inMemoryStore(1000))
    ))))

  it.live("a device holds at most MAX_UPLOADS_PER_DEVICE slots; other devices go on", () =>
    Effect.gen(function*() {
      const ingest = yield* Ingest
      const json = Buffer.from(JSON.stringify(haPayload("held")))
      const release = yield* Deferred.make<void>()
      // Each held upload reads its body only once it holds its slot, and counts itself in.
      const reading = yield* Queue.unbounded<void>()
      const held = () => ({
        ...request(json, false),
        body: Stream.concat(
          bodyOf(json.subarray(0, 10)),
          Stream.fromEffect(Effect.as(Effect.zipRight(Queue.offer(reading, undefined), Deferred.await(release)), json.subarray(10)))
        )
      })
      const holding = yield* Effect.forkAll([ingest.accept(held()), ingest.accept(held())])
      yield* Queue.takeN(reading, 2)
      expect(yield* Effect.flip(ingest.accept(held()))).toMatchObject({ _tag: "TooManyUploads", scope: "device", limit: 2 })
      expect(yield* ingest.accept(request(json, false, { deviceId: "device-8" }))).toMatchObject({ readings: 3 })
      yield* Deferred.succeed(release, undefined)
      expect(yield* Fiber.join(holding)).toHaveLength(2)
    }).pipe(Effect.provide(inMemoryWith({ MAX_UPLOADS_PER_DEVICE: "2", IDEMPOTENCY_BODY_WINDOW: "0 seconds" }))))

  it.live("naive reading times are read in the device account's zone, which the object and claim carry", () =>
    Effect.gen(function*() {
      const json = Buffer.from(JSON.stringify(haPayload("zoned")))
      const accepted = yield* (yield* Ingest).accept(request(json, false, { timeZone: "America/Sao_Paulo" }))
      const [object] = yield* objects
      expect(object?.metadata["time-zone"]).toBe("America/Sao_Paulo")
      const claim = yield* Effect.flatten(nextClaim)
      expect(claim).toMatchObject({ claim_id: accepted.claimId, metadata: { timeZone: "America/Sao_Paulo" } })
    }).pipe(Effect.provide(inMemory)))
})
