import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Schema } from "effect"

/**
 * A query's rows typed by `schema`, its first row checked against it: a column of the wrong type is a defect of
 * ours (the query or the schema), not a malformed response to send. Every row of a result has the same columns
 * of the same types, so one row tells; checking each of thousands of rows cost more than the query.
 */
export const checkedRows = <A, I>(schema: Schema.Schema<A, I>) => {
  const check = Schema.validate(schema)
  return (query: Effect.Effect<ReadonlyArray<unknown>, SqlError>): Effect.Effect<ReadonlyArray<A>, SqlError> =>
    query.pipe(
      Effect.tap((rows) => (rows.length === 0 ? Effect.void : check(rows[0]))),
      Effect.catchTag("ParseError", Effect.die)
    ) as Effect.Effect<ReadonlyArray<A>, SqlError>
}
