import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { gzipSync } from "node:zlib"
import { gunzip, gzip } from "../src/payload/bytes.js"

const MiB = 1024 * 1024

/** `bytes` as a stream of 64 KiB chunks, counting what was pulled. */
const counted = (bytes: Buffer) => {
  let pulled = 0
  const stream = Stream.fromIterable(Array.from({ length: Math.ceil(bytes.length / (64 * 1024)) }, (_, i) =>
    bytes.subarray(i * 64 * 1024, (i + 1) * 64 * 1024))).pipe(
      Stream.tap((chunk) => Effect.sync(() => (pulled += chunk.length)))
    )
  return { stream, pulled: () => pulled }
}

describe("zlib streams", () => {
  // Random bytes do not compress: input and output sizes are alike, so what was pulled shows what was buffered.
  const raw = randomBytes(32 * MiB)

  it.live("gunzip pulls its source only as fast as its output is read", () =>
    Effect.gen(function*() {
      const source = counted(gzipSync(raw, { level: 1 }))
      const read = yield* source.stream.pipe(
        gunzip,
        Stream.mapChunks((c) => Chunk.of(Chunk.reduce(c, 0, (n, b) => n + b.length))),
        Stream.scan(0, (n, size) => n + size),
        Stream.takeUntil((n) => n >= 4 * MiB),
        Stream.runLast
      )
      expect(read._tag === "Some" && read.value).toBeGreaterThanOrEqual(4 * MiB)
      expect(source.pulled()).toBeLessThan(8 * MiB)
    }))

  it.live("gzip then gunzip gives the bytes back; a failing source fails with its own error", () =>
    Effect.gen(function*() {
      const roundTrip = yield* counted(raw.subarray(0, 3 * MiB)).stream.pipe(gzip(1), gunzip, Stream.runCollect)
      expect(Buffer.concat(Chunk.toReadonlyArray(roundTrip))).toEqual(raw.subarray(0, 3 * MiB))
      const failing = Stream.concat(Stream.make(gzipSync(raw.subarray(0, MiB)).subarray(0, 1000)), Stream.fail("connection reset" as const))
      expect(yield* Effect.flip(Stream.runDrain(gunzip(failing)))).toBe("connection reset")
    }))
})
