import { FileSystem } from "@effect/platform"
import { DeadLetter, type QueueError } from "@telemetry/domain"
import { Effect, Either, Ref, Schema } from "effect"
import { queueError } from "../QueueErrors.js"

/** Where the in-process queue keeps its dead letters. */
export interface DeadLetterStore {
  readonly append: (letter: DeadLetter) => Effect.Effect<void, QueueError>
  readonly readAll: Effect.Effect<ReadonlyArray<DeadLetter>, QueueError>
}

const encodeLine = Schema.encodeSync(Schema.parseJson(DeadLetter))
const decodeLine = Schema.decodeUnknownEither(Schema.parseJson(DeadLetter))

/**
 * One JSON line per letter, appended and synced to disk before the claim counts as acknowledged. A line cut short
 * by a crash is skipped when reading.
 */
export const inFile = (path: string): Effect.Effect<DeadLetterStore, never, FileSystem.FileSystem> =>
  Effect.map(FileSystem.FileSystem, (fs) => ({
    append: (letter) =>
      Effect.scoped(Effect.gen(function*() {
        const file = yield* fs.open(path, { flag: "a" })
        yield* file.writeAll(new TextEncoder().encode(`${encodeLine(letter)}\n`))
        yield* file.sync
      })).pipe(Effect.mapError(queueError("ack", `cannot write a dead letter to ${path}`))),
    readAll: fs.readFileString(path).pipe(
      Effect.catchTag("SystemError", (e) => e.reason === "NotFound" ? Effect.succeed("") : Effect.fail(e)),
      Effect.mapError(queueError("take", `cannot read the dead letters in ${path}`)),
      Effect.flatMap((text) =>
        Effect.forEach(text.split("\n").filter((line) => line.length > 0), (line) =>
          Either.match(decodeLine(line), {
            onLeft: (e) => Effect.as(Effect.logWarning(`skipped an unreadable dead letter in ${path}: ${e.message}`), []),
            onRight: (letter) => Effect.succeed([letter])
          }))
      ),
      Effect.map((letters) => letters.flat())
    )
  }))

/** Dead letters for the life of the process, for an in-process queue without a directory (tests). */
export const inMemory: Effect.Effect<DeadLetterStore> = Effect.map(Ref.make<ReadonlyArray<DeadLetter>>([]), (letters) => ({
  append: (letter) => Ref.update(letters, (all) => [...all, letter]),
  readAll: Ref.get(letters)
}))
