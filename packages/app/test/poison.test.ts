import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { type ClaimCheck, ClaimQueue, type DeadLetterReason, LoadError, TelemetryStore } from "@telemetry/domain"
import * as KafkaMock from "@telemetry/testbed/KafkaMock"
import { readingsPayload, refusedAs, stash } from "@telemetry/worker/testing/claims"
import { Chunk, Effect, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { join } from "node:path"
import { DLQ, eventually, freshDatabase, loaded, publishedOnly, tempDir, TOPIC, worker } from "./support/pipeline.js"

// Issue 11 §1: whatever a claim does to the loader, it is retried only while the failure is transient, then
// dead-lettered with its reason, and the claims behind it load — on both queues and both databases.

type QueueKind = "in-process queue" | "Kafka (mock cluster)"
type DatabaseKind = "PGlite TimescaleDB" | "PostgreSQL 15"

/** A worker's environment on the given queue and database, with few, quick retries. */
const environment = (queue: QueueKind, database: DatabaseKind) =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const db = database === "PostgreSQL 15"
      ? { DATABASE_URL: (yield* freshDatabase).url }
      : { EMBEDDED_DB_DIR: join(dir, "pg") }
    const claims = queue === "Kafka (mock cluster)"
      ? {
        // One partition: every claim waits for the one before it.
        KAFKA_BROKERS: (yield* KafkaMock.start({ topics: { [TOPIC]: 1, [DLQ]: 1 } })).bootstrap,
        KAFKA_SESSION_TIMEOUT: "8 seconds",
        KAFKA_HEARTBEAT_INTERVAL: "1 second"
      }
      : { EMBEDDED_QUEUE_DIR: join(dir, "queue") }
    return {
      STORAGE_DIR: join(dir, "objects"),
      WORKER_RETRY_ATTEMPTS: "3",
      WORKER_RETRY_MAX_DELAY: "50 millis",
      ...db,
      ...claims
    }
  })

/** A reading the database would store, in an item that makes it refuse the whole claim. */
const reading = { sensor_uuid: "poison-sensor", valor: 1, sensor_datahora_coleta: "2026-11-20T10:00:00Z" }

/** The attacks of the table that reach the database (ingest refuses them at the door now; old payloads remain). */
const refusedPayloads = {
  nul: [{ equip_uuid: "poison-nul", equip_nome: "freezer\u0000", sensor: [reading] }],
  // Random, so that the database cannot compress it under its limit on an index row.
  longUuid: [{ equip_uuid: `poison-${randomBytes(30_000).toString("hex")}`, sensor: [reading] }],
  outOfRange: [{ equip_uuid: "poison-range", equip_intervalo_coleta: 1e12, sensor: [reading] }]
}

/** A serialization failure as the database reports it: transient, loading again succeeds. */
const serializationFailure = (claimId: string) =>
  new LoadError({
    claimId,
    message: "could not serialize access due to concurrent update",
    transient: true,
    cause: Object.assign(new Error("could not serialize access due to concurrent update"), { code: "40001", severity: "ERROR" })
  })

/** The store, whose load of `defect` throws and whose first load of `flaky` fails transiently. */
const faultyStore = (defect: ClaimCheck, flaky: ClaimCheck) =>
  Effect.map(TelemetryStore, (store) => {
    let flakyLoads = 0
    return TelemetryStore.of({
      ...store,
      load: (claim, items) =>
        Effect.suspend(() => {
          if (claim.claim_id === defect.claim_id) return Effect.die(new TypeError("Cannot read properties of undefined (reading 'id')"))
          if (claim.claim_id === flaky.claim_id && ++flakyLoads === 1) return Effect.fail(serializationFailure(claim.claim_id))
          return store.load(claim, items)
        })
    })
  })

/** The claims of the good tenant in the ledger. */
const goodLoaded = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql<{ n: number }>`SELECT count(*)::int AS n FROM claim_ledger WHERE tenant_id = 'good'`, (rows) => rows[0]!.n))

const deadLettered = Effect.flatMap(ClaimQueue, (queue) =>
  Effect.map(Stream.runCollect(queue.deadLetters({})), (letters) =>
    Chunk.toReadonlyArray(letters).map((letter) => [letter.claim?.claim_id, letter.reason] as const)))

