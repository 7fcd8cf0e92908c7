import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Schema } from "effect"

/**
 * A query's rows checked against `schema`: a column of the wrong type is a defect of ours (the query or the schema),
 * not a malformed response to send.
 */
export const decodedRows = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknown(Schema.Array(Schema.typeSchema(schema)))
  return (query: Effect.Effect<ReadonlyArray<unknown>, SqlError>) =>
    query.pipe(Effect.flatMap(decode), Effect.catchTag("ParseError", Effect.die))
}
