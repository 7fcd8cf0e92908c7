import * as SqlClient from "@effect/sql/SqlClient"
import { ObjectStore } from "@telemetry/domain"
import { Clock, Config, Duration, Effect, Option } from "effect"
import * as DatabaseErrors from "./db/DatabaseErrors.js"
import { EmbeddedSession } from "./db/EmbeddedSession.js"

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

/** The database's check, `degraded` where it answers, but late. */
export interface DatabaseCheck extends Omit<DependencyCheck, "status"> {
  readonly status: DependencyCheck["status"] | "degraded"
  /** Why it is degraded. */
  readonly reason?: string
}

/**
 * The database's check, bounded by `timeout`. The embedded database is in this process and runs one statement at a
 * time: a check that waited out its time behind a transaction holding the session (a load, for seconds) finds it
 * busy, not down — `degraded`, saying for how long; its statements answer once that transaction ends.
 */
export const databaseCheck = Effect.gen(function*() {
  const database = yield* databaseReachable
  const session = yield* Effect.serviceOption(EmbeddedSession)
  return (timeout: Duration.Duration) =>
    Effect.gen(function*() {
      // Disconnected: waiting for the session cannot be interrupted, and held the check (and its answer) until then.
      const check: DatabaseCheck = yield* timed(Effect.disconnect(database), timeout)
      if (check.status === "up" || check.latency_ms < Duration.toMillis(timeout) || Option.isNone(session)) return check
      const heldSince = yield* session.value.heldSince
      if (heldSince === null) return check
      const held = Duration.format(Duration.seconds(Math.round(((yield* Clock.currentTimeMillis) - heldSince) / 1000)))
      return {
        status: "degraded",
        latency_ms: check.latency_ms,
        reason: `${check.error}: the embedded database runs one statement at a time, and the one holding it has for ${held}`
      } satisfies DatabaseCheck
    })
})
