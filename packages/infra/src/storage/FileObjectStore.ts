import { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { ObjectNotFound, ObjectStore, StorageError, type StoredObject } from "@telemetry/domain"
import { Clock, Config, type ConfigError, Duration, Effect, Layer, Option, Stream } from "effect"
import { randomUUID } from "node:crypto"
import * as SpaceWatch from "./SpaceWatch.js"

export interface FileStoreOptions {
  /** The folder the buckets are folders of. */
  readonly root: string
  readonly bucket: string
}

const META = ".meta.json"
const PENDING = ".pending"
/**
 * How long a pending file must have gone unwritten to be a crash's leftover: one written to lately may be an upload
 * in flight in a process sharing the folder (`pnpm status` opens it while `pnpm start` runs), and an upload that
 * stalls is refused long before (MIN_BODY_RATE).
 */
const ABANDONED_AFTER = Duration.hours(1)

/**
 * Objects as files under `<root>/<bucket>/<key>`, metadata in a `<key>.meta.json` sidecar. Uploads go to
 * `.pending/` and are renamed into place once finalized, so a crash mid-upload leaves no object behind.
 */
export const make = (options: FileStoreOptions) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const base = path.resolve(options.root, options.bucket)
    const pending = path.join(base, PENDING)
    yield* fs.makeDirectory(pending, { recursive: true }).pipe(
      Effect.mapError((cause) => storageError("put", pending, cause))
    )
    // Leftovers of uploads cut short by a crash were never acknowledged: they are not data.
    const now = yield* Clock.currentTimeMillis
    const abandoned = (file: string) =>
      Effect.map(fs.stat(file), (info) =>
        Option.match(info.mtime, { onNone: () => true, onSome: (written) => now - written.getTime() > Duration.toMillis(ABANDONED_AFTER) }))
    yield* Effect.forEach(yield* fs.readDirectory(pending).pipe(Effect.orElseSucceed(() => [])), (name) => {
      const file = path.join(pending, name)
      return Effect.whenEffect(fs.remove(file, { recursive: true }), abandoned(file)).pipe(Effect.ignore)
    }, { discard: true })

    const fileOf = (key: string) => {
      const file = path.resolve(base, key)
      return file.startsWith(base + path.sep) ? Effect.succeed(file) : Effect.die(`object key escapes the store: ${key}`)
    }
    const head = (key: string) =>
      Effect.gen(function*() {
        const file = yield* fileOf(key)
        const stat = yield* fs.stat(file)
        const metadata = JSON.parse(yield* fs.readFileString(file + META)) as Record<string, string>
        return { key, size: Number(stat.size), metadata } satisfies StoredObject
      }).pipe(Effect.mapError((cause) => notFoundOr("head", key, cause)))

    return yield* SpaceWatch.watch(ObjectStore.of({
      storageType: "filesystem",
      bucket: options.bucket,
      put: (key, body, finalize) =>
        Effect.gen(function*() {
          const file = yield* fileOf(key)
          const temp = path.join(pending, randomUUID())
          const commit = Effect.gen(function*() {
            yield* Stream.run(body, fs.sink(temp))
            const metadata = yield* finalize
            yield* fs.makeDirectory(path.dirname(file), { recursive: true })
            yield* fs.writeFileString(file + META, JSON.stringify(metadata))
            yield* fs.rename(temp, file)
            const { size } = yield* fs.stat(file)
            return { key, size: Number(size), metadata }
          })
          return yield* commit.pipe(
            Effect.catchIf(isPlatformError, (cause) => Effect.fail(storageError("put", key, cause))),
            Effect.onError(() => fs.remove(temp).pipe(Effect.ignore))
          )
        }),
      get: (key) =>
        Stream.unwrap(
          Effect.map(fileOf(key), (file) =>
            fs.stream(file, { chunkSize: 256 * 1024 }).pipe(Stream.mapError((cause) => notFoundOr("get", key, cause))))
        ),
      head,
      delete: (key) =>
        Effect.flatMap(fileOf(key), (file) =>
          Effect.all([fs.remove(file), fs.remove(file + META)], { discard: true }).pipe(
            Effect.catchIf(
              (e) => e._tag === "SystemError" && e.reason === "NotFound",
              () => Effect.void
            ),
            Effect.mapError((cause) => storageError("delete", key, cause))
          )),
      list: (prefix) =>
        Stream.fromIterableEffect(
          fs.readDirectory(base, { recursive: true }).pipe(
            Effect.catchIf((e) => e._tag === "SystemError" && e.reason === "NotFound", () => Effect.succeed([])),
            Effect.mapError((cause) => storageError("list", prefix, cause))
          )
        ).pipe(
          Stream.map((name) => name.split(path.sep).join("/")),
          Stream.filter((key) => key.startsWith(prefix) && !key.endsWith(META) && !key.startsWith(PENDING)),
          Stream.mapEffect((key) => head(key).pipe(Effect.option)),
          Stream.filterMap((found) => found)
        ),
      check: fs.access(pending, { writable: true }).pipe(Effect.mapError((cause) => storageError("head", "", cause)))
    }))
  })

const isPlatformError = (u: unknown): u is PlatformError =>
  typeof u === "object" && u !== null && "_tag" in u && (u._tag === "SystemError" || u._tag === "BadArgument")

const storageError = (operation: StorageError["operation"], key: string, cause: PlatformError) =>
  new StorageError({ operation, key, message: cause.message, full: SpaceWatch.isNoSpace(cause), cause })

const notFoundOr = (operation: StorageError["operation"], key: string, cause: PlatformError) =>
  cause._tag === "SystemError" && cause.reason === "NotFound"
    ? new ObjectNotFound({ key })
    : storageError(operation, key, cause)

/** Files under `options.root`; the embedded default. */
export const layer = (
  options: FileStoreOptions
): Layer.Layer<ObjectStore, StorageError, FileSystem.FileSystem | Path.Path> => Layer.effect(ObjectStore, make(options))

/** `layer` with its options read from `config`. */
export const layerConfig = (
  config: Config.Config.Wrap<FileStoreOptions>
): Layer.Layer<ObjectStore, StorageError | ConfigError.ConfigError, FileSystem.FileSystem | Path.Path> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))
