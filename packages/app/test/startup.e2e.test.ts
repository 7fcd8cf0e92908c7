import { describe, expect, it } from "@effect/vitest"
import { ClaimQueue } from "@telemetry/domain"
import { authEnv } from "@telemetry/ingest/testing/auth"
import * as KafkaMock from "@telemetry/testbed/KafkaMock"
import * as S3Server from "@telemetry/testbed/S3Server"
import { readingsPayload, stash } from "@telemetry/worker/testing/claims"
import { Effect } from "effect"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DLQ, eventually, freshDatabase, infrastructure, loaded, switchable, TOPIC } from "./support/pipeline.js"
import { started, startPipeline, startWorker } from "./support/process.js"

// Issue 11 §5: a worker started while its services are unreachable waits for them — logging what it waits for —
// instead of exiting, and works once they are there.

describe("a worker process started before its services", () => {
  it.scopedLive("waits for storage, the database and Kafka, then loads the claim waiting for it", () =>
    Effect.gen(function*() {
      const cluster = yield* KafkaMock.start({ topics: { [TOPIC]: 1, [DLQ]: 1 } })
      const s3 = yield* Effect.acquireRelease(Effect.promise(S3Server.start), (s) => Effect.promise(s.stop))
      const database = yield* freshDatabase
      const outage = yield* switchable(database.name)
      const env = { ...cluster.env, ...s3.env, ...database.env, KAFKA_SESSION_TIMEOUT: "8 seconds", KAFKA_HEARTBEAT_INTERVAL: "1 second" }

      yield* Effect.gen(function*() {
        const queue = yield* ClaimQueue
        yield* queue.publish((yield* stash(readingsPayload("late-start", 10))).claim)
      }).pipe(Effect.scoped, Effect.provide(infrastructure(env)))

      yield* Effect.promise(() => s3.down())
      yield* outage.down
      yield* cluster.brokerDown(1)
      const worker = yield* started(() => startWorker(env))
      const printed = (text: string) => eventually(Effect.sync(() => worker.output().includes(text)), (seen) => seen, "60 seconds")

      // Storage and database are built side by side; Kafka once they are there.
      yield* printed("startup: storage is unreachable")
      yield* printed("startup: the database is unreachable")
      yield* Effect.sleep("3 seconds")
      expect(worker.child.exitCode).toBeNull()
      yield* Effect.promise(() => s3.up())
      yield* outage.up
      yield* printed("startup: Kafka is unreachable")
      expect(worker.child.exitCode).toBeNull()
      yield* cluster.brokerUp(1)

      yield* Effect.gen(function*() {
        yield* eventually(loaded("late-start"), (l) => l.readings === 10, "120 seconds").pipe(
          Effect.mapError(() => new Error(`the claim was not loaded; the worker printed:\n${worker.output().slice(-4000)}`))
        )
      }).pipe(Effect.scoped, Effect.provide(infrastructure(env)))
      expect(worker.child.exitCode).toBeNull()
    }), { timeout: 240_000 })

  it.scopedLive("exits at once on a configuration error, naming the variable, not waiting for it as for a service", () =>
    Effect.gen(function*() {
      const storage = yield* Effect.acquireRelease(
        Effect.promise(() => mkdtemp(join(tmpdir(), "startup-"))),
        (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
      )
      const worker = yield* started(() =>
        startWorker({
          DATABASE_URL: "postgres://postgres@127.0.0.1:5432/postgres",
          DATABASE_POOL_SIZE: "0",
          KAFKA_BROKERS: "127.0.0.1:9",
          STORAGE_DIR: storage
        })
      )
      expect(yield* Effect.promise(() => worker.exited)).not.toBe(0)
      expect(worker.output()).toMatch(/DATABASE_POOL_SIZE: \\?"must be at least 1/)
      expect(worker.output()).not.toContain("unreachable")
    }), { timeout: 60_000 })
})

describe("the embedded pipeline (pnpm start)", () => {
  // Settings read where they are used — by the worker's fiber, per request, by the logger — stopped nothing: a
  // server took uploads that nothing loaded, or failed every login, or exited without a word.
  for (const [variable, value, said] of [
    ["WORKER_RETRY_ATTEMPTS", "bogus", /WORKER_RETRY_ATTEMPTS: \\?"Expected an integer/],
    ["TRUSTED_PROXY_HOPS", "x", /TRUSTED_PROXY_HOPS: \\?"Expected an integer/],
    ["LOG_FORMAT", "xml", /LOG_FORMAT: \\?"Expected one of \(json, logfmt, pretty\)/]
  ] as const) {
    it.scopedLive(`exits at once, naming it, on a bad ${variable}`, () =>
      Effect.gen(function*() {
        const dir = yield* Effect.acquireRelease(
          Effect.promise(() => mkdtemp(join(tmpdir(), "startup-"))),
          (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
        )
        const pipeline = yield* started(() =>
          startPipeline({
            ...authEnv,
            PORT: "0",
            STORAGE_DIR: join(dir, "objects"),
            EMBEDDED_DB_DIR: join(dir, "pg"),
            EMBEDDED_QUEUE_DIR: join(dir, "queue"),
            [variable]: value
          })
        )
        expect(yield* Effect.promise(() => pipeline.exited)).toBe(1)
        expect(pipeline.output()).toMatch(said)
      }), { timeout: 60_000 })
  }
})
