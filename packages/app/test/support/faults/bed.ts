/**
 * The pipeline as OS processes (ingest, two workers) on the test bed (mock Kafka cluster, s3rver, a fresh
 * PostgreSQL database), with what the fault tests need to strike them — kill and restart either, stop storage and
 * Kafka, end database connections, watch what the workers and storage are doing — and the audit of the outcome.
 */
import * as S3ObjectStore from "@telemetry/infra/storage/s3/S3ObjectStore"
import { Effect, Redacted } from "effect"
import pg from "pg"
import { type PipelineProcess, startPipeline, startWorker } from "../process.js"
import { freePort } from "../stack.js"
import { runningStandIns, shortPatience } from "../standIns.js"
import { type Entry, makeAudit } from "./audit.js"
import { type Hold, type Outcome, send } from "./requests.js"
import { MiB, type Shipment } from "./shipments.js"
import { readTopics } from "./topics.js"

const BUCKET = "telemetry-raw"

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

// The pipeline's patience is shortened, so that outages that outlast it (and get refusals) stay short too.
const ingestEnv = (port: number) => ({
  PORT: String(port),
  RUN_WORKER: "false",
  QUEUE_PUBLISH_TIMEOUT: "2 seconds",
  RATE_LIMIT_PER_DEVICE: "100000",
  // The smallest part S3 allows, so that a body of tens of MiB is uploaded in parts.
  S3_PART_SIZE: String(5 * MiB)
})

