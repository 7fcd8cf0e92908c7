import { NodeStream } from "@effect/platform-node"
import { InvalidPayload } from "@telemetry/domain"
import { Effect, Option, Stream } from "effect"
import { pipeline, type Transform } from "node:stream"
import { createGunzip, createGzip } from "node:zlib"

/**
 * Pipes through a zlib transform, with backpressure: the source is pulled only as fast as the output is read
 * (Node's `pipeline` from a pull-based Readable), so a slow reader — a database that blocks a COPY — holds the
 * source back instead of buffering it whole. When the source fails, zlib sees its input end early and fails too
 * ("unexpected end of file"); the source's error is the one that tells what happened, so it is the one kept.
 */
const throughZlib = <E, R, E2, Z extends Transform>(
  self: Stream.Stream<Uint8Array, E, R>,
  transform: () => Z,
  onZlibError: (cause: Error) => Stream.Stream<never, E2>,
  /** Checks the transform once its output ended, given the bytes that went into it. */
  onEnd: (zlib: Z, bytesIn: number) => Effect.Effect<void, E2> = () => Effect.void
): Stream.Stream<Uint8Array, E | E2, R> =>
  Stream.unwrap(Effect.suspend(() => {
    let sourceFailure = Option.none<E>()
    let bytesIn = 0
    let zlib: Z | undefined
    const source = self.pipe(
      Stream.tapError((e) => Effect.sync(() => (sourceFailure = Option.some(e)))),
      Stream.mapChunks((chunk) => {
        for (const bytes of chunk) bytesIn += bytes.length
        return chunk
      })
    )
    return Effect.map(NodeStream.toReadable(source), (input) =>
      NodeStream.fromReadable<Error, Uint8Array>(() => {
        zlib = transform()
        // Errors of either end reach the output, where they are read below.
        pipeline(input, zlib, () => {})
        return zlib
      }, (cause) => cause as Error).pipe(
        Stream.catchAll((e): Stream.Stream<Uint8Array, E | E2> =>
          Option.isSome(sourceFailure) ? Stream.fail(sourceFailure.value) : onZlibError(e)
        ),
        Stream.concat(Stream.execute(Effect.suspend(() => (zlib === undefined ? Effect.void : onEnd(zlib, bytesIn)))))
      ))
  }))

/**
 * Decompresses gzip; bytes that are not gzip fail with InvalidPayload, and so do bytes after its end (zlib reads
 * further gzip members, and quietly drops anything else: a one-reading payload could carry 100 MiB of zeros).
 */
export const gunzip = <E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | InvalidPayload, R> =>
  throughZlib(
    self,
    () => createGunzip({ chunkSize: 128 * 1024 }),
    (cause) => Stream.fail(new InvalidPayload({ message: `body is not valid gzip: ${cause.message}` })),
    (zlib, bytesIn) =>
      zlib.bytesWritten < bytesIn
        ? Effect.fail(new InvalidPayload({
          message: `body has ${bytesIn - zlib.bytesWritten} bytes after the end of its gzip data`
        }))
        : Effect.void
  )

/** Compresses to gzip at `level`; zlib failing to compress is a defect, not an error of the input. */
export const gzip = (level: number) => <E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E, R> =>
  throughZlib(self, () => createGzip({ level }), Stream.die)
