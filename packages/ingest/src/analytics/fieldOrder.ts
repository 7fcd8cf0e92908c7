import type { Schema } from "effect"

/**
 * Rows reduced to the fields of `schema`, in the schema's order: as JSON, what encoding them with the schema
 * writes (their values are JSON already, dates aside, which write themselves as ISO-8601 the same way), without
 * walking every value of a large answer through the schema again. Rows of one query share their columns, in
 * order: when the first has exactly the schema's fields, all of them are sent as they are.
 */
export const inFieldOrder = <Fields extends Schema.Struct.Fields>(schema: Schema.Struct<Fields>) => {
  const keys = Object.keys(schema.fields)
  const project = (row: object): object => {
    const out: Record<string, unknown> = {}
    for (const key of keys) out[key] = (row as Record<string, unknown>)[key]
    return out
  }
  const asIs = (row: object) => {
    const own = Object.keys(row)
    return own.length === keys.length && own.every((key, i) => key === keys[i])
  }
  return (rows: ReadonlyArray<object>): ReadonlyArray<object> =>
    rows.length === 0 || asIs(rows[0]!) ? rows : rows.map(project)
}
