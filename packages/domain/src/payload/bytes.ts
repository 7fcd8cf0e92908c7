import { NodeStream } from "@effect/platform-node"
import { Effect, Stream } from "effect"
import { createGunzip } from "node:zlib"
import { InvalidPayload, PayloadTooLarge } from "../errors.js"

/** Fails the stream with PayloadTooLarge as soon as more than `limit` bytes went through. */
export const limitBytes = (limit: number, what: string) =>
<E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | PayloadTooLarge, R> =>
  Stream.suspend(() => {
    let seen = 0
    return Stream.mapChunksEffect(self, (chunk) => {
      for (const bytes of chunk) seen += bytes.length
      return seen > limit
        ? Effect.fail(new PayloadTooLarge({ message: `${what} is larger than ${limit} bytes`, limit }))
        : Effect.succeed(chunk)
    })
  })

/** Decompresses gzip; bytes that are not gzip fail with InvalidPayload. */
export const gunzip = <E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | InvalidPayload, R> =>
  NodeStream.pipeThroughDuplex(
    self,
    () => createGunzip({ chunkSize: 128 * 1024 }),
    (cause) => new InvalidPayload({ message: `body is not valid gzip: ${(cause as Error).message ?? cause}` })
  )
