/**
 * 2. Ingest: 10 MB payloads POSTed to the ingest service (compiled, its own process, on s3rver, the mock Kafka
 * cluster and PostgreSQL), gzip and plain bodies, one at a time and eight at once; beside its two floors, in
 * alternating rounds: a raw PUT of the same bytes to the same bucket with minio's client, and the least validation can cost —
 * gunzip (gzip bodies) and `JSON.parse` of the same bytes in this process, on one thread, one at a time. At a
 * concurrency over 1, also that parse on every core at once (a worker thread each): what the machine's cores give
 * together, which is less than one core's rate times their number when parsing's allocations contend.
 */
import { Effect } from "effect"
import * as Minio from "minio"
import { randomUUID } from "node:crypto"
import { availableParallelism } from "node:os"
import { Worker } from "node:worker_threads"
import { gunzipSync, gzipSync } from "node:zlib"
import { payloadBuffer, readingsFor } from "./payloads.js"
import { ingestApp, kafka } from "./services.js"
import { freshDatabase, MB, percentile, progress, token } from "./support.js"

export interface Latencies {
  readonly p50: number
  readonly p95: number
  /** MB of JSON payload per second over the whole batch (the gzip bodies stand for their 10 MB of JSON too). */
  readonly mbPerSecond: number
  readonly requests: number
}

export interface IngestResult {
  /** Bytes of JSON in each request. */
  readonly payloadBytes: number
  readonly rows: ReadonlyArray<IngestRow>
}

export interface IngestRow {
  readonly body: "gzip" | "plain"
  readonly concurrency: number
  readonly bodyBytes: number
  readonly ingest: Latencies | { readonly error: string }
  readonly put: Latencies
  /** In-process gunzip + `JSON.parse` of the body, one thread, one at a time whatever the concurrency. */
  readonly parse: Latencies
  /** The same on every core at once, one worker thread each (concurrency over 1). */
  readonly parseAllCores?: Latencies
}

interface Request {
  /** Milliseconds the request took. */
  readonly send: () => Promise<number>
}

/** Runs the requests `concurrency` at a time; answers their latencies and the batch's wall time. */
const batch = (requests: ReadonlyArray<Request>, concurrency: number) =>
  Effect.promise(async () => {
    const latencies: Array<number> = []
    let next = 0
    const start = performance.now()
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < requests.length) latencies.push(await requests[next++]!.send())
    }))
    return { latencies, wallMs: performance.now() - start }
  })

/** A worker thread's program: gunzip (when gzipped) and `JSON.parse` its body `count` times; posts the latencies. */
const PARSER = `
const { parentPort, workerData } = require("node:worker_threads")
const { gunzipSync } = require("node:zlib")
const body = Buffer.from(workerData.body.buffer, workerData.body.byteOffset, workerData.body.byteLength)
parentPort.on("message", (count) => {
  const latencies = []
  for (let i = 0; i < count; i++) {
    const start = performance.now()
    JSON.parse((workerData.gzipped ? gunzipSync(body) : body).toString("utf8"))
    latencies.push(performance.now() - start)
  }
  parentPort.postMessage(latencies)
})`

/** `n` parses of `body` spread over one worker thread per core, all at once (after one each to warm up). */
const parseOnEveryCore = (body: Buffer, gzipped: boolean, n: number) =>
  Effect.acquireUseRelease(
    Effect.sync(() =>
      Array.from({ length: availableParallelism() }, () => new Worker(PARSER, { eval: true, workerData: { body, gzipped } }))
    ),
    (workers) =>
      Effect.promise(async () => {
        const parse = (worker: Worker, count: number) =>
          new Promise<Array<number>>((resolve, reject) => {
            worker.once("message", resolve)
            worker.once("error", reject)
            worker.postMessage(count)
          })
        await Promise.all(workers.map((worker) => parse(worker, 1)))
        const start = performance.now()
        const latencies = await Promise.all(
          workers.map((worker, k) => parse(worker, Math.floor(n / workers.length) + (k < n % workers.length ? 1 : 0)))
        )
        return { latencies: latencies.flat(), wallMs: performance.now() - start }
      }),
    (workers) => Effect.promise(() => Promise.all(workers.map((worker) => worker.terminate())))
  )

const summarize = (runs: ReadonlyArray<{ latencies: Array<number>; wallMs: number }>, payloadBytes: number): Latencies => {
  const latencies = runs.flatMap((r) => r.latencies)
  const wallMs = runs.reduce((total, r) => total + r.wallMs, 0)
  return {
    p50: percentile(latencies, 0.5),
    p95: percentile(latencies, 0.95),
    mbPerSecond: (latencies.length * payloadBytes) / MB / (wallMs / 1000),
    requests: latencies.length
  }
}

