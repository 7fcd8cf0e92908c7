/**
 * 1. Worker load rate: one stored payload through the worker's real path (S3 GET, gunzip, scan, validate, COPY in
 * one transaction), beside `psql \copy` of the same rows into the same table and a seed-style loader (multi-row
 * INSERTs of 1 000 rows), all on the same fresh database, alternated round by round.
 */
import { NodeContext, NodeStream } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { ClaimCheck, claimFor, factsToMetadata, objectKey, ObjectStore, type PayloadFacts } from "@telemetry/domain"
import * as ClaimProcessor from "@telemetry/worker/ClaimProcessor"
import { ConfigProvider, Effect, Layer, Logger, LogLevel } from "effect"
import { randomUUID } from "node:crypto"
import { createReadStream } from "node:fs"
import { mkdtemp, rm, stat } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import pg from "pg"
import * as Infrastructure from "../packages/app/src/Infrastructure.js"
import { gzippedPayload, type PayloadSpec, READINGS_PER_ITEM } from "./payloads.js"
import { largePayloads } from "./services.js"
import { cpuSeconds, formatRate, freshDatabase, MB, median, progress, psql, timed } from "./support.js"

const COLUMNS = "time, equipment_id, sensor_id, value, status, metadata"
const SEED_BATCH = 1000

export interface WorkerResult {
  readonly readings: number
  readonly payloadBytes: number
  readonly storedBytes: number
  /** Rows per second of each round, and their median. */
  readonly worker: Rates
  /**
   * CPU microseconds per reading the worker's load took, in this process and in the PostgreSQL backends serving
   * it (median of the rounds): unlike rates, CPU time hardly depends on what else runs on the machine.
   */
  readonly cpu: { readonly node: number; readonly postgres: number }
  readonly copy: Rates
  readonly seed: Rates
}

export interface Rates {
  readonly rounds: ReadonlyArray<number>
  readonly median: number
}

const rates = (rounds: ReadonlyArray<number>): Rates => ({ rounds, median: median(rounds) })

/** A COPY text field: `\N` is NULL, backslash escapes as COPY writes them. */
const unescape = (field: string): string | null =>
  field === "\\N"
    ? null
    : field.includes("\\")
    ? field.replace(/\\(.)/g, (_, c: string) => (c === "t" ? "\t" : c === "n" ? "\n" : c === "r" ? "\r" : c))
    : field

/** The seed's way: multi-row INSERT statements of SEED_BATCH rows, one after the other, each committed. */
const seedLoad = (url: string, file: string) =>
  Effect.promise(async () => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      const insert = (rows: Array<Array<string | null>>) => {
        const values = rows.map((_, r) => `(${[1, 2, 3, 4, 5, 6].map((c) => `$${r * 6 + c}`).join(", ")})`)
        return client.query(`INSERT INTO telemetry_data (${COLUMNS}) VALUES ${values.join(", ")}`, rows.flat())
      }
      let batch: Array<Array<string | null>> = []
      for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
        batch.push(line.split("\t").map(unescape))
        if (batch.length === SEED_BATCH) {
          await insert(batch)
          batch = []
        }
      }
      if (batch.length > 0) await insert(batch)
    } finally {
      await client.end()
    }
  })

/** Generates `payload`, stores it as ingest would, and answers the object and a claim of it. */
export const storedPayload = (payload: PayloadSpec) =>
  Effect.gen(function*() {
    const storage = yield* ObjectStore
    const source = gzippedPayload(payload)
    const claimId = randomUUID()
    const receivedAt = new Date()
    // Known once the stream ended (the payload's size and hash), then kept: a hash is digested once.
    let known: PayloadFacts | undefined
    const facts = (): PayloadFacts => {
      if (known !== undefined) return known
      const { bytes, sha256 } = source.facts()
      return known = {
        claimId,
        requestId: `bench-${claimId}`,
        deviceId: "bench",
        tenantId: "default",
        timeZone: "UTC",
        receivedAt,
        originalSize: bytes,
        sha256,
        items: Math.ceil(payload.readings / READINGS_PER_ITEM),
        readings: payload.readings
      }
    }
    const object = yield* storage.put(
      objectKey(claimId, receivedAt),
      NodeStream.fromReadable(() => source.stream, (e) => e as Error),
      Effect.sync(() => factsToMetadata(facts()))
    ).pipe(Effect.orDie)
    return { object, stored: claimFor(facts(), object, storage) }
  })

/** A payload loaded `rounds` times into a fresh database, read from the storage `storage` configures. */
export interface LoadRounds {
  readonly payload: PayloadSpec
  readonly rounds: number
  readonly storage: Record<string, string>
}

