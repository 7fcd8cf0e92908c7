import { Context, type Effect } from "effect"
import type { SqlError } from "@effect/sql/SqlError"

export interface BulkCopyShape {
  /**
   * Appends rows to `table`, on the connection of the surrounding transaction. Each line is one row in
   * PostgreSQL's COPY text format (tab-separated, `\N` for NULL) ending with a newline.
   */
  readonly copyText: (
    table: string,
    columns: ReadonlyArray<string>,
    lines: ReadonlyArray<string>
  ) => Effect.Effect<void, SqlError>
}

/** Bulk loading, which `@effect/sql` has no API for: each database layer provides its own. */
export class BulkCopy extends Context.Tag("@telemetry/BulkCopy")<BulkCopy, BulkCopyShape>() {}

const ESCAPES: Record<string, string> = { "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r" }
const SPECIAL = /[\\\t\n\r]/
const SPECIALS = /[\\\t\n\r]/g

/** A text value as a COPY text-format field. */
export const copyField = (value: string | null): string =>
  value === null ? "\\N" : SPECIAL.test(value) ? value.replace(SPECIALS, (c) => ESCAPES[c]!) : value
