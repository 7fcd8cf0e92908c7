import * as SqlClient from "@effect/sql/SqlClient"
import { ObjectStore } from "@telemetry/domain"
import { Array, Duration, Effect, Option } from "effect"

// A dependency that does not answer within this long counts as down.
const PROBE_TIMEOUT = Duration.seconds(10)

const probe = (name: string, check: Effect.Effect<unknown, { readonly message: string }>) =>
  check.pipe(
    Effect.timeoutFail({ duration: PROBE_TIMEOUT, onTimeout: () => ({ message: `no answer within ${Duration.format(PROBE_TIMEOUT)}` }) }),
    Effect.as(Option.none<string>()),
    Effect.catchAll((e) => Effect.succeed(Option.some(`${name} is down (${e.message})`)))
  )

/**
 * The processor's dependencies that are unreachable now, described; empty when all answer. Storage answers a HEAD
 * of a key that is never written with "not found"; the database answers `SELECT 1`.
 */
export const make = Effect.gen(function*() {
  const storage = yield* ObjectStore
  const sql = yield* SqlClient.SqlClient
  return Effect.map(
    Effect.all([
      probe("storage", storage.head(".health-check").pipe(Effect.catchTag("ObjectNotFound", () => Effect.void))),
      probe("the database", sql`SELECT 1`)
    ], { concurrency: "unbounded" }),
    Array.getSomes
  )
})
