import { MAX_ID_LENGTH, MAX_TEXT_LENGTH, maxCharacters, textStorable, withoutByteOrderMark } from "@telemetry/domain"
import { Effect, ParseResult, Schema } from "effect"
import { Instant } from "../analytics/Instant.js"

// Query parameters shared by the analytics endpoints.

const ISO_DATE =
  /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+\- ]\d{2}:?\d{2})?)?$/

const EARLIEST = Date.UTC(1970, 0, 1)
const LATEST = Date.UTC(2100, 0, 1)

/**
 * An ISO-8601 date or date-time, read to the microsecond (digits past it are dropped). Without a zone it is UTC
 * (what the original's `::timestamptz` did on a UTC server). A space before the offset is read as `+`: an unencoded
 * `+` in a query string arrives as a space.
 */
const DateParam = Schema.transformOrFail(Schema.String, Schema.instanceOf(Instant), {
  strict: true,
  decode: (text, _, ast) => {
    const m = ISO_DATE.exec(text)
    const invalid = ParseResult.fail(
      new ParseResult.Type(ast, text, `must be an ISO-8601 date or date-time, e.g. 2026-11-20T10:00:00Z; got ${JSON.stringify(text)}`)
    )
    if (m === null) return invalid
    const [, year, month, day, hours = "0", minutes = "0", seconds = "0", fraction = "", zone] = m
    // Date accepts 2026-02-30 (rolling it into March) and 24:00: the calendar fields are checked here.
    const calendar = new Date(Date.UTC(Number(year), Number(month) - 1, Number(day)))
    if (
      calendar.getUTCMonth() !== Number(month) - 1 || calendar.getUTCDate() !== Number(day) ||
      Number(hours) > 23 || Number(minutes) > 59 || Number(seconds) > 59
    ) return invalid
    // Date reads the milliseconds; the next three digits are the microseconds.
    const millisText = fraction === "" ? text : text.replace(`.${fraction}`, `.${fraction.slice(0, 3)}`)
    const millis = new Date(
      m[4] === undefined ? text : zone === undefined ? `${millisText}Z` : millisText.replace(/ (\d{2}:?\d{2})$/, "+$1")
    ).getTime()
    if (Number.isNaN(millis)) return invalid
    // The readings' own range: the database has nothing outside it, and years like 0000 are not its dates.
    return millis < EARLIEST || millis > LATEST
      ? ParseResult.fail(new ParseResult.Type(ast, text, `must lie between 1970-01-01 and 2100-01-01; got ${JSON.stringify(text)}`))
      : ParseResult.succeed(new Instant({ millis, micros: Number(fraction.slice(3, 6).padEnd(3, "0")) }))
  },
  encode: (instant) => Effect.succeed(instant.toISOString())
})

/** A date parameter, documented with what it means and its default. */
export const dateParam = (meaning: string) =>
  DateParam.annotations({
    description: `${meaning}: ISO-8601 date or date-time, e.g. 2026-11-20T10:00:00Z (UTC when it has no zone)`
  })

/** An optional parameter and its default, which the OpenAPI document shows. */
export const withDefault = <A, I>(schema: Schema.Schema<A, I>, value: A) =>
  Schema.optionalWith(schema.annotations({ default: value }), { default: () => value })

/**
 * A whole number from `min` to `max`, written in decimal digits: `0x10`, `1e2` or `+5` are not read as 16, 100 or 5
 * (what `Number` would make of them).
 */
export const wholeNumber = (min: number, max: number) =>
  Schema.String.pipe(Schema.pattern(/^\d{1,15}$/), Schema.compose(Schema.NumberFromString), Schema.between(min, max))

/** The row cap of history queries. */
export const Limit = wholeNumber(1, 100_000).annotations({
  description: "at most this many rows (1..100000)",
  message: () => ({ message: "must be a whole number from 1 to 100000", override: true })
})

/**
 * A text parameter as ingest stores such text: not empty, at most `max` characters, no NUL, well-formed Unicode, no
 * leading byte order mark (ingest refuses it: no identity or text starts with one).
 */
const storedText = (max: number) =>
  Schema.String.pipe(
    Schema.minLength(1, { message: () => "must not be empty" }),
    maxCharacters(max),
    textStorable,
    withoutByteOrderMark
  )

/** An equipment or sensor uuid as ingest accepts them: whatever it accepts, analytics can be asked for. */
export const Uuid = storedText(MAX_ID_LENGTH).annotations({ description: `up to ${MAX_ID_LENGTH} characters` })

/** A sensor type, or another stored text attribute. */
export const Text = storedText(MAX_TEXT_LENGTH)
