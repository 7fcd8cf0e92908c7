import { HttpApiBuilder } from "@effect/platform"
import { ClaimQueue } from "@telemetry/domain"
import * as Health from "@telemetry/infra/Health"
import { Clock, Effect, Either, Layer } from "effect"
import * as Detailed from "../health/Detailed.js"
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
    const admission = yield* Admission
    const timeout = yield* Health.HealthCheckTimeout
    const stopping = yield* stopSignal
    const { backlog, checks } = yield* Detailed.make

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
          const { checks: current, status } = yield* checks
          const timestamp = new Date(yield* Clock.currentTimeMillis)
          if (status === "unhealthy") return yield* Effect.fail(new Unhealthy({ status, service, timestamp, checks: current }))
          return new DetailedHealth({ status, service, timestamp, checks: current })
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
