import * as SqlClient from "@effect/sql/SqlClient"
import { ObjectStore } from "@telemetry/domain"
import { Clock, Config, Duration, Effect } from "effect"
import * as DatabaseErrors from "./db/DatabaseErrors.js"

/** One dependency's state, as the detailed health endpoint reports it. */
export interface DependencyCheck {
  readonly status: "up" | "down"
  readonly latency_ms: number
  readonly error?: string
}

export const storageReachable = Effect.map(ObjectStore, (storage) => storage.check)

/** The database answers a statement; else why not, in its own words or the socket's ("Failed to acquire …" says neither). */
export const databaseReachable = Effect.map(SqlClient.SqlClient, (sql) =>
  sql`SELECT 1`.pipe(Effect.asVoid, Effect.mapError((e) => ({ message: DatabaseErrors.explain(e) }))))

/** `HEALTH_CHECK_TIMEOUT`: how long a dependency may take to answer its check before it reads as down. */
export const HealthCheckTimeout = Config.duration("HEALTH_CHECK_TIMEOUT").pipe(Config.withDefault(Duration.seconds(2)))

/** Runs a check, timed, and bounded so that a hung dependency reads as down rather than hanging the caller. */
export const timed = (check: Effect.Effect<unknown, { readonly message: string }>, timeout: Duration.Duration) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const outcome = yield* check.pipe(
      Effect.timeoutFail({ duration: timeout, onTimeout: () => ({ message: `no answer within ${Duration.format(timeout)}` }) }),
      Effect.either
    )
    const latency_ms = (yield* Clock.currentTimeMillis) - start
    return outcome._tag === "Right"
      ? { status: "up", latency_ms } satisfies DependencyCheck
      : { status: "down", latency_ms, error: outcome.left.message } satisfies DependencyCheck
  })
