/**
 * Harness of the fault-injection tests: the pipeline as OS processes (ingest, two workers) on the test bed
 * (mock Kafka cluster, s3rver, a fresh PostgreSQL database), clients whose requests can be held half-sent, the
 * faults, and an audit that holds every answer against the database, the bucket and the topics.
 */
import { S3ObjectStore } from "@telemetry/domain"
import * as KafkaMock from "@telemetry/testbed/KafkaMock"
import * as PostgresDatabase from "@telemetry/testbed/PostgresDatabase"
import * as S3Server from "@telemetry/testbed/S3Server"
import { Effect, Redacted, Stream } from "effect"
import { randomUUID } from "node:crypto"
import * as http from "node:http"
import { gzipSync } from "node:zlib"
import { Kafka, logLevel } from "kafkajs"
import pg from "pg"
import { authEnv, bearer, deviceToken } from "./auth.js"
import { bulkPayload } from "./payloads.js"
import type { Random } from "./random.js"
import { type PipelineProcess, startPipeline, startWorker } from "./process.js"
import { freePort } from "./stack.js"


export const CLAIMS_TOPIC = "telemetry.raw"
export const DLQ_TOPIC = "telemetry.dlq"
const BUCKET = "telemetry-raw"
export const MiB = 1024 * 1024

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------------------------
// Payloads

/** Readings start five days back, so the newest of a few thousand a sensor stays in the past and in retention. */
const DAY = 86_400_000
const START = Math.floor(Date.now() / DAY) * DAY - 5 * DAY

/** One request: its body, and what the database must hold for it (its equipments' uuids start with `prefix`). */
export interface Shipment {
  readonly requestId: string
  readonly device: string
  readonly prefix: string
  readonly readings: number
  readonly body: Buffer
  readonly gzipped: boolean
}

export interface ShipmentSpec {
  /** Unique per shipment, without "-": the database tells its rows apart by it. */
  readonly prefix: string
  readonly device: string
  readonly items: number
  readonly readingsPerItem: number
  /** `gzip-stored`: gzip without compression (level 0), so the object is as large as the JSON. */
  readonly encoding: "plain" | "gzip" | "gzip-stored"
  /** Blanks between consecutive items: bulk that costs the pipeline bytes but no readings. */
  readonly padding?: number
}

