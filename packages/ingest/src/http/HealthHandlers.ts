import { HttpApiBuilder } from "@effect/platform"
import { ClaimQueue, Health } from "@telemetry/domain"
import { Clock, Config, Duration, Effect } from "effect"
import { TelemetryApi } from "./Api.js"
import { DetailedHealth, Unhealthy } from "./HealthApi.js"

const service = "telemetry-ingest"

const HealthCheckTimeout = Config.duration("HEALTH_CHECK_TIMEOUT").pipe(Config.withDefault(Duration.seconds(2)))

export const layer = HttpApiBuilder.group(TelemetryApi, "health", (handlers) =>
  Effect.gen(function*() {
    const queue = yield* ClaimQueue
    const storage = yield* Health.storageReachable
    const database = yield* Health.databaseReachable
    const timeout = yield* HealthCheckTimeout
    return handlers
      .handle("health", () =>
        Effect.map(Clock.currentTimeMillis, (now) => ({
          status: "healthy" as const,
          service,
          timestamp: new Date(now)
        })))
      .handle("detailed", () =>
        Effect.gen(function*() {
          const checks = yield* Effect.all({
            storage: Health.timed(storage, timeout),
            queue: Health.timed(queue.check, timeout),
            database: Health.timed(database, timeout)
          }, { concurrency: "unbounded" })
          const timestamp = new Date(yield* Clock.currentTimeMillis)
          const down = Object.values(checks).some((c) => c.status === "down")
          return down
            ? yield* Effect.fail(new Unhealthy({ status: "unhealthy", service, timestamp, checks }))
            : new DetailedHealth({ status: "healthy", service, timestamp, checks })
        }))
  }))
