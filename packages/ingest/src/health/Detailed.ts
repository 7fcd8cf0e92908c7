import { ClaimQueue, WorkerStatus } from "@telemetry/domain"
import * as Health from "@telemetry/infra/Health"
import { Clock, Duration, Effect, Either, Option } from "effect"
import * as Assessment from "./Assessment.js"

const timestampOf = (millis: number | null) => (millis === null ? null : new Date(millis))

/**
 * The detailed health check, as ingest and a worker process serve it: storage, queue and database, each up or down
 * (with why); the queue `degraded` when claims do not flow, the embedded database while busy; and the worker of the
 * process, if it runs one, `degraded` when its consumer keeps restarting, its claims keep failing, or a claim loads
 * too long.
 */
export const make = Effect.gen(function*() {
  const queue = yield* ClaimQueue
  const storage = yield* Health.storageReachable
  const database = yield* Health.databaseCheck
  const worker = yield* Effect.serviceOption(WorkerStatus.WorkerStatus)
  const timeout = yield* Health.HealthCheckTimeout
  const maxClaimAge = yield* Assessment.MaxClaimAge
  const backlog = queue.backlog.pipe(
    Effect.timeoutFail({ duration: timeout, onTimeout: () => ({ message: `no answer within ${Duration.format(timeout)}` }) }),
    Effect.either
  )

  const queueCheck = Effect.gen(function*() {
    const [check, pending] = yield* Effect.all([Health.timed(queue.check, timeout), backlog], { concurrency: 2 })
    if (check.status === "down") return check
    if (Either.isLeft(pending)) {
      // Publishing works; only the backlog is unknown for now.
      yield* Effect.logWarning(`health: the queue's backlog is unknown: ${pending.left.message}`)
      return check
    }
    const { room, stalledFor, stalledPartition } = pending.right
    return {
      ...check,
      ...Assessment.assessBacklog(pending.right, maxClaimAge),
      backlog: {
        pending: pending.right.pending,
        ...(room === undefined ? {} : { waiting: room.waiting, capacity: room.capacity }),
        stalled_seconds: Math.round(Duration.toSeconds(stalledFor)),
        ...(stalledPartition === undefined ? {} : { stalled_partition: stalledPartition })
      }
    }
  })

  const workerCheck = Effect.gen(function*() {
    if (Option.isNone(worker)) return undefined
    const snapshot = yield* worker.value.snapshot
    if (!snapshot.running) return undefined
    const now = yield* Clock.currentTimeMillis
    return {
      ...Assessment.assessWorker(snapshot, now, maxClaimAge),
      restarts: Assessment.recent(snapshot.restarts, now),
      failed_deliveries: Assessment.recent(snapshot.failures, now),
      last_handled_at: timestampOf(snapshot.lastHandledAt),
      busy_since: timestampOf(snapshot.busySince)
    }
  })

  const checks = Effect.gen(function*() {
    const { worker, ...dependencies } = yield* Effect.all({
      storage: Health.timed(storage, timeout),
      queue: queueCheck,
      database: database(timeout),
      worker: workerCheck
    }, { concurrency: "unbounded" })
    const checks = { ...dependencies, ...(worker === undefined ? {} : { worker }) }
    const statuses = Object.values(checks).map((c) => c.status)
    const status = statuses.includes("down") ? "unhealthy" as const : statuses.includes("degraded") ? "degraded" as const : "healthy" as const
    return { status, checks }
  })

  return { checks, backlog }
})
