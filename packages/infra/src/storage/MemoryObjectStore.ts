import { ObjectNotFound, ObjectStore, type StoredObject } from "@telemetry/domain"
import { Chunk, Effect, Layer, Option, Stream } from "effect"

interface Entry extends StoredObject {
  readonly data: Uint8Array
}

const concat = (chunks: Chunk.Chunk<Uint8Array>): Uint8Array => Buffer.concat(Chunk.toReadonlyArray(chunks))

/** Objects in a Map: for unit tests. */
export const layer = (bucket = "telemetry-raw"): Layer.Layer<ObjectStore> =>
  Layer.sync(ObjectStore, () => {
    const objects = new Map<string, Entry>()
    const find = (key: string) =>
      Option.match(Option.fromNullable(objects.get(key)), {
        onNone: () => Effect.fail(new ObjectNotFound({ key })),
        onSome: Effect.succeed
      })
    const info = ({ key, metadata, size }: Entry): StoredObject => ({ key, metadata, size })
    return {
      storageType: "memory",
      bucket,
      put: (key, body, finalize) =>
        Effect.gen(function*() {
          const data = concat(yield* Stream.runCollect(body))
          const metadata = yield* finalize
          const entry = { key, data, metadata, size: data.length }
          objects.set(key, entry)
          return info(entry)
        }),
      get: (key) => Stream.unwrap(Effect.map(find(key), (entry) => Stream.make(entry.data))),
      head: (key) => Effect.map(find(key), info),
      delete: (key) => Effect.sync(() => void objects.delete(key)),
      list: (prefix) =>
        Stream.suspend(() =>
          Stream.fromIterable(Array.from(objects.values()).filter((e) => e.key.startsWith(prefix)).map(info))
        ),
      check: Effect.void
    }
  })
