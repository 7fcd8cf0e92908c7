import { describe, expect, it } from "@effect/vitest"
import { ClaimQueue, ObjectStore, StorageError } from "@telemetry/domain"
import { capturingLogs, type LogLine, readingsPayload, stash } from "@telemetry/worker/testing/claims"
import { Chunk, Effect, Stream } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import {
  DLQ,
  eventually,
  freshDatabase,
  infrastructure,
  kafkaDeployment,
  loaded,
  switchable,
  tempDir,
  TOPIC,
  worker
} from "./support/pipeline.js"

describe("dead letters on Kafka (mock cluster), PostgreSQL and files", () => {
  it.scopedLive("an invalid payload's claim and a message that is not a claim go to telemetry.dlq; the object is kept", () =>
    Effect.gen(function*() {
      const { cluster, committed, env } = yield* kafkaDeployment
      yield* Effect.gen(function*() {
        const queue = yield* ClaimQueue
        const storage = yield* ObjectStore
        const invalid = yield* stash([{ equip_uuid: "dl-bad", sensor: [{ valor: 1 }] }], { deviceId: "bad-device" })
        const good = yield* stash(readingsPayload("dl-good", 40))
        yield* queue.publish(invalid.claim)
        yield* cluster.produce(TOPIC, [{ key: "k", value: "{\"hello\":\"world\"}" }])
        yield* queue.publish(good.claim)
        yield* Effect.forkScoped(worker(env))

        yield* eventually(committed, (n) => n === 3)
        const letters = yield* cluster.messages(DLQ)
        expect(letters.map((l) => l.headers["dlq-reason"])).toEqual(["invalid_payload", "unreadable_message"])
        const [bad, unreadable] = letters
        expect(bad!.key).toBe("bad-device")
        expect(JSON.parse(bad!.value!)).toEqual(JSON.parse(JSON.stringify(invalid.claim)))
        expect(bad!.headers).toMatchObject({
          "message-type": "claim-check",
          "request-id": invalid.claim.metadata.requestId,
          "dlq-attempts": "1",
          "dlq-source": `${TOPIC}/0@0`
        })
        expect(bad!.headers["dlq-error"]).toContain("[0].sensor[0].sensor_uuid")
        expect(new Date(bad!.headers["dlq-failed-at"]!).toISOString()).toBe(bad!.headers["dlq-failed-at"])
        expect(unreadable).toMatchObject({ key: "k", value: "{\"hello\":\"world\"}" })
        expect(unreadable!.headers).toMatchObject({ "dlq-source": `${TOPIC}/0@1`, "dlq-attempts": "0" })
        // The rejected payload stays in storage; the good claim around it loaded.
        expect((yield* storage.head(invalid.claim.claim_check)).key).toBe(invalid.claim.claim_check)
        expect(yield* loaded("dl-")).toEqual({ readings: 40, distinct_readings: 40, claims: 1 })
      }).pipe(Effect.provide(infrastructure(env)))
    }), { timeout: 120_000 })

  it.scopedLive("a claim that keeps failing while storage and database answer goes to telemetry.dlq as retries_exhausted", () =>
    Effect.gen(function*() {
      const { cluster, committed, env } = yield* kafkaDeployment
      yield* Effect.gen(function*() {
        const queue = yield* ClaimQueue
        const storage = yield* ObjectStore
        const poison = yield* stash(readingsPayload("rx-poison", 10))
        // Reads of this one object always break; storage as such answers.
        const broken = ObjectStore.of({
          ...storage,
          get: (key) =>
            key === poison.claim.claim_check
              ? Stream.fail(new StorageError({ operation: "get", key, message: "internal error (500)" }))
              : storage.get(key)
        })
        yield* queue.publish(poison.claim)
        yield* Effect.forkScoped(worker(env).pipe(Effect.provideService(ObjectStore, broken)))

        yield* eventually(committed, (n) => n === 1)
        const letters = yield* cluster.messages(DLQ)
        expect(letters.map((l) => [l.headers["dlq-reason"], l.headers["dlq-attempts"], l.headers["dlq-error"]])).toEqual([
          ["retries_exhausted", "3", "internal error (500)"]
        ])
        expect(yield* loaded("rx-")).toEqual({ readings: 0, distinct_readings: 0, claims: 0 })
      }).pipe(Effect.provide(infrastructure(env)))
    }), { timeout: 120_000 })

  it.scopedLive("with the database down a claim is not dead-lettered: it comes back and loads once when the database is back", () =>
    Effect.gen(function*() {
      const { cluster, committed, database, env } = yield* kafkaDeployment
      const outage = yield* switchable(database.name)
      const logs: Array<LogLine> = []
      yield* Effect.gen(function*() {
        const queue = yield* ClaimQueue
        const claim = yield* stash(readingsPayload("down-a", 500))
        yield* outage.down
        yield* queue.publish(claim.claim)
        yield* Effect.forkScoped(capturingLogs(logs)(worker(env)))

        // The claim was tried, given back and tried again by a new consumer.
        const outages = () => logs.filter((l) => l.message.includes("the database is down")).length
        yield* eventually(Effect.sync(outages), (n) => n >= 2)
        expect(yield* cluster.messages(DLQ)).toEqual([])
        expect(yield* committed).toBe(0)

        yield* outage.up
        yield* eventually(committed, (n) => n === 1)
        expect(yield* loaded("down-")).toEqual({ readings: 500, distinct_readings: 500, claims: 1 })
        expect(yield* cluster.messages(DLQ)).toEqual([])
      }).pipe(Effect.provide(infrastructure(env)))
    }), { timeout: 180_000 })
})

