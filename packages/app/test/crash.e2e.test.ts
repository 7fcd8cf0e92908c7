import { NodeContext } from "@effect/platform-node"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { ClaimQueue } from "@telemetry/domain"
import { authEnv } from "@telemetry/ingest/testing/auth"
import { freePort } from "@telemetry/testbed/FreePort"
import * as KafkaMock from "@telemetry/testbed/KafkaMock"
import { readingsPayload, stash, type Stashed } from "@telemetry/worker/testing/claims"
import { Effect, Layer } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as Infrastructure from "../src/Infrastructure.js"
import {
  configOf,
  DLQ,
  eventually,
  freshDatabase,
  infrastructure,
  loaded,
  loading,
  tempDir,
  TOPIC
} from "./support/pipeline.js"
import { type PipelineProcess, started, startPipeline, startWorker } from "./support/process.js"

// A claim whose load takes its process down (out of memory, a native crash) must not do so forever: its deliveries
// are counted before each load, so after a restart it is not taken first (in-process queue) and past
// WORKER_MAX_DELIVERIES it is dead-lettered without loading (both queues). The crash here is a SIGKILL mid-load.

const LARGE = 300_000

/** Kills the process once it is loading a claim into the database (as `application`), and waits for it to be gone. */
const killWhileLoading = (process: PipelineProcess, application: string) =>
  Effect.gen(function*() {
    yield* eventually(loading(application), (busy) => busy, "120 seconds").pipe(
      Effect.mapError(() => new Error(`${application} never loaded; it printed:\n${process.output().slice(-4000)}`))
    )
    process.child.kill("SIGKILL")
    yield* Effect.promise(() => process.exited)
  })

