/**
 * 3. Memory: the peak resident set (VmHWM) of an ingest process taking one large payload, and of a worker process
 * loading it, each its own OS process as deployed (`pnpm start` with RUN_WORKER=false, `pnpm worker`), on s3rver,
 * a fresh mock Kafka cluster and a fresh database.
 */
import { Duration, Effect } from "effect"
import { writeFileSync } from "node:fs"
import { Readable } from "node:stream"
import { gzippedPayload, payloadChunks, type PayloadSpec, readingsFor } from "./payloads.js"
import { ingestApp, kafka, largePayloads, workerApp } from "./services.js"
import { freshDatabase, MB, pgClient, type Program, progress, token, waitFor } from "./support.js"

export interface MemoryResult {
  readonly payloadBytes: number
  readonly readings: number
  /** Peak RSS in bytes of each process: when started and idle, and over the payload. */
  readonly ingest: { readonly idle: number; readonly gzip: number; readonly plain: number }
  readonly worker: { readonly idle: number; readonly load: number }
  readonly workerSeconds: number
}

/** Starts the peak over from the current RSS (Linux 4.0+), so each phase's peak is its own. */
const resetPeak = (app: Program) => Effect.sync(() => writeFileSync(`/proc/${app.pid}/clear_refs`, "5"))

export const memoryBenchmark = (options: { readonly storage: Record<string, string>; readonly payloadBytes: number }) =>
  Effect.gen(function*() {
    const db = yield* freshDatabase
    const queue = yield* kafka
    const env = { ...options.storage, ...queue, ...largePayloads, DATABASE_URL: db.url }
    yield* progress("memory: starting an ingest process and a worker process")
    const { app: ingest, base } = yield* ingestApp(env)
    const worker = yield* workerApp(env)
    // Settled: migrations ran, the consumer is joining its group.
    yield* Effect.sleep("3 seconds")
    const idle = { ingest: ingest.peakRss(), worker: worker.peakRss() }
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
      workerSeconds
    } satisfies MemoryResult
  })
