import { Effect, Stream } from "effect"
import { PayloadTooLarge } from "../errors.js"

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
