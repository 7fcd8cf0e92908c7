/**
 * Run as its own process by `s3-object-store.test.ts` (so the test runner's memory does not blur the figures):
 * streams PROBE_BYTES of generated data into the S3 store the environment names (with the store's defaults for
 * everything else), reads it back, and prints one JSON line with the RSS growth and the rates.
 */
import { ObjectStore } from "@telemetry/domain"
import { Config, Effect, Logger, Stream } from "effect"
import { createHash } from "node:crypto"
import * as S3ObjectStore from "../../src/storage/s3/S3ObjectStore.js"

const total = Number(process.env.PROBE_BYTES)
const key = process.env.PROBE_KEY!
const CHUNK = 64 * 1024

/**
 * One buffer, refilled for each chunk. The store must copy a chunk before it pulls the next (had it kept one, the
 * read-back hash would differ), and fresh chunks would measure how late V8 collects them instead: generating
 * 100 MB in fresh 64 KiB buffers alone grows RSS by ~75 MB.
 */
const chunk = Buffer.alloc(CHUNK)
const generated = Stream.range(0, Math.ceil(total / CHUNK) - 1, 1).pipe(
  Stream.map((i) => chunk.fill(`chunk ${i};`).subarray(0, Math.min(CHUNK, total - i * CHUNK)))
)

let peak = 0
const sample = () => (peak = Math.max(peak, process.memoryUsage().rss))
/** RSS growth while `effect` runs, sampled every 5 ms, and the seconds it took. */
const measured = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const baseline = process.memoryUsage().rss
    peak = baseline
    const timer = setInterval(sample, 5)
    const started = performance.now()
    const result = yield* effect.pipe(Effect.ensuring(Effect.sync(() => clearInterval(timer))))
    const seconds = (performance.now() - started) / 1000
    sample()
    return { result, baseline, growth: peak - baseline, seconds }
  })

const program = Effect.gen(function*() {
  const store = yield* ObjectStore
  // Loads the code paths and opens a connection, which the measurement should not count.
  yield* store.put(`${key}.warm-up`, Stream.make(Buffer.from("warm-up")), Effect.succeed({}))
  yield* Stream.runDrain(store.get(`${key}.warm-up`))
  yield* store.delete(`${key}.warm-up`)

  const sent = createHash("sha256")
  const upload = yield* measured(
    store.put(
      key,
      generated.pipe(Stream.tap((chunk) => Effect.sync(() => sent.update(chunk)))),
      Effect.sync(() => ({ sha256: sent.digest("hex"), "original-size": String(total) }))
    )
  )
  // The kernel's high-water mark misses no short peak; it only grows, so it is read before the download.
  const uploadPeak = process.resourceUsage().maxRSS * 1024
  const received = createHash("sha256")
  const download = yield* measured(
    store.get(key).pipe(Stream.runFold(0, (chunks, chunk) => (received.update(chunk), chunks + 1)))
  )
  return {
    size: upload.result.size,
    metadata: upload.result.metadata,
    uploadPeakGrowth: uploadPeak - upload.baseline,
    uploadSampledGrowth: upload.growth,
    uploadMBps: total / 1e6 / upload.seconds,
    downloadSha256: received.digest("hex"),
    downloadChunks: download.result,
    downloadSampledGrowth: download.growth,
    downloadMBps: total / 1e6 / download.seconds
  }
})

// Stdout is for the report: logs go to stderr.
const logsToStderr = Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger))

const store = S3ObjectStore.layerConfig({
  endpoint: Config.string("S3_ENDPOINT"),
  accessKey: Config.string("S3_ACCESS_KEY"),
  secretKey: Config.redacted("S3_SECRET_KEY"),
  region: Config.string("S3_REGION"),
  bucket: Config.string("STORAGE_BUCKET")
})

Effect.runPromise(program.pipe(Effect.provide(store), Effect.provide(logsToStderr))).then(
  (report) => console.log(JSON.stringify(report)),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
