/** Bytes and byte streams for the tests of what reads them. */
import { Chunk, Stream } from "effect"

export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

/** `bytes` cut into pieces of `size` bytes, the last one shorter (one piece if `size` is Infinity; none if empty). */
export const piecesOf = (bytes: Uint8Array, size: number): Array<Uint8Array> => {
  const pieces: Array<Uint8Array> = []
  for (let at = 0; at < bytes.length; at += size) pieces.push(bytes.subarray(at, at + size))
  return pieces
}

/** `bytes` as a stream of `size`-byte pieces, each a chunk of its own (as reads from a socket come). */
export const chunksOf = (bytes: Uint8Array, size: number): Stream.Stream<Uint8Array> =>
  Stream.fromChunks(...piecesOf(bytes, size).map((piece) => Chunk.of(piece)))

/** The bytes of `chunks`, joined. */
export const concat = (chunks: Chunk.Chunk<Uint8Array>): Uint8Array => Buffer.concat(Chunk.toArray(chunks))
