import type { SqlError } from "@effect/sql/SqlError"
import { Context, type Effect } from "effect"

export interface BulkCopyShape {
  /**
   * Appends rows to `table`, on the connection of the surrounding transaction. Each element holds one or more
   * rows in PostgreSQL's COPY text format (tab-separated, `\N` for NULL; as text, or as its UTF-8 bytes), each
   * ending with a newline. They are read as the COPY goes out, so a lazy iterable lets the server load the first
   * rows while the rest are made.
   */
  readonly copyText: (
    table: string,
    columns: ReadonlyArray<string>,
    rows: Iterable<string | Uint8Array>
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

const DAY = 86_400_000_000
const TWO_DIGITS = Array.from({ length: 100 }, (_, n) => String(n).padStart(2, "0"))
let lastDay = NaN
let lastDate = ""

/**
 * A time (epoch microseconds, years 0 to 9999) as a COPY field of a timestamptz: `YYYY-MM-DD hh:mm:ss.uuuuuu+00`.
 * A tenth of the cost of `toISOString`, which a row of every reading would pay: the date is made once a day.
 */
export const copyTimestamp = (micros: number): string => {
  const us = Math.floor(micros)
  const day = Math.floor(us / DAY)
  if (day !== lastDay) {
    lastDate = new Date(day * 86_400_000).toISOString().slice(0, 10)
    lastDay = day
  }
  let rest = us - day * DAY
  const hours = Math.floor(rest / 3_600_000_000)
  rest -= hours * 3_600_000_000
  const minutes = Math.floor(rest / 60_000_000)
  rest -= minutes * 60_000_000
  const seconds = Math.floor(rest / 1_000_000)
  const fraction = String(rest - seconds * 1_000_000).padStart(6, "0")
  return `${lastDate} ${TWO_DIGITS[hours]}:${TWO_DIGITS[minutes]}:${TWO_DIGITS[seconds]}.${fraction}+00`
}