export const makeBed = Effect.gen(function*() {
  const { database, env, kafka, s3 } = yield* runningStandIns
  const port = yield* Effect.promise(freePort)

  const db = new pg.Client({ connectionString: database.url, application_name: "fault-audit" })
  yield* Effect.acquireRelease(Effect.promise(() => db.connect()), () => Effect.promise(() => db.end()))
  const store = yield* S3ObjectStore.make({
    endpoint: s3.endpoint,
    accessKey: s3.accessKey,
    secretKey: Redacted.make(s3.secretKey),
    bucket: BUCKET
  })

  // Each process connects as itself (`urlFor`), so that the rounds can see which one is in a load.
  const common = { ...env, ...shortPatience, STORAGE_BUCKET: BUCKET }
  const urlFor = (name: string) => `${database.url}?application_name=${name}`

  // Every process started, dead or alive, so that a failure can show what each printed.
  const history: Array<{ readonly name: string; readonly process: PipelineProcess }> = []
  const running = new Map<string, PipelineProcess>()
  yield* Effect.addFinalizer(() => Effect.sync(() => running.forEach((p) => p.child.kill("SIGKILL"))))
  const launch = (name: string, start: () => PipelineProcess) => {
    const process = start()
    history.push({ name, process })
    running.set(name, process)
    return process
  }
  const logs = (chars = 6000) =>
    history.map(({ name, process }) =>
      `----- ${name} (pid ${process.child.pid}${process.child.exitCode !== null || process.child.signalCode ? `, exited ${process.child.exitCode ?? process.child.signalCode}` : ""}):\n${process.output().slice(-chars)}`
    ).join("\n")

  /** The lines of every process's output that mention `text`. */
  const linesAbout = (text: string) =>
    history.flatMap(({ name, process }) =>
      process.output().split("\n").filter((line) => line.includes(text)).map((line) => `${name}: ${line}`)
    ).join("\n")

  /** Polls `check` until it holds; on a timeout fails with `what` and what every process printed. */
  const eventually = async (check: () => Promise<boolean>, timeoutMs: number, what: string) => {
    const deadline = Date.now() + timeoutMs
    let last: unknown
    while (Date.now() < deadline) {
      try {
        if (await check()) return
      } catch (e) {
        last = e
      }
      await sleep(100)
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}\n${logs()}`)
  }

  const base = `http://127.0.0.1:${port}`
  const startIngest = async () => {
    const ingest = launch("ingest", () => startPipeline({ ...common, ...ingestEnv(port), DATABASE_URL: urlFor("ingest") }))
    await eventually(
      async () =>
        ingest.child.exitCode === null && (await fetch(`${base}/api/v1/health`, { signal: AbortSignal.timeout(2_000) })).ok,
      90_000,
      "ingest healthy"
    )
  }
  const startWorkerNamed = (name: string) =>
    launch(name, () => startWorker({ ...common, DATABASE_URL: urlFor(name) }))

  const kill = async (name: string) => {
    const process = running.get(name)
    if (process === undefined) throw new Error(`${name} is not running`)
    running.delete(name)
    process.child.kill("SIGKILL")
    await process.exited
  }

  const workers = ["worker-a", "worker-b"]
  workers.forEach(startWorkerNamed)
  yield* Effect.promise(startIngest)
  const topics = yield* Effect.acquireRelease(Effect.promise(() => readTopics(kafka.bootstrap)), (t) => Effect.promise(t.close))

  const entries: Array<Entry> = []
  const post = async (label: string, s: Shipment, hold?: Hold) => {
    const outcome = await send(port, s, hold)
    entries.push({ shipment: s, outcome, label })
    return outcome
  }

  const query = async <R>(text: string, values: ReadonlyArray<unknown> = []) =>
    (await db.query(text, values as Array<unknown>)).rows as Array<R>

  /** The database backends of the workers, with what each is doing. */
  const workerBackends = () =>
    query<{ pid: number; name: string; state: string; query: string; writing: boolean }>(
      `SELECT pid, application_name AS name, state, left(query, 60) AS query, backend_xid IS NOT NULL AS writing
       FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'worker-%'`
    )

  /**
   * Waits until a worker's backend is in a load — a transaction that has written (its ledger row comes first),
   * not a maintenance job's — and, with `copying`, is executing a COPY (looking every few milliseconds, so that a
   * short COPY is not missed); gives up once `stop` holds.
   */
  const loadInProgress = async (timeoutMs: number, copying = false, stop?: () => Promise<boolean>) => {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline && !(await stop?.())) {
      const found = (await workerBackends()).find((b) =>
        b.writing && !b.query.includes("refresh_telemetry") &&
        (!copying || (b.state === "active" && b.query.startsWith("COPY")))
      )
      if (found) return found
      await sleep(copying ? 2 : 20)
    }
    return undefined
  }

  /** Whether the ledger holds the claim. */
  const loaded = async (claimId: string) =>
    (await query("SELECT 1 FROM claim_ledger WHERE claim_id::text = $1", [claimId])).length > 0

  const terminate = async (pid: number) =>
    (await query<{ done: boolean }>("SELECT pg_terminate_backend($1) AS done", [pid]))[0]?.done === true

  /** Waits until s3rver got a request matching `pattern` after the `since`-th, or `answered` is settled. */
  const s3Request = async (pattern: RegExp, since: number, timeoutMs: number, answered?: Promise<Outcome>) => {
    let answer: Outcome | undefined
    void answered?.then((o) => (answer = o))
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline && answer === undefined) {
      const found = s3.requests().slice(since).find((r) => pattern.test(r))
      if (found) return found
      await sleep(5)
    }
    return undefined
  }

  return {
    kafka,
    s3,
    logs,
    linesAbout,
    post,
    audit: makeAudit({ entries, eventually, logs, query, store, topics }),
    workerBackends,
    loadInProgress,
    loaded,
    terminate,
    s3Request,
    workers,
    killWorker: kill,
    startWorker: (name: string) => startWorkerNamed(name),
    killIngest: () => kill("ingest"),
    startIngest,
    /** The processes that should run and do (one that died by itself is a finding). */
    alive: () => ["ingest", ...workers].filter((name) => running.get(name)?.child.exitCode === null)
  }
})

export type Bed = Effect.Effect.Success<typeof makeBed>
