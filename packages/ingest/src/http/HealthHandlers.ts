import { HttpApiBuilder } from "@effect/platform"
import { ClaimQueue, WorkerStatus } from "@telemetry/domain"
import * as Health from "@telemetry/infra/Health"
import { Clock, Duration, Effect, Either, Layer, Option } from "effect"
import * as Assessment from "../health/Assessment.js"
import { Admission } from "../limits/Admission.js"
import { TelemetryApi } from "./Api.js"
import { DetailedHealth, NotReady, Ready, Unhealthy } from "./HealthApi.js"

const service = "telemetry-ingest"


/**
 * Raised once the process is told to stop (SIGTERM, SIGINT), so that load balancers take it out while the uploads
 * in flight finish. The runtime's own handlers do the stopping.
 */
const stopSignal = Effect.acquireRelease(
  Effect.sync(() => {
    const signal = { raised: false, raise: () => void (signal.raised = true) }
    process.on("SIGTERM", signal.raise).on("SIGINT", signal.raise)
    return signal
  }),
  (signal) => Effect.sync(() => process.off("SIGTERM", signal.raise).off("SIGINT", signal.raise))
)

const timestampOf = (millis: number | null) => (millis === null ? null : new Date(millis))

/**
 * Health (contract §5): liveness; the detailed check of storage, queue and database (503 when one is down), which
 * also says `degraded` when claims do not flow — the queue is full, claims wait too long, the worker of this
 * process keeps restarting; and readiness, for load balancers to send uploads elsewhere while this process cannot
 * take them.
 */
export const layer = HttpApiBuilder.group(TelemetryApi, "health", (handlers) =>
  Effect.gen(function*() {
    const queue = yield* ClaimQueue
    const storage = yield* Health.storageReachable
    const database = yield* Health.databaseReachable
    const worker = yield* Effect.serviceOption(WorkerStatus.WorkerStatus)
    const admission = yield* Admission
    const timeout = yield* Health.HealthCheckTimeout
    const maxClaimAge = yield* Assessment.MaxClaimAge
    const stopping = yield* stopSignal
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
      const { room, stalledFor } = pending.right
      return {
        ...check,
        ...Assessment.assessBacklog(pending.right, maxClaimAge),
        backlog: {
          pending: pending.right.pending,
          ...(room === undefined ? {} : { waiting: room.waiting, capacity: room.capacity }),
          stalled_seconds: Math.round(Duration.toSeconds(stalledFor))
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

    /** Why this process cannot take uploads now; none when it can. */
    const notReady = Effect.gen(function*() {
      const [store, publish, pending, slots] = yield* Effect.all([
        Health.timed(storage, timeout),
        Health.timed(queue.check, timeout),
        backlog,
        admission.capacity
      ], { concurrency: "unbounded" })
      const room = Either.isRight(pending) ? pending.right.room : undefined
      return [
        ...(stopping.raised ? ["the process is shutting down"] : []),
        ...(store.status === "down" ? [`storage is down: ${store.error}`] : []),
        ...(publish.status === "down" ? [`the queue is down: ${publish.error}`] : []),
        ...(room !== undefined && room.waiting >= room.capacity ? [`the queue is full (${room.capacity} claims wait)`] : []),
        ...(slots.inFlight >= slots.max ? [`every upload slot is taken (${slots.inFlight} of ${slots.max})`] : [])
      ]
    })

    return handlers
      .handle("health", () =>
        Effect.map(Clock.currentTimeMillis, (now) => ({
          status: "healthy" as const,
          service,
          timestamp: new Date(now)
        })))
      .handle("detailed", () =>
        Effect.gen(function*() {
          const { worker, ...dependencies } = yield* Effect.all({
            storage: Health.timed(storage, timeout),
            queue: queueCheck,
            database: Health.timed(database, timeout),
            worker: workerCheck
          }, { concurrency: "unbounded" })
          const checks = { ...dependencies, ...(worker === undefined ? {} : { worker }) }
          const timestamp = new Date(yield* Clock.currentTimeMillis)
          const statuses = Object.values(checks).map((c) => c.status)
          if (statuses.includes("down")) return yield* Effect.fail(new Unhealthy({ status: "unhealthy", service, timestamp, checks }))
          return new DetailedHealth({ status: statuses.includes("degraded") ? "degraded" : "healthy", service, timestamp, checks })
        }))
      .handle("ready", () =>
        Effect.gen(function*() {
          const reasons = yield* notReady
          const timestamp = new Date(yield* Clock.currentTimeMillis)
          return reasons.length > 0
            ? yield* Effect.fail(new NotReady({ status: "not_ready", service, timestamp, reasons }))
            : new Ready({ status: "ready", service, timestamp })
        }))
  })).pipe(
    // The same instance as the one Ingest admits uploads with: layers are shared within a build.
    Layer.provide(Admission.Default)
  )
