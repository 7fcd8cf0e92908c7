/**
 * 3. Footprint: the compiled programs (`pnpm build`, as the image runs them), each its own OS process on s3rver, a
 * fresh mock Kafka cluster and a fresh database: the time from spawn to ready (GET /api/v1/health/ready 200) of an
 * ingest process, a worker and an embedded `pnpm start`; the resident set of the ingest process and the worker when
 * idle; their peak (VmHWM) with one large payload through each.
 */
import { Duration, Effect } from "effect"
import { writeFileSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Readable } from "node:stream"
import { gzippedPayload, payloadChunks, type PayloadSpec, readingsFor } from "./payloads.js"
import { build, compiled, kafka, largePayloads, local } from "./services.js"
import { AUTH_SECRET, freePort, freshDatabase, MB, pgClient, type Program, progress, token, waitFor } from "./support.js"

export interface MemoryResult {
  readonly payloadBytes: number
  readonly readings: number
  /** RSS in bytes of each process: idle once started (current), and its peak over the payload. */
  readonly ingest: { readonly idle: number; readonly gzip: number; readonly plain: number }
  readonly worker: { readonly idle: number; readonly load: number }
  readonly workerSeconds: number
  /** Seconds from spawn to ready: on the real services' stand-ins, and embedded (a fresh data directory). */
  readonly startup: { readonly ingest: number; readonly worker: number; readonly embedded: number }
}

/** Starts the peak over from the current RSS (Linux 4.0+), so each phase's peak is its own. */
const resetPeak = (app: Program) => Effect.sync(() => writeFileSync(`/proc/${app.pid}/clear_refs`, "5"))

/** The current resident set: the peak, started over from it. */
const currentRss = (app: Program) => Effect.map(resetPeak(app), () => app.peakRss())

/** `pnpm start`'s compiled program on embedded parts in a fresh directory: the seconds it takes to be ready. */
const embeddedStartup = Effect.gen(function*() {
  const dir = yield* Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "bench-embedded-"))),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  )
  const port = yield* Effect.promise(freePort)
  const env = { AUTH_SECRET, PORT: String(port), STORAGE_DIR: join(dir, "objects"), EMBEDDED_DB_DIR: join(dir, "pg") }
  return (yield* compiled("main/start.js", env, local(port))).seconds
}).pipe(Effect.scoped)

export const memoryBenchmark = (options: { readonly storage: Record<string, string>; readonly payloadBytes: number }) =>
  Effect.gen(function*() {
    const db = yield* freshDatabase
    const queue = yield* kafka
    const env = { ...options.storage, ...queue, ...largePayloads, DATABASE_URL: db.url }
    yield* progress("memory: pnpm build")
    yield* build
    yield* progress("memory: starting an embedded pnpm start in a fresh directory")
    const embedded = yield* embeddedStartup
    yield* progress("memory: starting an ingest process and a worker process")
    const ingestPort = yield* Effect.promise(freePort)
    const base = local(ingestPort)
    const { app: ingest, seconds: ingestStartup } = yield* compiled(
      "main/ingest.js",
      { ...env, AUTH_SECRET, RATE_LIMIT_PER_DEVICE: "100000", MAX_INFLIGHT_UPLOADS: "64", PORT: String(ingestPort) },
      base
    )
    const metricsPort = yield* Effect.promise(freePort)
    const { app: worker, seconds: workerStartup } = yield* compiled(
      "main/worker.js",
      { ...env, METRICS_PORT: String(metricsPort) },
      local(metricsPort)
    )
    // Idle: V8's memory reducer gives the garbage of the start back after some 30 s without work.
    yield* Effect.sleep("45 seconds")
    const idle = { ingest: yield* currentRss(ingest), worker: yield* currentRss(worker) }
    const readings = readingsFor(options.payloadBytes)
    const device = "bench-memory"
    const bearer = yield* token("device", device)

    const send = (spec: PayloadSpec, gzipped: boolean) =>
      Effect.promise(async () => {
        const body = gzipped ? gzippedPayload(spec).stream : Readable.from(payloadChunks(spec))
        const response = await fetch(`${base}/api/v1/telemetry/bulk`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            ...(gzipped ? { "content-encoding": "gzip" } : {}),
            authorization: `Bearer ${bearer}`,
            "x-device-id": device
          },
          body: Readable.toWeb(body) as ReadableStream,
          duplex: "half"
        } as RequestInit)
        const answer = (await response.json()) as { claim_id?: string }
        if (response.status !== 202 || answer.claim_id === undefined) {
          throw new Error(`ingest answered ${response.status}: ${JSON.stringify(answer).slice(0, 300)}`)
        }
        return answer.claim_id
      })

    const spec = (prefix: string): PayloadSpec => ({ readings, prefix, end: Date.now() - 3_600_000, span: 86_400_000 })
    yield* progress(`memory: POSTing ${(options.payloadBytes / MB).toFixed(0)} MB of JSON (${readings.toLocaleString("en")} readings), gzipped`)
    yield* resetPeak(ingest)
    yield* resetPeak(worker)
    const claimId = yield* send(spec("memory-gzip"), true)
    const ingestGzip = ingest.peakRss()

    yield* progress("memory: waiting for the worker to load it")
    const client = yield* pgClient(db.url)
    const start = performance.now()
    yield* waitFor(
      "the worker's load",
      Effect.promise(() => client.query("SELECT readings FROM claim_ledger WHERE claim_id = $1", [claimId])).pipe(
        Effect.filterOrFail((r) => r.rows[0]?.readings != null, () => new Error("not loaded yet"))
      ),
      Duration.minutes(15)
    ).pipe(Effect.mapError((e) => new Error(`${e.message}; the worker printed:\n${worker.output()}`)))
    const workerSeconds = (performance.now() - start) / 1000
    const workerLoad = worker.peakRss()

    yield* progress(`memory: POSTing it again, plain`)
    yield* resetPeak(ingest)
    yield* send(spec("memory-plain"), false)
    const ingestPlain = ingest.peakRss()

    return {
      payloadBytes: options.payloadBytes,
      readings,
      ingest: { idle: idle.ingest, gzip: ingestGzip, plain: ingestPlain },
      worker: { idle: idle.worker, load: workerLoad },
      workerSeconds,
      startup: { ingest: ingestStartup, worker: workerStartup, embedded }
    } satisfies MemoryResult
  })
