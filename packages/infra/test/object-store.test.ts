import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { InvalidPayload, ObjectStore } from "@telemetry/domain"
import { Chunk, Effect, Layer, Stream } from "effect"
import { join } from "node:path"
import * as FileObjectStore from "../src/storage/FileObjectStore.js"
import * as MemoryObjectStore from "../src/storage/MemoryObjectStore.js"
import { s3Store } from "./support/s3.js"

const fileStore = Layer.unwrapScoped(
  Effect.map(
    Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "telemetry-objects-" })),
    (root) => Layer.effect(ObjectStore, FileObjectStore.make({ root, bucket: "telemetry-raw" }))
  )
).pipe(Layer.provideMerge(NodeContext.layer))

const bytes = (text: string) => new TextEncoder().encode(text)
const read = (key: string) =>
  Effect.flatMap(ObjectStore, (s) => Stream.runCollect(s.get(key))).pipe(
    Effect.map((chunks) => Buffer.concat(Chunk.toReadonlyArray(chunks)).toString())
  )
const keys = Effect.flatMap(ObjectStore, (s) =>
  Effect.map(Stream.runCollect(s.list("telemetry/")), (c) => Chunk.toReadonlyArray(c).map((o) => o.key).sort()))

describe.each([
  ["memory", MemoryObjectStore.layer()],
  ["filesystem", fileStore],
  ["s3", s3Store()]
] as const)("ObjectStore on %s", (_, layer) => {
  it.scoped("commits an object with the metadata finalize returned, and reads it back", () =>
    Effect.gen(function*() {
      const store = yield* ObjectStore
      const object = yield* store.put("telemetry/a/1.json.gz", Stream.make(bytes("hello "), bytes("world")), Effect.succeed({ k: "v" }))
      expect(object).toEqual({ key: "telemetry/a/1.json.gz", size: 11, metadata: { k: "v" } })
      expect(yield* read(object.key)).toBe("hello world")
      expect(yield* store.head(object.key)).toEqual(object)
      expect(yield* keys).toEqual(["telemetry/a/1.json.gz"])
      yield* store.delete(object.key)
      yield* store.delete(object.key)
      expect(yield* keys).toEqual([])
      expect((yield* Effect.flip(store.head(object.key)))._tag).toBe("ObjectNotFound")
      expect((yield* Effect.flip(read(object.key)))._tag).toBe("ObjectNotFound")
    }).pipe(Effect.provide(layer)))

  it.scoped("answers its check while reachable", () => Effect.flatMap(ObjectStore, (s) => s.check).pipe(Effect.provide(layer)))

  it.scoped("commits an empty object and reads it back empty", () =>
    Effect.gen(function*() {
      const store = yield* ObjectStore
      const object = yield* store.put("telemetry/e/1.json.gz", Stream.empty, Effect.succeed({}))
      expect(object).toEqual({ key: "telemetry/e/1.json.gz", size: 0, metadata: {} })
      expect(yield* read(object.key)).toBe("")
      expect(yield* keys).toEqual(["telemetry/e/1.json.gz"])
    }).pipe(Effect.provide(layer)))

  it.scoped("commits nothing when finalize or the body fails", () =>
    Effect.gen(function*() {
      const store = yield* ObjectStore
      const refused = yield* Effect.flip(
        store.put("telemetry/b/1.json.gz", Stream.make(bytes("x")), Effect.fail(new InvalidPayload({ message: "no" })))
      )
      expect(refused._tag).toBe("InvalidPayload")
      const broken = yield* Effect.flip(
        store.put("telemetry/b/2.json.gz", Stream.concat(Stream.make(bytes("x")), Stream.fail("cut")), Effect.succeed({}))
      )
      expect(broken).toBe("cut")
      expect(yield* keys).toEqual([])
    }).pipe(Effect.provide(layer)))
})

describe("FileObjectStore", () => {
  it.scopedLive("drops uploads a crash left pending, not those written to lately, and refuses keys outside the store", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const root = yield* fs.makeTempDirectoryScoped({ prefix: "telemetry-objects-" })
      const pending = join(root, "telemetry-raw", ".pending")
      yield* fs.makeDirectory(pending, { recursive: true })
      yield* fs.writeFileString(join(pending, "half-an-upload"), "partial")
      const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000)
      yield* fs.utimes(join(pending, "half-an-upload"), twoHoursAgo, twoHoursAgo)
      // Another process's upload in flight (a server's, while `pnpm status` opens the store).
      yield* fs.writeFileString(join(pending, "in-flight"), "streaming")
      const store = yield* FileObjectStore.make({ root, bucket: "telemetry-raw" })
      expect(yield* fs.readDirectory(pending)).toEqual(["in-flight"])
      const escape = yield* Effect.exit(store.put("../outside", Stream.make(bytes("x")), Effect.succeed({})))
      expect(escape._tag).toBe("Failure")
      expect(yield* fs.exists(join(root, "outside"))).toBe(false)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("its check fails, saying why, once its folder is gone", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const root = yield* fs.makeTempDirectoryScoped({ prefix: "telemetry-objects-" })
      const store = yield* FileObjectStore.make({ root, bucket: "telemetry-raw" })
      yield* store.check
      yield* fs.remove(join(root, "telemetry-raw"), { recursive: true })
      expect(yield* Effect.flip(store.check)).toMatchObject({ _tag: "StorageError", message: expect.stringContaining("ENOENT") })
    }).pipe(Effect.provide(NodeContext.layer)))
})
