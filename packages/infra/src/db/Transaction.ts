import type * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Option, Ref } from "effect"

/**
 * `sql.withTransaction`, keeping the failure of its statements when the ROLLBACK after it fails too: @effect/sql
 * then dies with the ROLLBACK's error, so that a session the server ended under a statement (57P01, an operator's or
 * a failover's termination) read as "Connection terminated unexpectedly" — and the failure's SQLSTATE is what tells
 * whether the data is to blame.
 */
export const keepingFailure = (sql: SqlClient.SqlClient) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Ref.make(Option.none<E>()), (failed) =>
    sql.withTransaction(Effect.tapError(effect, (e) => Ref.set(failed, Option.some(e)))).pipe(
      Effect.catchAllDefect((defect) =>
        Effect.flatMap(Ref.get(failed), Option.match({ onNone: () => Effect.die(defect), onSome: Effect.fail }))
      )
    ))