describe("dead letters of the in-process queue", () => {
  it.scopedLive("are kept in EMBEDDED_QUEUE_DIR, and a restart's recovery leaves them aside", () =>
    Effect.gen(function*() {
      const database = yield* freshDatabase
      const dir = yield* tempDir
      const env = { DATABASE_URL: database.url, STORAGE_DIR: join(dir, "objects"), EMBEDDED_QUEUE_DIR: join(dir, "queue") }

      // First run: a claim whose object is gone is rejected; then a payload is stored whose claim is lost.
      yield* Effect.scoped(Effect.gen(function*() {
        const queue = yield* ClaimQueue
        const storage = yield* ObjectStore
        const gone = yield* stash(readingsPayload("emb-gone", 10))
        yield* storage.delete(gone.claim.claim_check)
        yield* queue.publish(gone.claim)
        yield* Effect.forkScoped(worker(env))
        yield* eventually(Stream.runCount(queue.deadLetters({})), (n) => n === 1)
        yield* stash(readingsPayload("emb-lost", 20))
      }).pipe(Effect.provide(infrastructure(env))))
      const letters = readFileSync(join(dir, "queue", "dead-letters.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l))
      expect(letters).toMatchObject([{ reason: "object_not_found", attempts: 1, source: "embedded queue" }])

      // Restart: the lost claim is recovered and loaded, the dead letter is not queued again.
      const logs: Array<LogLine> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const queue = yield* ClaimQueue
        yield* Effect.forkScoped(worker(env))
        yield* eventually(loaded("emb-"), (l) => l.claims === 1)
        yield* eventually(Effect.sync(() => logs.some((l) => l.message.includes("re-queued"))), (seen) => seen)
        expect(logs.filter((l) => l.message.includes("re-queued")).map((l) => l.message)).toEqual([
          "re-queued 1 stored payload(s) that were never loaded"
        ])
        expect(Chunk.toReadonlyArray(yield* Stream.runCollect(queue.deadLetters({})))).toHaveLength(1)
        expect(yield* loaded("emb-")).toEqual({ readings: 20, distinct_readings: 20, claims: 1 })
      }).pipe(Effect.provide(infrastructure(env)), capturingLogs(logs)))
    }), { timeout: 120_000 })
})