const poisonThenGood = (queueKind: QueueKind, databaseKind: DatabaseKind) =>
  Effect.gen(function*() {
    const env = yield* environment(queueKind, databaseKind)
    yield* Effect.gen(function*() {
      const queue = yield* ClaimQueue
      const attacker = { tenantId: "attacker", deviceId: "attacker-device" }
      const defect = yield* stash(readingsPayload("poison-defect", 5), attacker)
      const nul = yield* stash(refusedPayloads.nul, attacker)
      const longUuid = yield* stash(refusedPayloads.longUuid, attacker)
      const outOfRange = yield* stash(refusedPayloads.outOfRange, attacker)
      const flaky = yield* stash(readingsPayload("flaky", 5), attacker)
      // Each poison claim is followed by a good claim of another tenant.
      const order = [defect, nul, longUuid, outOfRange, flaky]
      for (const [n, poison] of order.entries()) {
        yield* queue.publish(poison.claim)
        yield* queue.publish((yield* stash(readingsPayload(`good-${n}`, 20), { tenantId: "good", deviceId: "good-device" })).claim)
      }
      yield* Effect.forkScoped(worker(env).pipe(Effect.provideService(TelemetryStore, yield* faultyStore(defect.claim, flaky.claim))))

      // The good claims load within seconds, however the poison ones behave; no worker is stuck on one.
      yield* eventually(goodLoaded, (n) => n === order.length, "30 seconds")
      const expected: ReadonlyArray<readonly [string, DeadLetterReason]> = [
        [defect.claim.claim_id, "loader_defect"],
        [nul.claim.claim_id, yield* refusedAs(refusedPayloads.nul)],
        [longUuid.claim.claim_id, yield* refusedAs(refusedPayloads.longUuid)],
        [outOfRange.claim.claim_id, yield* refusedAs(refusedPayloads.outOfRange)]
      ]
      yield* eventually(deadLettered, (letters) => letters.length === expected.length, "10 seconds")
      expect(yield* deadLettered).toEqual(expected)
      // The transient failure was retried, and the claim loaded.
      expect(yield* loaded("flaky")).toMatchObject({ readings: 5 })
      expect(yield* loaded("poison-")).toMatchObject({ readings: 0 })
      expect(yield* loaded("good-")).toMatchObject({ readings: 20 * order.length })
      // Nothing is left of their deliveries.
      const sql = yield* SqlClient.SqlClient
      expect(yield* sql`SELECT claim_id FROM claim_attempts`).toEqual([])
    }).pipe(Effect.provide(publishedOnly(env)))
  })

for (const queueKind of ["in-process queue", "Kafka (mock cluster)"] as const) {
  describe(`poison claims on the ${queueKind}`, () => {
    for (const databaseKind of ["PGlite TimescaleDB", "PostgreSQL 15"] as const) {
      it.scopedLive(
        `on ${databaseKind}: a loader defect, data the database refuses and a transient failure do not hold up the claims behind them`,
        () => poisonThenGood(queueKind, databaseKind),
        { timeout: 180_000 }
      )
    }
  })
}

describe("a transient database failure in the middle of a load", () => {
  it.scopedLive("on PostgreSQL 15: the worker's connection cut during its COPY is retried, and the claim loads once", () =>
    Effect.gen(function*() {
      const database = yield* freshDatabase
      const dir = yield* tempDir
      const env = {
        DATABASE_URL: `${database.url}?application_name=cut-worker`,
        STORAGE_DIR: join(dir, "objects"),
        EMBEDDED_QUEUE_DIR: join(dir, "queue"),
        WORKER_RETRY_MAX_DELAY: "100 millis"
      }
      yield* Effect.gen(function*() {
        const queue = yield* ClaimQueue
        const sql = yield* SqlClient.SqlClient
        const large = yield* stash(readingsPayload("cut", 300_000))
        const behind = yield* stash(readingsPayload("cut-behind", 10), { tenantId: "good" })
        yield* queue.publish(large.claim)
        yield* queue.publish(behind.claim)
        yield* Effect.forkScoped(worker(env))
        const copying = sql<{ pid: number }>`SELECT pid FROM pg_stat_activity
          WHERE application_name = 'cut-worker' AND state = 'active' AND query LIKE 'COPY%'`
        const [backend] = yield* eventually(copying, (rows) => rows.length > 0, "60 seconds").pipe(Effect.zipRight(copying))
        // Its transaction cannot even roll back: @effect/sql turns that into a defect, which is still the database's.
        if (backend !== undefined) yield* sql`SELECT pg_terminate_backend(${backend.pid})`
        yield* eventually(loaded("cut"), (l) => l.claims === 2, "60 seconds")
        expect(yield* loaded("cut-behind")).toMatchObject({ readings: 10 })
        expect(yield* loaded("cut")).toMatchObject({ readings: 300_010, distinct_readings: 300_010 })
        expect(yield* deadLettered).toEqual([])
      }).pipe(Effect.provide(publishedOnly(env)))
    }), { timeout: 180_000 })
})