export const workerBenchmark = (options: LoadRounds) =>
  Effect.gen(function*() {
    const { payload, rounds } = options
    const db = yield* freshDatabase
    const dir = yield* Effect.acquireRelease(
      Effect.promise(() => mkdtemp(join(tmpdir(), "bench-copy-"))),
      (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
    )
    const rowsFile = join(dir, "telemetry_data.copy")
    const env = { ...options.storage, ...largePayloads, DATABASE_URL: db.url, DATABASE_POOL_SIZE: "4" }

    return yield* Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const processClaim = yield* ClaimProcessor.make

      yield* progress(`worker: generating and storing a payload of ${payload.readings.toLocaleString("en")} readings`)
      const { object, stored } = yield* storedPayload(payload)
      const payloadBytes = stored.original_size
      yield* progress(`worker: stored ${(payloadBytes / MB).toFixed(0)} MB of JSON as ${(object.size / MB).toFixed(1)} MB of gzip`)

      const count = Effect.map(sql<{ n: number }>`SELECT count(*)::int AS n FROM telemetry_data`, (r) => r[0]!.n)
      const fresh = Effect.zipRight(sql`TRUNCATE telemetry_data, claim_ledger`, sql`CHECKPOINT`)
      const check = (what: string) =>
        Effect.flatMap(count, (n) =>
          n === payload.readings ? Effect.void : Effect.dieMessage(`${what} loaded ${n} rows, not ${payload.readings}`))

      // The backends of the worker's pool (this database's connections), whose CPU time the loads add to.
      const backends = Effect.map(
        sql<{ pid: number }>`SELECT pid FROM pg_stat_activity WHERE datname = current_database()`,
        (rows) => rows.map((r) => r.pid)
      )
      const postgresCpu = Effect.map(backends, (pids) => pids.reduce((total, pid) => total + cpuSeconds(pid), 0))
      const nodeCpu: Array<number> = []
      const postgresCpuPerReading: Array<number> = []
      const worker: Array<number> = []
      const copy: Array<number> = []
      const seed: Array<number> = []
      for (let round = 1; round <= rounds; round++) {
        yield* fresh
        const claim = new ClaimCheck({ ...stored, claim_id: randomUUID() })
        const cpuBefore = [process.cpuUsage(), yield* postgresCpu] as const
        const [, workerMs] = yield* timed(processClaim(claim))
        const cpuAfter = [process.cpuUsage(cpuBefore[0]), yield* postgresCpu] as const
        yield* check("the worker")
        worker.push(payload.readings / (workerMs / 1000))
        nodeCpu.push((cpuAfter[0].user + cpuAfter[0].system) / payload.readings)
        postgresCpuPerReading.push(((cpuAfter[1] - cpuBefore[1]) * 1e6) / payload.readings)
        yield* progress(
          `worker: round ${round}/${rounds}: worker ${formatRate(worker.at(-1)!)} rows/s; CPU per reading: ` +
            `${nodeCpu.at(-1)!.toFixed(2)} µs here, ${postgresCpuPerReading.at(-1)!.toFixed(2)} µs in PostgreSQL`
        )

        if (round === 1) yield* psql(db.url, `\\copy telemetry_data (${COLUMNS}) TO '${rowsFile}'`)
        yield* fresh
        const [, copyMs] = yield* timed(psql(db.url, `\\copy telemetry_data (${COLUMNS}) FROM '${rowsFile}'`))
        yield* check("psql \\copy")
        copy.push(payload.readings / (copyMs / 1000))
        yield* progress(`worker: round ${round}/${rounds}: psql \\copy ${formatRate(copy.at(-1)!)} rows/s`)

        // Far slower and far from the worker: one round tells its rate well enough.
        if (round === 1) {
          yield* fresh
          const [, seedMs] = yield* timed(seedLoad(db.url, rowsFile))
          yield* check("the seed-style loader")
          seed.push(payload.readings / (seedMs / 1000))
          yield* progress(`worker: seed-style INSERTs ${formatRate(seed.at(-1)!)} rows/s`)
        }
      }
      const rowsBytes = (yield* Effect.promise(() => stat(rowsFile))).size
      yield* progress(`worker: the rows are ${(rowsBytes / MB).toFixed(0)} MB in COPY text`)
      return {
        readings: payload.readings,
        payloadBytes,
        storedBytes: object.size,
        worker: rates(worker),
        cpu: { node: median(nodeCpu), postgres: median(postgresCpuPerReading) },
        copy: rates(copy),
        seed: rates(seed)
      } satisfies WorkerResult
    }).pipe(
      Effect.provide(
        Layer.mergeAll(Infrastructure.objectStore, Infrastructure.telemetryStore).pipe(Layer.provide(NodeContext.layer))
      ),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
      // The worker's own log lines (a claim loaded) would drown the progress lines.
      Logger.withMinimumLogLevel(LogLevel.Warning)
    )
  })
