import { describe, expect, it } from "@effect/vitest"
import { InvalidPayload, ObjectStore } from "@telemetry/domain"
import * as S3Server from "@telemetry/testbed/S3Server"
import { Chunk, Effect, Fiber, Schedule, Stream } from "effect"
import { spawn } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { createServer } from "node:net"
import { fileURLToPath } from "node:url"
import * as S3ObjectStore from "../src/storage/s3/S3ObjectStore.js"
import { optionsFor, rawClient, rawKeys, s3Store } from "./support/s3.js"

const MiB = 1024 * 1024
/** S3's smallest part: three parts stay cheap. */
const PART = 5 * MiB
const store = s3Store({ partSize: PART, concurrency: 2 })

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex")
const inChunks = (data: Buffer, size = 64 * 1024) =>
  Stream.range(0, Math.ceil(data.length / size) - 1, 1).pipe(Stream.map((i) => data.subarray(i * size, (i + 1) * size)))
const readBack = (key: string) =>
  Effect.flatMap(ObjectStore, (s) => Stream.runCollect(s.get(key))).pipe(Effect.map(Chunk.toReadonlyArray))
const listed = (prefix: string) =>
  Effect.flatMap(ObjectStore, (s) => Stream.runCollect(s.list(prefix))).pipe(
    Effect.map((objects) => Chunk.toReadonlyArray(objects).map((o) => o.key).sort())
  )
/** The S3 requests made by `effect`, as `METHOD /path?query`. */
const requestsOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const server = yield* S3Server.S3Server
    const before = server.requests().length
    const result = yield* effect
    return [result, server.requests().slice(before)] as const
  })
const matching = (requests: ReadonlyArray<string>, pattern: RegExp) => requests.filter((r) => pattern.test(r)).length

