import { describe, expect, it } from "@effect/vitest"
import { bulkPayload } from "@telemetry/domain/testing"
import { Effect } from "effect"
import { gzipSync } from "node:zlib"
import { started, startedIngest, startWorker, until } from "./support/process.js"
import { postGzipAs } from "./support/uploads.js"
import { pgClient, runningStandIns, standIns } from "./support/standIns.js"

/** Posts as a well-behaved client does: told to come back later (429, 503), it waits `Retry-After` and does. */
describe("distributed pipeline: ingest and two workers as OS processes on Kafka, S3 and PostgreSQL", () => {
  it.scopedLive("loads every reading exactly once, also when a worker is SIGKILLed in the middle of a load", () =>
    Effect.gen(function*() {
      const { database, env: standInsEnv } = yield* runningStandIns
      const db = yield* pgClient({ connectionString: database.url })
      const scalar = async (query: string) => Number((await db.query(query)).rows[0].n)

      const env = { ...standInsEnv, KAFKA_SESSION_TIMEOUT: "6 seconds", KAFKA_HEARTBEAT_INTERVAL: "1 second" }
      const { base, ingest } = yield* startedIngest(env)
      // Each worker names its database connections, so the test can see which one is in the middle of a COPY.
      const worker = (name: string) =>
        started(() => startWorker({ ...env, DATABASE_URL: `${database.url}?application_name=${name}` }))
      const workers = { "worker-a": yield* worker("worker-a"), "worker-b": yield* worker("worker-b") }
      // On a timeout, what the workers printed says why.
      const waitUntil = (check: () => Promise<boolean>, timeoutMs: number, what: string) =>
        Effect.promise(() => until(ingest, check, timeoutMs, what)).pipe(
          Effect.tapErrorCause(() =>
            Effect.sync(() =>
              Object.entries(workers).forEach(([name, w]) => console.error(`${name} printed:\n${w.output().slice(-4000)}`))
            )
          )
        )

      // 50 payloads of 2 equipments × 100 readings from 10 devices, spread over the 3 partitions by device key.
      const small = Array.from({ length: 50 }, (_, i) => gzipSync(JSON.stringify(bulkPayload(2, 100, Date.UTC(2026, 10, 1), `p${i}`))))
      const statuses = yield* Effect.promise(() => Promise.all(small.map((body, i) => postGzipAs(base, body, `device-${i % 10}`))))
      expect(statuses.every((s) => s === 202)).toBe(true)
      const loaded = "SELECT count(*) AS n FROM telemetry_data"
      yield* waitUntil(async () => (await scalar(loaded)) === 10_000 && (await scalar("SELECT count(*) AS n FROM claim_ledger")) === 50, 120_000, "50 claims loaded")

      // Large payloads, so that a worker is caught in the middle of one.
      const large = Array.from({ length: 6 }, (_, i) => gzipSync(JSON.stringify(bulkPayload(1, 60_000, Date.UTC(2026, 9, 10), `big${i}`))))
      const bigStatuses = yield* Effect.promise(() => Promise.all(large.map((body, i) => postGzipAs(base, body, `big-device-${i}`))))
      expect(bigStatuses.every((s) => s === 202)).toBe(true)
      let victim = ""
      // In the middle of a load: a transaction that has written (its ledger row comes first) and not committed.
      yield* waitUntil(async () => {
        const loading = await db.query(
          "SELECT application_name FROM pg_stat_activity WHERE datname = current_database() AND backend_xid IS NOT NULL"
        )
        victim = loading.rows.map((r) => r.application_name as string).find((name) => name in workers) ?? ""
        return victim !== ""
      }, 120_000, "a worker in the middle of a load")
      workers[victim as keyof typeof workers].child.kill("SIGKILL")

      const expected = 10_000 + 6 * 60_000
      yield* waitUntil(async () => (await scalar(loaded)) === expected, 180_000, `${expected} rows after the takeover`)
      expect(yield* Effect.promise(() => scalar("SELECT count(DISTINCT (time, sensor_id)) AS n FROM telemetry_data"))).toBe(expected)
      expect(yield* Effect.promise(() => scalar("SELECT count(*) AS n FROM claim_ledger"))).toBe(56)
      // Nothing more arrives later: the killed worker's claim was loaded once, by the survivor.
      yield* Effect.sleep("3 seconds")
      expect(yield* Effect.promise(() => scalar(loaded))).toBe(expected)
    }).pipe(Effect.scoped, Effect.provide(standIns({ "telemetry.raw": 3 }))), { timeout: 420_000 })
})
