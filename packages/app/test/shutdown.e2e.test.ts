import { describe, expect, it } from "@effect/vitest"
import { ClaimQueue } from "@telemetry/domain"
import * as KafkaMock from "@telemetry/testbed/KafkaMock"
import * as S3Server from "@telemetry/testbed/S3Server"
import { readingsPayload, stash } from "@telemetry/worker/testing/claims"
import { Effect } from "effect"
import { DLQ, eventually, freshDatabase, infrastructure, loaded, loading, TOPIC } from "./support/pipeline.js"
import { type PipelineProcess, started, startWorker } from "./support/process.js"

const READINGS = 300_000

/** Its exit code, which must come within `seconds`. */
const exitWithin = (worker: PipelineProcess, seconds: number) =>
  Effect.promise(() => worker.exited).pipe(
    Effect.timeoutFail({
      duration: `${seconds} seconds`,
      onTimeout: () => new Error(`the worker did not exit within ${seconds} s; it printed:\n${worker.output().slice(-4000)}`)
    })
  )

/**
 * SIGTERM in the middle of a 300 000-reading load into PostgreSQL: with a shutdown timeout the load outlasts, it is
 * interrupted and rolled back; with one it fits in, it finishes and its offset is committed. Either way the
 * process exits by the deadline, and a restarted worker leaves the table with the claim's readings exactly once.
 */
const sigtermDuringLoad = (shutdownTimeout: string, expectLoadedBeforeRestart: boolean) =>
  Effect.gen(function*() {
    const cluster = yield* KafkaMock.start({ topics: { [TOPIC]: 3, [DLQ]: 1 } })
    const s3 = yield* Effect.acquireRelease(Effect.promise(S3Server.start), (s) => Effect.promise(s.stop))
    const database = yield* freshDatabase
    const env = { ...cluster.env, ...s3.env, ...database.env, KAFKA_SESSION_TIMEOUT: "6 seconds", KAFKA_HEARTBEAT_INTERVAL: "1 second" }
    const committed = Effect.map(cluster.committed("telemetry-workers", TOPIC), (offsets) => offsets.reduce((a, b) => a + b, 0))
    const workerEnv = (name: string) => ({ ...env, SHUTDOWN_TIMEOUT: shutdownTimeout, DATABASE_URL: `${database.url}?application_name=${name}` })

    yield* Effect.gen(function*() {
      const queue = yield* ClaimQueue
      // Both from one device: one partition, the marker after the large claim.
      const large = yield* stash(readingsPayload("term-large", READINGS), { deviceId: "device-term" })
      const marker = yield* stash(readingsPayload("term-marker", 10), { deviceId: "device-term" })
      yield* queue.publish(large.claim)

      const first = yield* started(() => startWorker(workerEnv("worker-1")))
      yield* eventually(loading("worker-1"), (busy) => busy, "120 seconds")
      first.child.kill("SIGTERM")
      // The deadline is the shutdown timeout, plus 5 s to close the clients; 10 s more for a busy machine.
      expect(yield* exitWithin(first, Number.parseInt(shutdownTimeout) + 15)).toBe(0)

      const afterStop = yield* loaded("term-large")
      expect(afterStop.readings).toBe(expectLoadedBeforeRestart ? READINGS : 0)
      expect(afterStop.claims).toBe(expectLoadedBeforeRestart ? 1 : 0)
      expect(yield* committed).toBe(expectLoadedBeforeRestart ? 1 : 0)

      yield* started(() => startWorker(workerEnv("worker-2")))
      yield* queue.publish(marker.claim)
      // The marker loads after the large claim, in order on their partition.
      yield* eventually(committed, (n) => n === 2, "180 seconds")
      expect(yield* loaded("term-large")).toEqual({ readings: READINGS, distinct_readings: READINGS, claims: 2 })
      expect(yield* loaded("term-marker")).toMatchObject({ readings: 10 })
      expect(yield* cluster.messages(DLQ)).toEqual([])
    }).pipe(Effect.provide(infrastructure(env)))
  })

describe("graceful shutdown of a worker process (Kafka mock, S3, PostgreSQL 15)", () => {
  it.scopedLive("SIGTERM during a load: the load finishes within SHUTDOWN_TIMEOUT, its offset is committed; the restart loads nothing more", () =>
    sigtermDuringLoad("60 seconds", true), { timeout: 300_000 })

  it.scopedLive("SIGTERM during a load that outlasts SHUTDOWN_TIMEOUT: it rolls back; the restart loads the claim once", () =>
    sigtermDuringLoad("0 seconds", false), { timeout: 300_000 })
})
