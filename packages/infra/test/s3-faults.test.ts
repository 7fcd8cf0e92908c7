import { describe, expect, it } from "@effect/vitest"
import { ObjectStore, type ObjectStoreShape, StorageError } from "@telemetry/domain"
import * as S3Server from "@telemetry/testbed/S3Server"
import * as TcpProxy from "@telemetry/testbed/TcpProxy"
import { Chunk, Deferred, Effect, Fiber, Logger, Option, Redacted, Schedule, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { createServer } from "node:http"
import * as S3ObjectStore from "../src/storage/s3/S3ObjectStore.js"
import { optionsFor, rawKeys, s3Store, type StoreOptions } from "./support/s3.js"

const MiB = 1024 * 1024
const PART = 5 * MiB
const BUCKET = "telemetry-raw"

const inChunks = (data: Buffer, size = 64 * 1024) =>
  Stream.range(0, Math.ceil(data.length / size) - 1, 1).pipe(Stream.map((i) => data.subarray(i * size, (i + 1) * size)))
/** `data`, of which the bytes from `at` on come only once `gate` opens. */
const gated = (data: Buffer, at: number, gate: Deferred.Deferred<void>) =>
  Stream.concat(inChunks(data.subarray(0, at)), Stream.unwrap(Effect.as(Deferred.await(gate), inChunks(data.subarray(at)))))
const read = (store: ObjectStoreShape, key: string) =>
  Stream.runCollect(store.get(key)).pipe(Effect.map((chunks) => Buffer.concat(Chunk.toReadonlyArray(chunks))))
const eventually = (condition: () => boolean) =>
  Effect.sync(condition).pipe(Effect.repeat({ until: (met) => met, schedule: Schedule.spaced("20 millis") }))
const sleep = (millis: number) => Effect.sleep(`${millis} millis`)

/** A store on the server in context, built while it is up. */
const storeWith = (options: StoreOptions) =>
  Effect.flatMap(S3Server.S3Server, (server) => S3ObjectStore.make(optionsFor(server, options)))

const requestsTo = (server: S3Server.RunningS3Server, pattern: RegExp) =>
  server.requests().filter((r) => pattern.test(r)).length

describe("S3ObjectStore when storage goes down", () => {
  it.scopedLive("rides out an outage shorter than its retry budget in head, get, list and put", () =>
    Effect.gen(function*() {
      const server = yield* S3Server.S3Server
      // Retries over about 12 seconds; the outage lasts half a second.
      const s3 = yield* storeWith({ partSize: PART, concurrency: 2, retries: 8, retryDelay: "50 millis" })
      const small = randomBytes(1000)
      const large = randomBytes(2 * PART + 1)
      yield* s3.put("telemetry/o/small", Stream.make(small), Effect.succeed({ kind: "small" }))
      yield* s3.put("telemetry/o/large", inChunks(large), Effect.succeed({ kind: "large" }))

      yield* Effect.promise(server.down)
      yield* Effect.fork(Effect.zipRight(sleep(500), Effect.promise(server.up)))
      const results = yield* Effect.all({
        head: s3.head("telemetry/o/small"),
        small: read(s3, "telemetry/o/small"),
        large: read(s3, "telemetry/o/large"),
        listed: Stream.runCollect(s3.list("telemetry/o/")),
        single: s3.put("telemetry/n/small", Stream.make(small), Effect.succeed({})),
        multipart: s3.put("telemetry/n/large", inChunks(large), Effect.succeed({})),
        deleted: s3.delete("telemetry/n/gone")
      }, { concurrency: "unbounded" })
      expect(results.head).toEqual({ key: "telemetry/o/small", size: 1000, metadata: { kind: "small" } })
      expect(results.small.equals(small)).toBe(true)
      expect(results.large.equals(large)).toBe(true)
      expect(Chunk.toReadonlyArray(results.listed).map((o) => o.key).sort()).toEqual([
        "telemetry/o/large",
        "telemetry/o/small"
      ])
      expect((yield* read(s3, "telemetry/n/small")).equals(small)).toBe(true)
      expect((yield* read(s3, "telemetry/n/large")).equals(large)).toBe(true)

      // An outage in the middle of a multipart upload: the parts sent meanwhile are sent again.
      const gate = yield* Deferred.make<void>()
      const put = yield* Effect.fork(s3.put("telemetry/o/gated", gated(large, 2 * PART, gate), Effect.succeed({})))
      yield* eventually(() => requestsTo(server, /^PUT .*partNumber=2/) > 0)
      yield* Effect.promise(server.down)
      yield* Deferred.succeed(gate, undefined)
      yield* sleep(500)
      yield* Effect.promise(server.up)
      expect((yield* Fiber.join(put)).size).toBe(large.length)
      expect((yield* read(s3, "telemetry/o/gated")).equals(large)).toBe(true)
      expect((yield* rawKeys()).filter((key) => key.startsWith(".pending/"))).toEqual([])
    }).pipe(Effect.provide(S3Server.layer)))

  it.scopedLive("fails a multipart upload cut by an outage with a StorageError, commits nothing, and the same put succeeds once storage is back", () =>
    Effect.gen(function*() {
      const server = yield* S3Server.S3Server
      const s3 = yield* storeWith({ partSize: PART, concurrency: 2, retries: 2, retryDelay: "20 millis" })
      const data = randomBytes(3 * PART + 7)
      const gate = yield* Deferred.make<void>()
      const put = yield* Effect.fork(s3.put("telemetry/d/1", gated(data, 2 * PART, gate), Effect.succeed({})))
      yield* eventually(() => requestsTo(server, /^PUT .*partNumber=2/) > 0)
      yield* Effect.promise(server.down)
      yield* Deferred.succeed(gate, undefined)

      const failure = yield* Effect.flip(Fiber.join(put))
      expect(failure).toBeInstanceOf(StorageError)
      expect(failure).toMatchObject({ operation: "put", key: "telemetry/d/1" })
      expect(failure.message).toMatch(/(ECONNREFUSED|ECONNRESET).*\(3 attempts\)$/)

      yield* Effect.promise(server.up)
      expect((yield* Effect.flip(s3.head("telemetry/d/1")))._tag).toBe("ObjectNotFound")
      expect(yield* rawKeys()).toEqual([])
      yield* s3.put("telemetry/d/1", inChunks(data), Effect.succeed({ again: "yes" }))
      expect((yield* read(s3, "telemetry/d/1")).equals(data)).toBe(true)
      expect(yield* rawKeys()).toEqual(["telemetry/d/1"])
    }).pipe(Effect.provide(S3Server.layer)))

  it.scopedLive("fails a GET with a StorageError once its retries are spent, and never starts over a read that emitted bytes", () =>
    Effect.gen(function*() {
      const server = yield* S3Server.S3Server
      const s3 = yield* storeWith({ retries: 2, retryDelay: "20 millis" })
      const data = randomBytes(32 * MiB)
      yield* s3.put("telemetry/g/1", inChunks(data), Effect.succeed({}))

      yield* Effect.promise(server.down)
      const refused = yield* Effect.flip(read(s3, "telemetry/g/1"))
      expect(refused).toMatchObject({ _tag: "StorageError", operation: "get", key: "telemetry/g/1" })
      expect(refused.message).toMatch(/ECONNREFUSED.*\(3 attempts\)$/)
      yield* Effect.promise(server.up)

      // Cut after the first bytes, and back at once: starting over would succeed, and send the bytes twice.
      const gets = () => requestsTo(server, /^GET \/telemetry-raw\/telemetry\/g\/1$/)
      const before = gets()
      const pull = yield* Stream.toPull(s3.get("telemetry/g/1"))
      expect((yield* pull).length).toBeGreaterThan(0)
      yield* Effect.promise(server.down)
      yield* Effect.promise(server.up)
      const cut = yield* pull.pipe(Effect.forever, Effect.flip)
      expect(cut).toEqual(Option.some(expect.objectContaining({ _tag: "StorageError", operation: "get" })))
      expect(gets() - before).toBe(1)
    }).pipe(Effect.provide(S3Server.layer)))
})

describe("S3ObjectStore when storage hangs", () => {
  it.scopedLive("fails each request with a StorageError after the request timeout, closing its connection", () =>
    Effect.gen(function*() {
      const server = yield* S3Server.S3Server
      const proxy = yield* TcpProxy.make({ host: "127.0.0.1", port: server.port })
      const s3 = yield* S3ObjectStore.make({
        ...optionsFor(server, { partSize: PART, requestTimeout: "500 millis", retries: 1, retryDelay: "10 millis" }),
        endpoint: `http://127.0.0.1:${proxy.port}`
      })
      yield* s3.put("telemetry/h/1", Stream.make(Buffer.from("kept")), Effect.succeed({}))

      proxy.stall()
      const failures = [
        yield* Effect.flip(s3.head("telemetry/h/1")),
        yield* Effect.flip(read(s3, "telemetry/h/1")),
        yield* Effect.flip(s3.put("telemetry/h/2", Stream.make(Buffer.from("new")), Effect.succeed({}))),
        yield* Effect.flip(s3.put("telemetry/h/3", inChunks(randomBytes(2 * PART)), Effect.succeed({}))),
        yield* Effect.flip(s3.delete("telemetry/h/1")),
        yield* Effect.flip(Stream.runDrain(s3.list("telemetry/")))
      ]
      for (const failure of failures) {
        expect(failure).toBeInstanceOf(StorageError)
        expect(failure.message).toMatch(/ETIMEDOUT: no progress for 500 ms \(2 attempts\)$/)
      }
      // Each timed-out request closed its connection: none is left waiting on the hung server.
      yield* eventually(() => proxy.connections() === 0)

      proxy.pass()
      expect(yield* rawKeys()).toEqual(["telemetry/h/1"])
    }).pipe(Effect.provide(S3Server.layer)))

  it.scopedLive("times a read out only while it waits for bytes: a reader slower than the timeout reads on", () =>
    Effect.gen(function*() {
      const server = yield* S3Server.S3Server
      const proxy = yield* TcpProxy.make({ host: "127.0.0.1", port: server.port })
      const s3 = yield* S3ObjectStore.make({
        ...optionsFor(server, { requestTimeout: "1 second", retries: 1, retryDelay: "10 millis" }),
        endpoint: `http://127.0.0.1:${proxy.port}`
      })
      const data = randomBytes(32 * MiB)
      // (Stored around the proxy: s3rver may take longer than this test's timeout to answer a large part.)
      yield* Effect.flatMap(storeWith({}), (direct) => direct.put("telemetry/r/1", inChunks(data), Effect.succeed({})))

      // The reader pauses for twice the timeout with most of the body unread, then reads it all.
      const slow = Effect.gen(function*() {
        const pull = yield* Stream.toPull(s3.get("telemetry/r/1"))
        const first = yield* pull
        yield* sleep(2000)
        const rest = yield* Stream.runCollect(Stream.repeatEffectChunkOption(pull))
        return Buffer.concat([...first, ...rest])
      }).pipe(Effect.scoped)
      expect((yield* slow).equals(data)).toBe(true)

      // The server hangs in the middle of the body: the read fails, without starting over.
      const pull = yield* Stream.toPull(s3.get("telemetry/r/1"))
      yield* pull
      proxy.stall()
      const stalled = yield* pull.pipe(Effect.forever, Effect.flip)
      expect(stalled).toEqual(Option.some(expect.objectContaining({ _tag: "StorageError", operation: "get" })))
      expect(Option.getOrThrow(stalled).message).toBe("ETIMEDOUT: no progress for 1000 ms")
      proxy.pass()
    }).pipe(Effect.provide(S3Server.layer)))
})

/**
 * An HTTP server standing for S3 that answers each request with the next of `statuses`, then 200 (or with the status
 * `statuses` gives its method); it counts the requests for the bucket itself (the store's check that it exists), not
 * those the store makes once it has it.
 */
const answering = (statuses: ReadonlyArray<number> | ((method: string) => number)) =>
  Effect.acquireRelease(
    Effect.async<{ readonly endpoint: string; readonly requests: () => number; readonly close: () => void }>((resume) => {
      let served = 0
      let bucketChecks = 0
      const server = createServer((request, response) => {
        const status = typeof statuses === "function" ? statuses(request.method!) : statuses[served++] ?? 200
        if (request.url === `/${BUCKET}` || request.url === `/${BUCKET}/`) bucketChecks++
        request.resume()
        response.writeHead(status, { "content-type": "application/xml" }).end(
          status === 200 ? "" : `<Error><Code>Status${status}</Code><Message>no</Message></Error>`
        )
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as { port: number }
        resume(Effect.succeed({
          endpoint: `http://127.0.0.1:${port}`,
          requests: () => bucketChecks,
          close: () => server.close()
        }))
      })
    }),
    ({ close }) => Effect.sync(close)
  )

describe("S3ObjectStore retries", () => {
  const options = (endpoint: string): S3ObjectStore.S3Options => ({
    endpoint,
    accessKey: "S3RVER",
    secretKey: Redacted.make("S3RVER"),
    bucket: BUCKET,
    retries: 2,
    retryDelay: "10 millis"
  })

  it.scopedLive("retries 5xx and throttling answers, and gives up after its retries; a request's first failure is logged, not each", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const logged = Logger.replace(Logger.defaultLogger, Logger.make(({ logLevel, message }) => {
        // Its requests' (not the sweep of incomplete uploads, which this server cannot list).
        if (logLevel._tag === "Warning" && String(message).startsWith("S3 head")) warnings.push(String(message))
      }))
      const recovering = yield* answering([503, 500])
      yield* S3ObjectStore.make(options(recovering.endpoint)).pipe(Effect.provide(logged))
      expect(recovering.requests()).toBe(3)
      expect(warnings.splice(0)).toEqual([expect.stringMatching(/^S3 head "" failed: .*503.*; trying again \(at most 2 times\)$/)])

      const failing = yield* answering([503, 429, 502, 200])
      const failure = yield* Effect.flip(S3ObjectStore.make(options(failing.endpoint)).pipe(Effect.provide(logged)))
      expect(failure.message).toMatch(/HTTP 502 Bad Gateway \(3 attempts\)$/)
      expect(failing.requests()).toBe(3)
      expect(warnings).toHaveLength(1)
    }))

  it.scopedLive("a put refused with 507 (MinIO's XMinioStorageFull) fails as full, and fails the store's check meanwhile", () =>
    Effect.gen(function*() {
      // Reads are answered, writes refused.
      const full = yield* answering((method) => (method === "PUT" ? 507 : 200))
      const s3 = yield* S3ObjectStore.make(options(full.endpoint))
      const refused = yield* Effect.flip(s3.put("telemetry/x/full", Stream.make(randomBytes(100)), Effect.succeed({})))
      expect(refused).toMatchObject({ _tag: "StorageError", full: true, message: expect.stringContaining("507") })
      const check = yield* Effect.flip(s3.check)
      expect(check).toMatchObject({ full: true, message: expect.stringMatching(/^no space left: an upload was refused \d+ s ago \(HTTP 507/) })
      // The store's own check of the bucket, which this server answers: the check failed without asking.
      expect(full.requests()).toBe(1)
    }))

  it.scopedLive("does not retry 4xx answers", () =>
    Effect.gen(function*() {
      const denied = yield* answering([403])
      const failure = yield* Effect.flip(S3ObjectStore.make(options(denied.endpoint)))
      expect(failure.message).toContain("AccessDenied")
      expect(denied.requests()).toBe(1)

      const server = yield* S3Server.S3Server
      const s3 = yield* ObjectStore
      const before = server.requests().length
      expect((yield* Effect.flip(s3.head("telemetry/x/missing")))._tag).toBe("ObjectNotFound")
      expect((yield* Effect.flip(Stream.runDrain(s3.get("telemetry/x/missing"))))._tag).toBe("ObjectNotFound")
      expect(server.requests().slice(before)).toEqual([
        "HEAD /telemetry-raw/telemetry/x/missing",
        "GET /telemetry-raw/telemetry/x/missing"
      ])
    }).pipe(Effect.provide(s3Store({ retries: 3, retryDelay: "10 millis" }))))
})