describe("S3ObjectStore on s3rver", () => {
  it.scoped("sends a payload up to the part size in one PUT, a larger one in parts, and reads both back streamed", () =>
    Effect.gen(function*() {
      const s3 = yield* ObjectStore
      const small = randomBytes(100 * 1024)
      const large = randomBytes(2 * PART + 12_345)
      const metadataOf = (data: Buffer) => ({
        "request-id": "req-1",
        "device-id": "Kühlschrank 7",
        "original-size": String(data.length),
        sha256: sha256(data)
      })

      const [smallObject, singlePut] = yield* requestsOf(
        s3.put("telemetry/s/1.bin", inChunks(small), Effect.sync(() => metadataOf(small)))
      )
      expect(singlePut).toEqual(["PUT /telemetry-raw/telemetry/s/1.bin"])
      const [largeObject, multipart] = yield* requestsOf(
        s3.put("telemetry/l/1.bin", inChunks(large), Effect.sync(() => metadataOf(large)))
      )
      expect(matching(multipart, /^POST \/telemetry-raw\/\.pending\/[^?]+\?uploads/)).toBe(1)
      expect(matching(multipart, /^PUT \/telemetry-raw\/\.pending\/.*partNumber=/)).toBe(3)
      expect(matching(multipart, /^POST \/telemetry-raw\/\.pending\/[^?]+\?uploadId=/)).toBe(1)
      expect(matching(multipart, /^PUT \/telemetry-raw\/telemetry\/l\/1\.bin$/)).toBe(1)
      expect(matching(multipart, /^DELETE \/telemetry-raw\/\.pending\/[^?]+$/)).toBe(1)

      for (const [object, data] of [[smallObject, small], [largeObject, large]] as const) {
        expect(object).toEqual({ key: object.key, size: data.length, metadata: metadataOf(data) })
        expect(yield* s3.head(object.key)).toEqual(object)
        const chunks = yield* readBack(object.key)
        expect(Buffer.concat(chunks).equals(data)).toBe(true)
        if (data === large) expect(chunks.length).toBeGreaterThan(1)
      }
      expect(yield* listed("")).toEqual(["telemetry/l/1.bin", "telemetry/s/1.bin"])
    }).pipe(Effect.provide(store)))

  it.scopedLive("commits nothing and aborts the upload when finalize or the body fails, or the put is interrupted", () =>
    Effect.gen(function*() {
      const s3 = yield* ObjectStore
      const [refused, whenRefused] = yield* requestsOf(Effect.flip(
        s3.put("telemetry/f/1.bin", inChunks(randomBytes(2 * PART + 1)), Effect.fail(new InvalidPayload({ message: "no" })))
      ))
      expect(refused._tag).toBe("InvalidPayload")
      const [broken, whenBroken] = yield* requestsOf(Effect.flip(
        s3.put("telemetry/f/2.bin", Stream.concat(inChunks(randomBytes(2 * PART)), Stream.fail("cut")), Effect.succeed({}))
      ))
      expect(broken).toBe("cut")
      const [, whenInterrupted] = yield* requestsOf(Effect.gen(function*() {
        const server = yield* S3Server.S3Server
        const before = server.requests().length
        const put = yield* Effect.fork(
          s3.put("telemetry/f/3.bin", Stream.concat(inChunks(randomBytes(2 * PART)), Stream.never), Effect.succeed({}))
        )
        yield* Effect.sync(() => server.requests().slice(before).some((r) => r.includes("partNumber=2"))).pipe(
          Effect.repeat({ until: (sent) => sent, schedule: Schedule.spaced("20 millis") })
        )
        yield* Fiber.interrupt(put)
      }))

      for (const requests of [whenRefused, whenBroken, whenInterrupted]) {
        expect(matching(requests, /partNumber=/)).toBeGreaterThan(0)
        expect(matching(requests, /^DELETE \/telemetry-raw\/\.pending\/[^?]+\?uploadId=/)).toBe(1)
        expect(matching(requests, /^POST .*\?uploadId=/)).toBe(0)
        expect(matching(requests, /^PUT \/telemetry-raw\/telemetry\//)).toBe(0)
      }
      expect(yield* listed("")).toEqual([])
      expect((yield* Effect.flip(s3.head("telemetry/f/3.bin")))._tag).toBe("ObjectNotFound")
    }).pipe(Effect.provide(store)))

  it.scoped("stores non-ASCII metadata values and refuses keys that would come back changed", () =>
    Effect.gen(function*() {
      const s3 = yield* ObjectStore
      const metadata = { "device-id": "カメラ 1", note: " padded ", look: "=?UTF-8?B?eA==?=" }
      const object = yield* s3.put("telemetry/m/1.bin", Stream.make(Buffer.from("x")), Effect.succeed(metadata))
      expect(yield* s3.head(object.key)).toEqual({ key: object.key, size: 1, metadata })
      const refused = yield* Effect.flip(
        s3.put("telemetry/m/2.bin", Stream.make(Buffer.from("x")), Effect.succeed({ "Request-Id": "r" }))
      )
      expect(refused).toMatchObject({ _tag: "StorageError", operation: "put", key: "telemetry/m/2.bin" })
      expect(refused.message).toContain("Request-Id")
      expect(yield* listed("telemetry/")).toEqual(["telemetry/m/1.bin"])
    }).pipe(Effect.provide(store)))

  it.scoped("lists past S3's 1000 keys per page, each object with its metadata", () =>
    Effect.gen(function*() {
      const s3 = yield* ObjectStore
      const keys = Array.from({ length: 1003 }, (_, i) => `telemetry/p/${String(i).padStart(4, "0")}.bin`)
      yield* Effect.forEach(
        keys,
        (key) => s3.put(key, Stream.make(Buffer.from(key)), Effect.succeed({ "claim-id": key })),
        { concurrency: 16, discard: true }
      )
      const objects = Chunk.toReadonlyArray(yield* Stream.runCollect(s3.list("telemetry/p/")))
      expect(objects.map((o) => o.key).sort()).toEqual(keys)
      expect(objects.every((o) => o.metadata["claim-id"] === o.key && o.size === o.key.length)).toBe(true)
    }).pipe(Effect.provide(store)))

  it.scopedLive("creates a missing bucket, and fails with a StorageError on an unknown access key or a closed port", () =>
    Effect.gen(function*() {
      const server = yield* S3Server.S3Server
      const [fresh, created] = yield* requestsOf(S3ObjectStore.make(optionsFor(server, { bucket: "fresh-bucket" })))
      expect(matching(created, /^PUT \/fresh-bucket\/?$/)).toBe(1)
      yield* fresh.put("telemetry/b/1.bin", Stream.make(Buffer.from("kept")), Effect.succeed({}))
      const again = yield* S3ObjectStore.make(optionsFor(server, { bucket: "fresh-bucket" }))
      expect((yield* again.head("telemetry/b/1.bin")).size).toBe(4)

      // Processes starting together on a new bucket race to create it; every one of them starts.
      const racers = yield* Effect.all(
        Array.from({ length: 6 }, () => S3ObjectStore.make(optionsFor(server, { bucket: "raced-bucket" }))),
        { concurrency: "unbounded" }
      )
      expect(racers).toHaveLength(6)

      // (s3rver checks the access key only: it does not verify V4 signatures.)
      const stranger = yield* Effect.flip(S3ObjectStore.make({ ...optionsFor(server), accessKey: "STRANGER" }))
      expect(stranger._tag).toBe("StorageError")
      expect(stranger.message).toMatch(/telemetry-raw.*AccessDenied/)

      const closedPort = yield* Effect.promise(() =>
        new Promise<number>((resolve) => {
          const probe = createServer().listen(0, "127.0.0.1", () => {
            const { port } = probe.address() as { port: number }
            probe.close(() => resolve(port))
          })
        })
      )
      // Refused connections are retried first.
      const down = yield* Effect.flip(
        S3ObjectStore.make({ ...optionsFor(server, { retryDelay: "10 millis" }), endpoint: `http://127.0.0.1:${closedPort}` })
      )
      expect(down._tag).toBe("StorageError")
      expect(down.message).toMatch(/ECONNREFUSED.*\(5 attempts\)$/)
    }).pipe(Effect.provide(S3Server.layer)))

  it.scopedLive("its check is one request, not backed off: it says at once that the bucket is gone, or the connection refused", () =>
    Effect.gen(function*() {
      const server = yield* S3Server.S3Server
      const store = yield* S3ObjectStore.make(optionsFor(server, { bucket: "checked-bucket" }))
      const [, answered] = yield* requestsOf(store.check)
      expect(answered).toEqual([expect.stringMatching(/^HEAD \/checked-bucket\/?$/)])

      const raw = yield* rawClient
      yield* Effect.promise(() => raw.removeBucket("checked-bucket"))
      const [gone, asked] = yield* requestsOf(Effect.flip(store.check))
      expect(gone.message).toBe(`bucket "checked-bucket" does not exist at ${server.endpoint}`)
      expect(asked).toHaveLength(1)

      yield* Effect.promise(() => server.down())
      const refused = yield* Effect.flip(store.check).pipe(Effect.ensuring(Effect.promise(() => server.up())))
      // The socket's words once, not its code before them again.
      expect(refused.message).toMatch(/^connect ECONNREFUSED 127\.0\.0\.1:\d+$/)
    }).pipe(Effect.provide(S3Server.layer)))

  it.scopedLive("as it starts, asks for a lifecycle rule on its staging prefix and removes staging left longer than its maximum age", () =>
    Effect.gen(function*() {
      const server = yield* S3Server.S3Server
      const client = yield* rawClient
      yield* S3ObjectStore.make(optionsFor(server))
      // What a process killed between completing an upload and copying it to its key leaves behind.
      yield* Effect.promise(() => client.putObject("telemetry-raw", ".pending/abandoned", Buffer.from("parts")))
      yield* Effect.sleep("4500 millis")
      yield* Effect.promise(() => client.putObject("telemetry-raw", ".pending/in-progress", Buffer.from("parts")))

      const [, requests] = yield* requestsOf(S3ObjectStore.make(optionsFor(server, { stagingMaxAge: "3 seconds" })))
      // s3rver implements neither bucket lifecycles nor the listing of incomplete uploads; S3 and MinIO do.
      expect(matching(requests, /^GET \/telemetry-raw\?lifecycle/)).toBe(1)
      expect(matching(requests, /^GET \/telemetry-raw\?uploads/)).toBe(1)
      expect(yield* rawKeys()).toEqual([".pending/in-progress"])
    }).pipe(Effect.provide(S3Server.layer)))
})

interface ProbeReport {
  readonly size: number
  readonly metadata: Record<string, string>
  readonly uploadPeakGrowth: number
  readonly uploadSampledGrowth: number
  readonly uploadMBps: number
  readonly downloadSha256: string
  readonly downloadChunks: number
  readonly downloadSampledGrowth: number
  readonly downloadMBps: number
}

const root = fileURLToPath(new URL("../../../", import.meta.url))

/** Runs `support/s3-memory-probe.ts` in its own process; killed if the test ends first. */
const probe = (env: Record<string, string>) =>
  Effect.async<ProbeReport, Error>((resume) => {
    const child = spawn(process.execPath, ["--import", "tsx", "packages/infra/test/support/s3-memory-probe.ts"], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    // "close", not "exit": at "exit" the end of its report may still be in the pipe.
    child.on("close", (code) =>
      resume(
        code === 0
          ? Effect.try({ try: () => JSON.parse(stdout) as ProbeReport, catch: () => new Error(`probe printed ${stdout}`) })
          : Effect.fail(new Error(`probe exited with ${code}:\n${stderr}`))
      ))
    return Effect.sync(() => child.kill("SIGKILL"))
  })

describe("S3ObjectStore memory", () => {
  it.live("uploads 100 MiB in parts with RSS growth under 64 MB, and streams it back", () =>
    Effect.gen(function*() {
      const server = yield* S3Server.S3Server
      const total = 100 * MiB
      const key = "telemetry/big/1.bin"
      // The defaults: 8 MiB parts, 4 in flight.
      const [report, requests] = yield* requestsOf(probe({
        ...server.env,
        STORAGE_BUCKET: "telemetry-raw",
        PROBE_BYTES: String(total),
        PROBE_KEY: key
      }))
      const mb = (bytes: number) => (bytes / 1e6).toFixed(1)
      console.log(
        `100 MiB through S3ObjectStore on s3rver: upload ${report.uploadMBps.toFixed(0)} MB/s, RSS +${
          mb(report.uploadPeakGrowth)
        } MB (peak); download ${report.downloadMBps.toFixed(0)} MB/s in ${report.downloadChunks} chunks, RSS +${
          mb(report.downloadSampledGrowth)
        } MB (sampled)`
      )
      expect(report.uploadPeakGrowth).toBeLessThan(64e6)
      expect(report.downloadSampledGrowth).toBeLessThan(64e6)
      expect(matching(requests, /partNumber=/)).toBe(Math.ceil(total / (8 * MiB)))
      expect(report.downloadSha256).toBe(report.metadata.sha256)
      // Seen from another client: the object is there, whole, with the metadata finalize gave it.
      const s3 = yield* ObjectStore
      expect(yield* s3.head(key)).toEqual({ key, size: total, metadata: report.metadata })
      expect(report.metadata["original-size"]).toBe(String(total))
    }).pipe(Effect.provide(s3Store())), 180_000)
})
