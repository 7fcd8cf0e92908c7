import { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { NodeStream } from "@effect/platform-node"
import { Chunk, Data, Effect, Stream } from "effect"
import { createHash } from "node:crypto"

/** A payload file, or standard input, ready to be sent (and sent again on a retry). */
export interface Payload {
  /** The file as found (under the directory given), or "-" for standard input. */
  readonly name: string
  /** Its bytes as read. */
  readonly size: number
  /** Already gzip (its first bytes say so): sent as it is. */
  readonly gzipped: boolean
  /** The sha256 of its bytes: its `Idempotency-Key`, the same for the same file on every run. */
  readonly sha256: string
  /** Its bytes, read afresh by each attempt. */
  readonly bytes: Stream.Stream<Uint8Array, PayloadUnreadable>
}

export class PayloadUnreadable extends Data.TaggedError("PayloadUnreadable")<{
  readonly name: string
  readonly cause: unknown
}> {
  override get message() {
    return `${this.name} cannot be read: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

export class NoPayloadFiles extends Data.TaggedError("NoPayloadFiles")<{ readonly directory: string }> {
  override get message() {
    return `${this.directory} holds no *.json or *.json.gz file`
  }
}

/** The name `send` is given for standard input. */
export const STDIN = "-"

const PAYLOAD_FILE = /\.json(\.gz)?$/i

const isGzip = (bytes: Uint8Array | undefined) => bytes !== undefined && bytes[0] === 0x1f && bytes[1] === 0x8b

/**
 * What `source` names: standard input ("-"), a file, or a directory's `*.json` and `*.json.gz` files (not those
 * of its subdirectories), in name order.
 */
export const namesOf = (source: string) =>
  Effect.gen(function*() {
    if (source === STDIN) return [STDIN]
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    if ((yield* fs.stat(source)).type !== "Directory") return [source]
    const files: Array<string> = []
    for (const name of (yield* fs.readDirectory(source)).filter((n) => PAYLOAD_FILE.test(n)).sort()) {
      const file = path.join(source, name)
      if ((yield* fs.stat(file)).type === "File") files.push(file)
    }
    if (files.length === 0) return yield* new NoPayloadFiles({ directory: source })
    return files
  })

/** Hashed in one pass, then streamed from the file for each attempt: a large file is never held in memory. */
const fromFile = (name: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const bytes = fs.stream(name, { chunkSize: 64 * 1024 }).pipe(
      Stream.mapError((cause: PlatformError) => new PayloadUnreadable({ name, cause }))
    )
    const read = yield* Stream.runFold(bytes, { hash: createHash("sha256"), size: 0, head: undefined as Uint8Array | undefined }, (s, chunk) => {
      s.hash.update(chunk)
      return { hash: s.hash, size: s.size + chunk.length, head: s.head ?? chunk }
    })
    return { name, size: read.size, gzipped: isGzip(read.head), sha256: read.hash.digest("hex"), bytes } satisfies Payload
  })

/** Standard input can be read once: it is kept in memory for the retries. */
const fromStdin = Effect.gen(function*() {
  const chunks = yield* Stream.runCollect(
    NodeStream.fromReadable(() => process.stdin, (cause) => new PayloadUnreadable({ name: STDIN, cause }))
  )
  const body = Buffer.concat(Chunk.toReadonlyArray(chunks))
  return {
    name: STDIN,
    size: body.length,
    gzipped: isGzip(body),
    sha256: createHash("sha256").update(body).digest("hex"),
    bytes: Stream.make(new Uint8Array(body))
  } satisfies Payload
})

/** The payload named `name` (see `namesOf`). */
export const read = (name: string) => (name === STDIN ? fromStdin : fromFile(name))
