import { DeadLetter, QueueError } from "@telemetry/domain"
import { Effect, Either, Ref, Schema } from "effect"
import { open, readFile } from "node:fs/promises"

/** Where the in-process queue keeps its dead letters. */
export interface DeadLetterStore {
  readonly append: (letter: DeadLetter) => Effect.Effect<void, QueueError>
  readonly readAll: Effect.Effect<ReadonlyArray<DeadLetter>, QueueError>
}

const encodeLine = Schema.encodeSync(Schema.parseJson(DeadLetter))
const decodeLine = Schema.decodeUnknownEither(Schema.parseJson(DeadLetter))

const failure = (operation: QueueError["operation"], message: string) => (cause: unknown) =>
  new QueueError({ operation, message: `${message}: ${(cause as Error)?.message ?? cause}`, cause })

/**
 * One JSON line per letter, appended and synced to disk before the claim counts as acknowledged. A line cut short
 * by a crash is skipped when reading.
 */
export const inFile = (path: string): DeadLetterStore => ({
  append: (letter) =>
    Effect.tryPromise({
      try: async () => {
        const file = await open(path, "a")
        try {
          await file.write(`${encodeLine(letter)}\n`)
          await file.sync()
        } finally {
          await file.close()
        }
      },
      catch: failure("ack", `cannot write a dead letter to ${path}`)
    }),
  readAll: Effect.tryPromise({
    try: () => readFile(path, "utf8").catch((e) => (e?.code === "ENOENT" ? "" : Promise.reject(e))),
    catch: failure("take", `cannot read the dead letters in ${path}`)
  }).pipe(
    Effect.flatMap((text) =>
      Effect.forEach(text.split("\n").filter((line) => line.length > 0), (line) =>
        Either.match(decodeLine(line), {
          onLeft: (e) => Effect.as(Effect.logWarning(`skipped an unreadable dead letter in ${path}: ${e.message}`), []),
          onRight: (letter) => Effect.succeed([letter])
        }))
    ),
    Effect.map((letters) => letters.flat())
  )
})

/** Dead letters for the life of the process, for an in-process queue without a directory (tests). */
export const inMemory: Effect.Effect<DeadLetterStore> = Effect.map(Ref.make<ReadonlyArray<DeadLetter>>([]), (letters) => ({
  append: (letter) => Ref.update(letters, (all) => [...all, letter]),
  readAll: Ref.get(letters)
}))
