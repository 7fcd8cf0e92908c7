import { countPayload, limitBytes, type PayloadConfig, PayloadTooLarge } from "@telemetry/domain"
import { gunzip } from "@telemetry/infra/compression"
import { Effect, Stream } from "effect"
import { createHash } from "node:crypto"

/** What validating one upload needs to know: plain data, so that it can be posted to a validation thread. */
export interface Job {
  readonly gzipped: boolean
  /** Zone of naive reading times: the device account's, else DEFAULT_TIMEZONE. */
  readonly timeZone: string
  /** Epoch ms; the time of readings that have none. */
  readonly receivedAt: number
  readonly payload: PayloadConfig
  /** Decompressed bytes a gzip body may expand to per byte sent, past its first MiB. */
  readonly maxCompressionRatio: number
}

/** A valid body's facts. */
export interface Validated {
  readonly items: number
  readonly readings: number
  /** Bytes of JSON (after gunzip). */
  readonly originalSize: number
  /** The JSON's sha256, to tell a retry from another body. */
  readonly sha256: string
}

/** Small bodies may compress better than the ratio (repetitive JSON) and cost nothing to expand. */
const RATIO_FLOOR = 1024 * 1024

/**
 * Reads a body as sent (gzip or plain) to its end: decompresses it, refusing a likely gzip bomb, hashes its JSON,
 * and checks and counts its items and readings (without building them), with memory bounded by one item (or one
 * part of a large one).
 * `decompressed` hears of each piece of JSON as it comes.
 */
export const validate = <E, R>(
  sent: Stream.Stream<Uint8Array, E, R>,
  job: Job,
  decompressed: (bytes: number) => Effect.Effect<void>
) =>
  Effect.suspend(() => {
    const sha256 = createHash("sha256")
    let sentSize = 0
    let originalSize = 0
    const counted = Stream.mapChunks(sent, (chunk) => {
      for (const bytes of chunk) sentSize += bytes.length
      return chunk
    })
    return (job.gzipped ? gunzip(counted) : counted).pipe(
      limitBytes(job.payload.maxDecompressedBytes, "decompressed body"),
      Stream.tap((bytes) => {
        sha256.update(bytes)
        originalSize += bytes.length
        return job.gzipped && originalSize > RATIO_FLOOR && originalSize > job.maxCompressionRatio * sentSize
          ? Effect.fail(
            new PayloadTooLarge({
              message: `gzip body expands more than ${job.maxCompressionRatio} times; refused as a likely gzip bomb`,
              limit: job.maxCompressionRatio
            })
          )
          : decompressed(bytes.length)
      }),
      countPayload({ ...job.payload, timeZone: job.timeZone, receivedAt: job.receivedAt }),
      Stream.runFold({ items: 0, readings: 0 }, (n, item) => ({
        items: n.items + (item.continued ? 0 : 1),
        readings: n.readings + item.readings
      })),
      Effect.map((counts): Validated => ({ ...counts, originalSize, sha256: sha256.digest("hex") }))
    )
  })
