import { describe, expect, it } from "@effect/vitest"
import { InvalidPayload, limitBytes, PayloadTooLarge } from "@telemetry/domain"
import { chunksOf, concat, piecesOf, utf8 } from "@telemetry/domain/testing"
import { Chunk, Effect, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { gzipSync } from "node:zlib"
import { gunzip, gzip } from "../src/compression.js"

const MiB = 1024 * 1024

/** `bytes` as a stream of 64 KiB chunks, counting what was pulled. */
const counted = (bytes: Buffer) => {
  let pulled = 0
  const stream = Stream.fromIterable(piecesOf(bytes, 64 * 1024)).pipe(Stream.tap((chunk) => Effect.sync(() => (pulled += chunk.length))))
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

const payload = JSON.stringify([{ equip_uuid: "freezer-1", sensor: [{ sensor_uuid: "t1", valor: -18.5 }] }])

describe("gunzip", () => {
  it.effect("gunzip round-trips real gzip data, whole or in small chunks", () =>
    Effect.gen(function*() {
      const original = utf8(payload.repeat(50))
      const zipped = gzipSync(original)
      for (const size of [zipped.length, 100, 7]) {
        const out = yield* chunksOf(zipped, size).pipe(gunzip, Stream.runCollect)
        expect(Buffer.from(concat(out)).equals(Buffer.from(original)), `chunk size ${size}`).toBe(true)
      }
    }))

  it.effect("gunzip fails with InvalidPayload on bytes that are not gzip", () =>
    Effect.gen(function*() {
      const error = yield* Stream.make(utf8(payload)).pipe(gunzip, Stream.runCollect, Effect.flip)
      expect(error).toBeInstanceOf(InvalidPayload)
      expect(error.message).toMatch(/^body is not valid gzip: /)
    }))

  it.effect("gunzip fails with InvalidPayload on truncated gzip", () =>
    Effect.gen(function*() {
      const zipped = gzipSync(utf8(payload))
      const error = yield* Stream.make(zipped.subarray(0, zipped.length - 10)).pipe(gunzip, Stream.runCollect, Effect.flip)
      expect(error._tag).toBe("InvalidPayload")
    }))

  it.effect("gunzip keeps the source's error rather than zlib's", () =>
    Effect.gen(function*() {
      const zipped = gzipSync(utf8(payload))
      const source = Stream.concat(Stream.make(zipped.subarray(0, 20)), Stream.fail(new PayloadTooLarge({ message: "raw", limit: 20 })))
      const error = yield* source.pipe(gunzip, Stream.runCollect, Effect.flip)
      expect(error).toMatchObject({ _tag: "PayloadTooLarge", limit: 20 })
    }))

  it.effect("gunzip then limitBytes bounds the decompressed size", () =>
    Effect.gen(function*() {
      const zipped = gzipSync(new Uint8Array(100_000))
      const error = yield* Stream.make(zipped).pipe(gunzip, limitBytes(50_000, "decompressed body"), Stream.runDrain, Effect.flip)
      expect(error).toMatchObject({ _tag: "PayloadTooLarge", message: "decompressed body is larger than 50000 bytes" })
    }))
})