export const shipment = (spec: ShipmentSpec): Shipment => {
  const items = bulkPayload(spec.items, spec.readingsPerItem, START, spec.prefix).map((item) => JSON.stringify(item))
  const json = Buffer.from(`[${items.join(`,${" ".repeat(spec.padding ?? 0)}`)}]`)
  const body = spec.encoding === "plain" ? json : gzipSync(json, { level: spec.encoding === "gzip" ? 6 : 0 })
  return {
    requestId: randomUUID(),
    device: spec.device,
    prefix: spec.prefix,
    readings: spec.items * spec.readingsPerItem,
    body,
    gzipped: spec.encoding !== "plain"
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Clients

/** What a client learned of its request. */
export type Outcome =
  | { readonly _tag: "Accepted"; readonly claimId: string; readonly key: string; readonly readings: number }
  | { readonly _tag: "Refused"; readonly status: number; readonly error: string; readonly message: string }
  /** No answer. `bodySent`: the whole body had left the client, so the server may have accepted it. */
  | { readonly _tag: "Lost"; readonly bodySent: boolean; readonly message: string }

export interface Hold {
  /** Bytes sent before holding. */
  readonly at: number
  /** The rest is sent when this resolves. */
  readonly release: Promise<void>
}

/** Longer than any retry or timeout of the pipeline: a request still unanswered then is reported as lost. */
const ANSWER_TIMEOUT = 120_000

/**
 * POSTs `s` on a connection of its own (a killed server must not leave a pooled socket behind). With `hold`, the
 * body stops after `hold.at` bytes until `hold.release` resolves, so that a fault can strike in the middle of it.
 */
const send = (port: number, s: Shipment, hold?: Hold): Promise<Outcome> =>
  new Promise((resolve) => {
    let bodySent = false
    let settled = false
    const settle = (outcome: Outcome) => {
      if (settled) return
      settled = true
      resolve(outcome)
    }
    const request = http.request({
      host: "127.0.0.1",
      port,
      method: "POST",
      path: "/api/v1/telemetry/bulk",
      agent: false,
      timeout: ANSWER_TIMEOUT,
      headers: {
        "content-type": "application/json",
        ...(s.gzipped ? { "content-encoding": "gzip" } : {}),
        "content-length": String(s.body.length),
        "x-request-id": s.requestId,
        "x-device-id": s.device,
        ...bearer(deviceToken("default", s.device))
      }
    }, (response) => {
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on("error", (e) => settle({ _tag: "Lost", bodySent: true, message: `answer cut: ${e.message}` }))
      response.on("end", () => {
        const status = response.statusCode ?? 0
        let json: Record<string, unknown> = {}
        try {
          json = JSON.parse(Buffer.concat(chunks).toString("utf8"))
        } catch {
          // A body that is not JSON shows as an empty error below.
        }
        settle(
          status === 202
            ? {
              _tag: "Accepted",
              claimId: String(json["claim_id"]),
              key: String(json["claim_check"]),
              readings: Number(json["readings"])
            }
            : { _tag: "Refused", status, error: String(json["error"] ?? ""), message: String(json["message"] ?? "") }
        )
      })
    })
    request.on("finish", () => (bodySent = true))
    request.on("timeout", () => request.destroy(new Error(`no answer within ${ANSWER_TIMEOUT} ms`)))
    request.on("error", (e) => settle({ _tag: "Lost", bodySent, message: e.message }))
    if (hold === undefined) {
      request.end(s.body)
      return
    }
    request.write(s.body.subarray(0, hold.at))
    void hold.release.then(() => {
      // An early answer (e.g. 503) may have ended the exchange: the rest then has nowhere to go.
      if (!request.destroyed) request.end(s.body.subarray(hold.at))
    })
  })

/** A promise with its resolver, to release a held body. */
export const latch = () => {
  let open = () => {}
  const release = new Promise<void>((resolve) => (open = resolve))
  return { release, open }
}

// ---------------------------------------------------------------------------------------------------------------
// Reading the topics

interface TopicRecord {
  readonly topic: string
  readonly source: string
  readonly requestId: string | undefined
  readonly claimId: string | undefined
  readonly reason: string | undefined
}

/** Every message of the claims topic and the dead-letter topic, read by a consumer group of its own. */
const readTopics = async (bootstrap: string) => {
  const kafka = new Kafka({ clientId: "fault-audit", brokers: [bootstrap], logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  const consumer = kafka.consumer({
    groupId: `fault-audit-${randomUUID()}`,
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
    maxWaitTimeInMs: 100
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [CLAIMS_TOPIC, DLQ_TOPIC], fromBeginning: true })
  const records = new Map<string, TopicRecord>()
  const next = new Map<string, bigint>()
  await consumer.run({
    eachMessage: async ({ message, partition, topic }) => {
      const source = `${topic}/${partition}@${message.offset}`
      let value: { claim_id?: unknown; metadata?: { requestId?: unknown } } = {}
      try {
        value = JSON.parse(message.value?.toString("utf8") ?? "{}")
      } catch {
        // Not JSON: recorded without ids.
      }
      const header = (name: string) => message.headers?.[name]?.toString()
      records.set(source, {
        topic,
        source,
        requestId: header("request-id") ?? (value.metadata?.requestId as string | undefined),
        claimId: value.claim_id as string | undefined,
        reason: header("dlq-reason")
      })
      next.set(`${topic}/${partition}`, BigInt(message.offset) + 1n)
    }
  })
  return {
    records: () => [...records.values()],
    /** Whether every message written so far has been read. */
    caughtUp: async () => {
      for (const topic of [CLAIMS_TOPIC, DLQ_TOPIC]) {
        for (const p of await admin.fetchTopicOffsets(topic)) {
          if (BigInt(p.high) > (next.get(`${topic}/${p.partition}`) ?? 0n)) return false
        }
      }
      return true
    },
    close: async () => {
      await consumer.disconnect().catch(() => {})
      await admin.disconnect().catch(() => {})
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The bed

interface Entry {
  readonly shipment: Shipment
  readonly outcome: Outcome
  /** Which scenario or round sent it. */
  readonly label: string
}

const isAccepted = (o: Outcome): o is Extract<Outcome, { _tag: "Accepted" }> => o._tag === "Accepted"
/** No answer after the whole body left: stored and queued or not, the client cannot know. */
const isUnknown = (o: Outcome) => o._tag === "Lost" && o.bodySent
/** A claim may have reached the topic: accepted, unknown, or refused because Kafka did not acknowledge in time. */
const mayBeQueued = (o: Outcome) => isAccepted(o) || isUnknown(o) || (o._tag === "Refused" && o.error === "queue_unavailable")

/** What the audit found: the figures, and each broken expectation in words. */
export interface Tally {
  readonly label: string
  readonly requests: number
  readonly accepted: number
  readonly refused: number
  /** No answer; of those, `unknown` had sent their whole body. */
  readonly lost: number
  readonly unknown: number
  /** Readings the 202 answers announced, plus those of unknown requests found loaded (all or nothing each). */
  readonly expectedRows: number
  readonly rows: number
  readonly distinctRows: number
  readonly ledger: number
  /** Requests refused with 503 whose claim reached the topic all the same (Kafka acknowledged too late). */
  readonly refusedOnTopic: number
  readonly problems: ReadonlyArray<string>
  /** Dead letters, as `source reason`. */
  readonly deadLetters: ReadonlyArray<string>
}

const ingestEnv = (port: number) => ({
  PORT: String(port),
  RUN_WORKER: "false",
  // Shorter than the default, so that a round with Kafka down does not wait long for its 503s.
  QUEUE_PUBLISH_TIMEOUT: "3 seconds",
  RATE_LIMIT_PER_DEVICE: "100000",
  // The smallest part S3 allows, so that a body of tens of MiB is uploaded in parts.
  S3_PART_SIZE: String(5 * MiB)
})

/**
 * Ingest and two workers as OS processes on the test bed, with what the tests need to strike them: kill and
 * restart either, stop storage and Kafka, end database connections, and audit the outcome.
 */
export const makeBed = Effect.gen(function*() {
  const kafka = yield* KafkaMock.KafkaMock
  const s3 = yield* S3Server.S3Server
  const database = yield* PostgresDatabase.PostgresDatabase
  const port = yield* Effect.promise(freePort)

  const db = new pg.Client({ connectionString: database.url, application_name: "fault-audit" })
  yield* Effect.acquireRelease(Effect.promise(() => db.connect()), () => Effect.promise(() => db.end()))
  const store = yield* S3ObjectStore.make({
    endpoint: s3.endpoint,
    accessKey: s3.accessKey,
    secretKey: Redacted.make(s3.secretKey),
    bucket: BUCKET
  })

  const common = {
    ...kafka.env,
    ...s3.env,
    ...authEnv,
    STORAGE_BUCKET: BUCKET,
    // A killed worker's partitions move after this: short, so that the rounds that kill one stay short; not
    // shorter, because a loaded machine then misses heartbeats, and the extra rebalances can crash the mock
    // cluster (librdkafka 2.0.2 asserts on a JoinGroup of a member whose previous one is still pending).
    KAFKA_SESSION_TIMEOUT: "8 seconds",
    KAFKA_HEARTBEAT_INTERVAL: "2 seconds",
    DATABASE_POOL_SIZE: "4"
  }
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
    await eventually(async () => ingest.child.exitCode === null && (await fetch(`${base}/api/v1/health`)).ok, 90_000, "ingest healthy")
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

  /**
   * Waits for every 202 claim to be loaded, then holds every request sent so far against the database, the
   * bucket and the topics: 202 → its readings once, its object, its claim on the topic; refused or cut before the
   * whole body was sent → nothing anywhere; no answer after the whole body → all or nothing.
   */
  const audit = async (label: string): Promise<Tally> => {
    const accepted = entries.flatMap((e) => (isAccepted(e.outcome) ? [{ ...e, outcome: e.outcome }] : []))
    const problems: Array<string> = []
    await eventually(async () => {
      // An accepted claim set aside will never load: say so now rather than time out.
      const dead = new Set(topics.records().filter((r) => r.topic === DLQ_TOPIC).map((r) => r.claimId))
      const lostClaim = accepted.find((e) => dead.has(e.outcome.claimId))
      if (lostClaim) throw new Error(`accepted claim ${lostClaim.outcome.claimId} was dead-lettered\n${logs()}`)
      const loaded = new Set((await query<{ id: string }>("SELECT claim_id::text AS id FROM claim_ledger")).map((r) => r.id))
      return accepted.every((e) => loaded.has(e.outcome.claimId))
    }, 180_000, `${label}: all ${accepted.length} accepted claims loaded`).catch((e: Error) => {
      problems.push(e.message)
    })

    const [totals] = await query<{ n: number; d: number }>(
      "SELECT count(*)::int AS n, count(DISTINCT (time, sensor_id))::int AS d FROM telemetry_data"
    )
    const byPrefix = new Map(
      (await query<{ prefix: string; n: number }>(
        `SELECT split_part(e.uuid, '-', 1) AS prefix, count(*)::int AS n
         FROM telemetry_data t JOIN equipments e ON e.id = t.equipment_id GROUP BY 1`
      )).map((r) => [r.prefix, r.n])
    )
    const ledger = await query<{ id: string; request: string; readings: number | null }>(
      "SELECT claim_id::text AS id, request_id AS request, readings FROM claim_ledger"
    )
    const ledgerById = new Map(ledger.map((r) => [r.id, r]))
    const byRequest = new Map(entries.map((e) => [e.shipment.requestId, e]))

    let expectedRows = 0
    const prefixes = new Set<string>()
    for (const e of entries) {
      const { outcome, shipment: s } = e
      const rows = byPrefix.get(s.prefix) ?? 0
      prefixes.add(s.prefix)
      const what = `${e.label} ${s.prefix} (request ${s.requestId}, ${s.readings} readings)`
      if (isAccepted(outcome)) {
        expectedRows += outcome.readings
        if (outcome.readings !== s.readings) problems.push(`${what}: the 202 announced ${outcome.readings} readings`)
        if (rows !== outcome.readings) problems.push(`${what}: accepted, ${rows} rows in the database`)
        const loaded = ledgerById.get(outcome.claimId)
        if (loaded === undefined) problems.push(`${what}: accepted claim ${outcome.claimId} not in the ledger`)
        else if (loaded.readings !== outcome.readings) problems.push(`${what}: the ledger counts ${loaded.readings} readings`)
      } else if (isUnknown(outcome)) {
        if (rows !== 0 && rows !== s.readings) problems.push(`${what}: no answer, ${rows} rows (all or nothing expected)`)
        expectedRows += rows
      } else if (rows !== 0) {
        problems.push(`${what}: ${outcome._tag === "Refused" ? `answered ${outcome.status} ${outcome.error}` : `cut before its body was sent (${outcome.message})`}, yet ${rows} rows`)
      }
    }
    for (const [prefix, n] of byPrefix) {
      if (!prefixes.has(prefix)) problems.push(`${n} rows of equipments "${prefix}-*", which no request sent`)
    }
    for (const row of ledger) {
      const e = byRequest.get(row.request)
      const ok = e !== undefined && (isAccepted(e.outcome) ? e.outcome.claimId === row.id : isUnknown(e.outcome))
      if (!ok) {
        problems.push(`ledger row of claim ${row.id} (request ${row.request}) belongs to no accepted request${e ? ` (${e.label}: ${JSON.stringify(e.outcome)})` : ""}`)
      }
    }

    // The bucket: the object of every 202, and no object of a request refused or cut short.
    const objects = await Effect.runPromise(
      store.list("telemetry/").pipe(Stream.runCollect, Effect.map((c) => [...c]))
    ).catch((e: unknown) => {
      problems.push(`listing the bucket failed: ${String(e)}`)
      return []
    })
    const keys = new Set(objects.map((o) => o.key))
    for (const e of accepted) {
      if (!keys.has(e.outcome.key)) problems.push(`${e.label} ${e.shipment.prefix}: accepted, but no object ${e.outcome.key}`)
    }
    for (const o of objects) {
      const e = byRequest.get(o.metadata["request-id"] ?? "")
      const ok = e !== undefined && (isAccepted(e.outcome) ? e.outcome.key === o.key : isUnknown(e.outcome))
      if (!ok) problems.push(`object ${o.key} (request ${o.metadata["request-id"]}) belongs to no accepted request${e ? ` (${e.label}: ${JSON.stringify(e.outcome)})` : ""}`)
    }
    // The topics: a claim for every 202; none for a request that was refused before queueing or cut short.
    await eventually(topics.caughtUp, 60_000, "the audit consumer to read both topics to their end").catch((e: Error) =>
      problems.push(e.message)
    )
    const records = topics.records()
    const onTopic = new Set(records.filter((r) => r.topic === CLAIMS_TOPIC).map((r) => r.requestId))
    let refusedOnTopic = 0
    for (const e of entries) {
      const queued = onTopic.has(e.shipment.requestId)
      if (queued && e.outcome._tag === "Refused") refusedOnTopic++
      if (isAccepted(e.outcome) && !queued) problems.push(`${e.label} ${e.shipment.prefix}: accepted, but no claim on ${CLAIMS_TOPIC}`)
      if (!mayBeQueued(e.outcome) && queued) {
        problems.push(`${e.label} ${e.shipment.prefix}: ${JSON.stringify(e.outcome)}, yet its claim is on ${CLAIMS_TOPIC}`)
      }
    }
    for (const r of records) {
      if (r.topic === CLAIMS_TOPIC && !byRequest.has(r.requestId ?? "")) problems.push(`${r.source}: a claim of no request of ours (${r.requestId})`)
    }
    const deadLetters = records.filter((r) => r.topic === DLQ_TOPIC).map((r) => `${r.source} ${r.reason} request ${r.requestId}`)
    const acceptedClaims = new Set(accepted.map((e) => e.outcome.claimId))
    for (const r of records) {
      if (r.topic === DLQ_TOPIC && acceptedClaims.has(r.claimId ?? "")) problems.push(`accepted claim ${r.claimId} dead-lettered (${r.reason})`)
    }

    return {
      label,
      requests: entries.length,
      accepted: accepted.length,
      refused: entries.filter((e) => e.outcome._tag === "Refused").length,
      lost: entries.filter((e) => e.outcome._tag === "Lost").length,
      unknown: entries.filter((e) => isUnknown(e.outcome)).length,
      expectedRows,
      rows: totals!.n,
      distinctRows: totals!.d,
      ledger: ledger.length,
      refusedOnTopic,
      problems,
      deadLetters
    }
  }

  return {
    kafka,
    s3,
    logs,
    linesAbout,
    post,
    audit,
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

/** Prints a tally as one line, for the run's log. */
export const describeTally = (t: Tally) =>
  `${t.label}: ${t.requests} requests (${t.accepted} accepted, ${t.refused} refused, ${t.lost} lost of which ${t.unknown} after the whole body), ` +
  `${t.rows} rows (${t.distinctRows} distinct, ${t.expectedRows} expected), ${t.ledger} ledger rows, ` +
  `${t.refusedOnTopic} claims of refused requests on the topic, ${t.deadLetters.length} dead letters` +
  (t.deadLetters.length > 0 ? ` (${t.deadLetters.join("; ")})` : "") +
  (t.problems.length > 0 ? `, ${t.problems.length} problems` : "")

// ---------------------------------------------------------------------------------------------------------------
// Randomized rounds

export const FAULTS = [
  "none",
  "kafka-down",
  "storage-down-upload",
  "storage-down-fetch",
  "db-terminate",
  "worker-kill",
  "ingest-kill"
] as const
export type Fault = typeof FAULTS[number]

/** The fault of each round: every kind (and none) as evenly as the count allows, in a random order. */
export const faultSchedule = (rng: Random, rounds: number): Array<Fault> => {
  const schedule = Array.from({ length: rounds }, (_, i) => FAULTS[i % FAULTS.length]!)
  for (let i = schedule.length - 1; i > 0; i--) {
    const j = rng.int(0, i)
    ;[schedule[i], schedule[j]] = [schedule[j]!, schedule[i]!]
  }
  return schedule
}

/**
 * One round: a few payloads of random sizes and encodings from a few devices, posted at random moments, and
 * `fault` at a random moment. Every random choice is drawn before anything starts, so the seed alone fixes the
 * plan; only the interleaving with the processes varies. Returns the plan and what the fault hit.
 */
export const runRound = async (bed: Bed, rng: Random, round: number, fault: Fault) => {
  const specs = Array.from({ length: rng.int(2, 4) }, (_, i): ShipmentSpec => ({
    prefix: `r${round}s${i}`,
    device: `device-${rng.int(0, 3)}`,
    items: rng.int(1, 3),
    readingsPerItem: rng.int(50, 2500),
    encoding: rng.pick(["plain", "gzip", "gzip-stored"] as const)
  }))
  const delays = specs.map(() => rng.int(0, 600))
  const faultAt = rng.int(0, 800)
  // A third of the outages outlast the pipeline's patience (3 s for Kafka, S3's retries), so refusals occur too.
  const outage = rng.int(0, 2) === 0 ? rng.int(4000, 6000) : rng.int(300, 2500)
  const heldFraction = 0.1 + 0.8 * rng.next()
  const victim = rng.pick(bed.workers)
  const plan = `round ${round}: ${fault} at ${faultAt} ms for ${outage} ms; ` +
    specs.map((s, i) => `${s.prefix} ${s.items}x${s.readingsPerItem} ${s.encoding} ${s.device} +${delays[i]}ms`).join(", ")

  const label = `round ${round}`
  const shipments = specs.map(shipment)
  // A fault that strikes an upload needs one in flight: the first body stops part-way until the fault struck.
  const holding = fault === "storage-down-upload" || fault === "ingest-kill"
  const held = latch()
  const since = bed.s3.requests().length
  const posts = shipments.map(async (s, i) => {
    if (holding && i === 0) return bed.post(label, s, { at: Math.floor(s.body.length * heldFraction), release: held.release })
    await sleep(delays[i]!)
    return bed.post(label, s)
  })

  const strike = async (): Promise<string> => {
    // The held body's first part is sent at once; the fault comes after it.
    await sleep(faultAt + (holding ? 100 : 0))
    switch (fault) {
      case "none":
        return "nothing"
      case "kafka-down": {
        await Effect.runPromise(bed.kafka.brokerDown(1))
        await sleep(outage)
        await Effect.runPromise(bed.kafka.brokerUp(1))
        return "broker 1 down and up"
      }
      case "storage-down-upload": {
        await bed.s3.down()
        held.open()
        await sleep(outage)
        await bed.s3.up()
        return "storage down while a body streamed"
      }
      case "storage-down-fetch": {
        const get = await bed.s3Request(/^GET \/telemetry-raw\/telemetry\//, since, 5_000)
        await bed.s3.down()
        await sleep(outage)
        await bed.s3.up()
        return get ? `storage down after ${get}` : "storage down (no fetch seen)"
      }
      case "db-terminate": {
        const load = await bed.loadInProgress(2_000)
        const targets = load ? [load] : await bed.workerBackends()
        const ended = await Promise.all(targets.map((b) => bed.terminate(b.pid)))
        return load
          ? `terminated ${load.name}'s backend ${load.pid} in a load (${load.state}: ${load.query}): ${ended[0]}`
          : `no load seen; terminated ${ended.filter(Boolean).length} idle worker backends`
      }
      case "worker-kill": {
        const load = await bed.loadInProgress(2_000)
        const name = load?.name ?? victim
        await bed.killWorker(name)
        await sleep(outage)
        bed.startWorker(name)
        return load ? `SIGKILLed ${name} in a load (${load.query})` : `SIGKILLed ${name} (no load seen)`
      }
      case "ingest-kill": {
        await bed.killIngest()
        held.open()
        await sleep(outage)
        await bed.startIngest()
        return "SIGKILLed ingest while a body streamed"
      }
    }
  }

  const struck = await strike().finally(held.open)
  const outcomes = await Promise.all(posts)
  return { plan, fault, struck, outcomes }
}
