import { HttpApiBuilder } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { ClaimQueue, ObjectStore } from "@telemetry/domain"
import { Clock, Config, Duration, Effect } from "effect"
import { TelemetryApi, DetailedHealth, Unhealthy } from "./Api.js"

const service = "telemetry-ingest"

const HealthCheckTimeout = Config.duration("HEALTH_CHECK_TIMEOUT").pipe(Config.withDefault(Duration.seconds(2)))

/** Runs one dependency's check, timed, and bounded so a hung dependency reads as down rather than hanging the probe. */
const timed = (check: Effect.Effect<unknown, { readonly message: string }>, timeout: Duration.Duration) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const outcome = yield* check.pipe(
      Effect.timeoutFail({ duration: timeout, onTimeout: () => ({ message: `no answer within ${Duration.format(timeout)}` }) }),
      Effect.either
    )
    const latency_ms = (yield* Clock.currentTimeMillis) - start
    return outcome._tag === "Right"
      ? { status: "up" as const, latency_ms }
      : { status: "down" as const, latency_ms, error: outcome.left.message }
  })

export const layer = HttpApiBuilder.group(TelemetryApi, "health", (handlers) =>
  Effect.gen(function*() {
    const storage = yield* ObjectStore
    const queue = yield* ClaimQueue
    const sql = yield* SqlClient.SqlClient
    const timeout = yield* HealthCheckTimeout
    // A HEAD of a key that is never written: "not found" proves the store and its bucket answer.
    const storageCheck = storage.head(".health-check").pipe(Effect.catchTag("ObjectNotFound", () => Effect.void))
    const databaseCheck = sql`SELECT 1`.pipe(Effect.mapError((e) => ({ message: e.message })))
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
            storage: timed(storageCheck, timeout),
            queue: timed(queue.check, timeout),
            database: timed(databaseCheck, timeout)
          }, { concurrency: "unbounded" })
          const timestamp = new Date(yield* Clock.currentTimeMillis)
          const down = Object.values(checks).some((c) => c.status === "down")
          return down
            ? yield* Effect.fail(new Unhealthy({ status: "unhealthy", service, timestamp, checks }))
            : new DetailedHealth({ status: "healthy", service, timestamp, checks })
        }))
  }))