const deliveriesOf = (claimId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT attempts FROM claim_attempts WHERE claim_id = ${claimId}`)

/** Where in the process's output a line about the claim first says `what`. */
const lineOf = (process: PipelineProcess, stashed: Stashed, what: string) =>
  process.output().indexOf(`claim ${stashed.claim.claim_id}: ${what}`)

describe("a claim that crashed its worker", () => {
  it.scopedLive("on the in-process queue: after the restart it goes after the other claims, and past the limit to the dead letters", () =>
    Effect.gen(function*() {
      const database = yield* freshDatabase
      const dir = yield* tempDir
      const port = yield* Effect.promise(freePort)
      const env = {
        ...authEnv,
        PORT: String(port),
        STORAGE_DIR: join(dir, "objects"),
        EMBEDDED_QUEUE_DIR: join(dir, "queue"),
        DATABASE_URL: database.url
      }
      const asApplication = (name: string) => ({ DATABASE_URL: `${database.url}?application_name=${name}` })
      // Storage and database as the test sees them; the queue belongs to the pipeline process.
      const storageAndDatabase = Layer.merge(Infrastructure.objectStore, Infrastructure.telemetryStore).pipe(
        Layer.provide(NodeContext.layer),
        Layer.provide(Layer.setConfigProvider(configOf(env)))
      )
      yield* Effect.gen(function*() {
        // Stored before the process starts: its recovery queues what the ledger does not hold.
        const large = yield* stash(readingsPayload("crash-large", LARGE), { receivedAt: new Date("2026-11-20T10:00:00Z") })
        const first = yield* started(() => startPipeline({ ...env, ...asApplication("pipeline-1") }))
        yield* killWhileLoading(first, "pipeline-1")
        expect(yield* deliveriesOf(large.claim.claim_id)).toEqual([{ attempts: 1 }])
        expect(yield* loaded("crash-")).toEqual({ readings: 0, distinct_readings: 0, claims: 0 })

        // Payloads stored meanwhile, two of the same tenant and one of another, unloaded too when the pipeline starts
        // again. The queue takes tenants in turns; the suspect goes last in its tenant's turn.
        const others = yield* Effect.forEach([1, 2, 3], (n) =>
          stash(readingsPayload(`crash-other-${n}`, 10), {
            receivedAt: new Date(`2026-11-20T11:0${n}:00Z`),
            ...(n === 3 ? { tenantId: "other" } : {})
          }))
        const second = yield* started(() => startPipeline({ ...env, ...asApplication("pipeline-2"), WORKER_MAX_DELIVERIES: "1" }))
        const letters = join(dir, "queue", "dead-letters.jsonl")
        yield* eventually(
          Effect.try(() => readFileSync(letters, "utf8")).pipe(Effect.orElseSucceed(() => "")),
          (text) => text.includes(large.claim.claim_id),
          "120 seconds"
        )
        yield* eventually(loaded("crash-other-"), (l) => l.claims === 3, "60 seconds")
        expect(readFileSync(letters, "utf8").trim().split("\n").map((line) => JSON.parse(line))).toMatchObject([
          { claim: { claim_id: large.claim.claim_id }, reason: "too_many_attempts", attempts: 1 }
        ])
        // The others were loaded before the claim that had crashed the first process was even looked at.
        const setAside = lineOf(second, large, "too many deliveries")
        expect(setAside).toBeGreaterThan(0)
        for (const other of others) expect(lineOf(second, other, "loaded")).toBeLessThan(setAside)
        expect(yield* loaded("crash-large")).toMatchObject({ readings: 0 })
        expect(yield* loaded("crash-other-")).toMatchObject({ readings: 30, claims: 3 })
        const sql = yield* SqlClient.SqlClient
        expect(yield* sql`SELECT claim_id FROM claim_attempts`).toEqual([])
      }).pipe(Effect.provide(storageAndDatabase))
    }), { timeout: 300_000 })

  it.scopedLive("on Kafka: its redelivery past WORKER_MAX_DELIVERIES goes to the dead letters, and the partition moves on", () =>
    Effect.gen(function*() {
      const cluster = yield* KafkaMock.start({ topics: { [TOPIC]: 1, [DLQ]: 1 } })
      const database = yield* freshDatabase
      const env = {
        ...cluster.env,
        STORAGE_DIR: join(yield* tempDir, "objects"),
        DATABASE_URL: database.url,
        KAFKA_SESSION_TIMEOUT: "8 seconds",
        KAFKA_HEARTBEAT_INTERVAL: "1 second"
      }
      const asApplication = (name: string) => ({ ...env, DATABASE_URL: `${database.url}?application_name=${name}` })
      const committed = Effect.map(cluster.committed("telemetry-workers", TOPIC), (offsets) => offsets.reduce((a, b) => a + b, 0))
      yield* Effect.gen(function*() {
        const queue = yield* ClaimQueue
        // One device, one partition: the claim behind waits for the large one.
        const large = yield* stash(readingsPayload("kcrash-large", LARGE), { deviceId: "device-crash" })
        const behind = yield* stash(readingsPayload("kcrash-behind", 10), { deviceId: "device-crash", tenantId: "other" })
        yield* queue.publish(large.claim)
        yield* queue.publish(behind.claim)

        yield* killWhileLoading(yield* started(() => startWorker(asApplication("worker-1"))), "worker-1")
        expect(yield* deliveriesOf(large.claim.claim_id)).toEqual([{ attempts: 1 }])
        expect(yield* committed).toBe(0)

        yield* started(() => startWorker({ ...asApplication("worker-2"), WORKER_MAX_DELIVERIES: "1" }))
        yield* eventually(committed, (n) => n === 2, "120 seconds")
        const letters = yield* cluster.messages(DLQ)
        expect(letters.map((l) => [JSON.parse(l.value!).claim_id, l.headers["dlq-reason"], l.headers["dlq-attempts"]])).toEqual([
          [large.claim.claim_id, "too_many_attempts", "1"]
        ])
        expect(yield* loaded("kcrash-large")).toMatchObject({ readings: 0 })
        expect(yield* loaded("kcrash-behind")).toMatchObject({ readings: 10 })
      }).pipe(Effect.provide(infrastructure(env)))
    }), { timeout: 300_000 })
})