export const ingestBenchmark = (options: {
  readonly storage: Record<string, string>
  readonly payloadBytes: number
  /** Requests per batch at each concurrency, and rounds of (ingest batch, PUT batch). */
  readonly requests: Readonly<Record<number, number>>
  readonly rounds: number
}) =>
  Effect.gen(function*() {
    const db = yield* freshDatabase
    const queue = yield* kafka
    yield* progress("ingest: starting the ingest service (s3rver, mock Kafka, PostgreSQL)")
    const { base } = yield* ingestApp({ ...options.storage, ...queue, DATABASE_URL: db.url })
    const json = payloadBuffer({ readings: readingsFor(options.payloadBytes), prefix: "ingest", end: Date.now(), span: 86_400_000 })
    const gzip = gzipSync(json, { level: 6 })
    yield* progress(`ingest: payload ${(json.length / MB).toFixed(1)} MB of JSON, ${(gzip.length / MB).toFixed(2)} MB gzipped`)

    const endpoint = new URL(options.storage.S3_ENDPOINT!)
    const minio = new Minio.Client({
      endPoint: endpoint.hostname,
      port: Number(endpoint.port),
      useSSL: false,
      accessKey: options.storage.S3_ACCESS_KEY!,
      secretKey: options.storage.S3_SECRET_KEY!,
      region: options.storage.S3_REGION ?? "us-east-1"
    })
    const bucket = "telemetry-raw"

    const maxRequests = Math.max(...Object.values(options.requests)) * options.rounds * 2 + 8
    const devices = Array.from({ length: maxRequests }, (_, k) => `bench-device-${k}`)
    const tokens = yield* Effect.forEach(devices, (device) => token("device", device))
    let device = 0
    let failure: string | undefined

    const post = (body: Buffer, gzipped: boolean): Request => ({
      send: async () => {
        const k = device++ % devices.length
        const start = performance.now()
        const response = await fetch(`${base}/api/v1/telemetry/bulk`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            ...(gzipped ? { "content-encoding": "gzip" } : {}),
            authorization: `Bearer ${tokens[k]}`,
            "x-device-id": devices[k]!
          },
          body: body as unknown as BodyInit
        }).catch((e: Error) => {
          // fetch says only "fetch failed": the cause tells what the connection did.
          throw new Error(`POST failed: ${e.cause instanceof Error ? e.cause.message : e.message}`)
        })
        const text = await response.text()
        const ms = performance.now() - start
        if (response.status !== 202) failure ??= `${response.status} ${text.slice(0, 300)}`
        return ms
      }
    })
    const put = (body: Buffer): Request => ({
      send: async () => {
        const start = performance.now()
        await minio.putObject(bucket, `bench-raw/${randomUUID()}.json.gz`, body, body.length)
        return performance.now() - start
      }
    })

    const parse = (body: Buffer, gzipped: boolean): Request => ({
      send: async () => {
        const start = performance.now()
        JSON.parse((gzipped ? gunzipSync(body) : body).toString("utf8"))
        const ms = performance.now() - start
        // The event loop was held: let it see what the sockets did meanwhile (an idle keep-alive connection the
        // server closed must not be taken for the next request).
        await new Promise((resolve) => setImmediate(resolve))
        return ms
      }
    })

    // Warm-up: connections, JIT, the bucket's first objects.
    yield* batch([post(gzip, true), post(json, false), put(gzip), put(json), parse(gzip, true), parse(json, false)], 1)
    failure = undefined

    const rows: Array<IngestRow> = []
    for (const [variant, body] of [["gzip", gzip], ["plain", json]] as const) {
      for (const [concurrencyText, n] of Object.entries(options.requests)) {
        const concurrency = Number(concurrencyText)
        const ingestRuns = []
        const putRuns = []
        const parseRuns = []
        const allCoresRuns = []
        for (let round = 1; round <= options.rounds; round++) {
          ingestRuns.push(yield* batch(Array.from({ length: n }, () => post(body, variant === "gzip")), concurrency))
          putRuns.push(yield* batch(Array.from({ length: n }, () => put(body)), concurrency))
          parseRuns.push(yield* batch(Array.from({ length: n }, () => parse(body, variant === "gzip")), 1))
          if (concurrency > 1) allCoresRuns.push(yield* parseOnEveryCore(body, variant === "gzip", n))
        }
        const row: IngestRow = {
          body: variant,
          concurrency,
          bodyBytes: body.length,
          ingest: failure === undefined ? summarize(ingestRuns, json.length) : { error: failure },
          put: summarize(putRuns, json.length),
          parse: summarize(parseRuns, json.length),
          ...(concurrency > 1 ? { parseAllCores: summarize(allCoresRuns, json.length) } : {})
        }
        failure = undefined
        rows.push(row)
        const ingest = "error" in row.ingest ? `failed: ${row.ingest.error}` : `p95 ${row.ingest.p95.toFixed(0)} ms`
        yield* progress(
          `ingest: ${variant} bodies at concurrency ${concurrency}: ${ingest}; raw PUT p95 ${row.put.p95.toFixed(0)} ms; ` +
            `gunzip + JSON.parse p95 ${row.parse.p95.toFixed(0)} ms`
        )
      }
    }
    return { payloadBytes: json.length, rows } satisfies IngestResult
  })
