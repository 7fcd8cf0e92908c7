/**
 * Values ingest must accept and store as sent (issue 11): adversarial but storable text, extreme numbers, and
 * reading times at the edges of the accepted range and of Berlin's clock changes, each with the instant it means,
 * worked out here independently of the pipeline's parser.
 */
import { MAX_ID_LENGTH, MAX_TEXT_LENGTH } from "@telemetry/domain"
import { FastCheck as fc } from "effect"

/** Pieces of text that stress every layer's escaping: JSON, COPY's text format, SQL, URLs, Unicode. */
const TRICKY = [
  "\"", "'", "\\", "\\\\", "\t", "\n", "\r", "\r\n", "\\.", "\\N", "\\n", "\\t", "\\x", "NULL", "%", "%00", "/", "?", "#",
  "&", "+", " ", "'; DROP TABLE sensors; --", "😀", "𝕏", "👨‍👩‍👧", "\u200f", "\u202e", "\u200b", "\ufeff", "\u2028",
  "\u0085", "e\u0301", "\u00e9", "\u00a0", "\u0001", "\u001f", "\u007f", "{", "}", "[", "]", ",", ":", "ß", "İ", "日本",
  "עברית", "العربية", "\uffff", "\ufffd"
]

/** `text` cut to `max` UTF-16 units without splitting a surrogate pair. */
const cut = (text: string, max: number) => {
  const cutText = text.slice(0, max)
  return cutText.isWellFormed() ? cutText : cutText.slice(0, -1)
}

/** `text` filled up to exactly `length` units, the last a plain letter if a pair would not fit. */
const exactly = (text: string, length: number) => {
  const filled = (text + "x".repeat(length)).slice(0, length)
  return filled.isWellFormed() ? filled : `${filled.slice(0, -1)}x`
}

/**
 * Text of at most `max` units (at least `min`) that the database can store as sent: no NUL, no lone surrogate, not
 * starting with U+FEFF (which the embedded database reads back without). Some is exactly `max` long, the
 * documented limit.
 */
export const storableText = (max: number, min = 0) =>
  fc.oneof(
    fc.array(fc.constantFrom(...TRICKY), { maxLength: 6 }).map((pieces) => cut(pieces.join(""), max)),
    fc.string({ unit: "binary", maxLength: 24 }).map((s) => cut(s.replaceAll("\0", ""), max)),
    fc.array(fc.constantFrom(...TRICKY), { minLength: 1, maxLength: 4 }).map((pieces) => exactly(pieces.join(""), max))
  ).filter((s) => s.length >= min && s.isWellFormed() && !s.includes("\0") && !s.startsWith("\ufeff"))

/** Identifiers (equipment and sensor uuids): not empty nor whitespace alone, up to 128 units. */
export const storableId = storableText(MAX_ID_LENGTH, 1).filter((s) => s.trim() !== "")

/** Names, units, statuses: up to 256 units. */
export const storableName = storableText(MAX_TEXT_LENGTH)

/** Text that can only be a status, never a number: it holds a character no numeric string has. */
export const statusText = storableName.filter((s) => /[^\s0-9.eE+-]/u.test(s))

/** Reading values at the edges of what is accepted (±1e100) and of what a double holds. */
const EXTREME = [1e100, -1e100, -0, 0, 5e-324, -5e-324, 1e21, -1e21, 2.2250738585072014e-308, Number.MAX_SAFE_INTEGER, 0.1, 1 / 3, -18.5]

export const extremeNumber = fc.oneof(
  fc.constantFrom(...EXTREME),
  fc.double({ min: -1e100, max: 1e100, noNaN: true, noDefaultInfinity: true })
)

/** Numeric strings, as devices send values, with the number each means. */
export const numericText = fc.constantFrom<readonly [string, number]>(
  ["1e21", 1e21],
  ["1E+21", 1e21],
  ["-0", -0],
  ["5e-324", 5e-324],
  ["-1e100", -1e100],
  ["1e100", 1e100],
  [" 42 ", 42],
  ["+.5", 0.5],
  ["-18.50", -18.5],
  ["007", 7],
  ["1.", 1],
  ["0.000001", 1e-6]
)

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

/** The zone in which naive times are read (DEFAULT_TIMEZONE of the tests). */
export const ZONE = "Europe/Berlin"

const zoneClock = new Intl.DateTimeFormat("en-US", {
  timeZone: ZONE,
  hourCycle: "h23",
  year: "numeric",
  month: "numeric",
  day: "numeric",
  hour: "numeric",
  minute: "numeric",
  second: "numeric"
})

/** The offset of Berlin's clocks from UTC at instant `t` (ms), from the runtime's time zone data. */
const offsetAt = (t: number) => {
  const p = Object.fromEntries(zoneClock.formatToParts(t).map((part) => [part.type, Number(part.value)]))
  return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!) - Math.floor(t / 1000) * 1000
}

/**
 * The instant a Berlin wall-clock time (given as the same wall-clock time in UTC, ms) means, by the documented
 * rules: of a time shown twice, the first; a time the clocks skipped is read with the offset before the change.
 */
const instantOfWallClock = (wall: number) => {
  const fitting = [wall - 2 * HOUR, wall - HOUR].filter((t) => t + offsetAt(t) === wall)
  return fitting.length > 0 ? Math.min(...fitting) : wall - offsetAt(wall - DAY)
}

/** Last Sunday of March: Berlin's clocks skip 02:00 to 03:00 that night. */
const springForward = (year: number) => {
  let day = 31
  while (new Date(Date.UTC(year, 2, day)).getUTCDay() !== 0) day--
  return Date.UTC(year, 2, day)
}

/**
 * The days reading times fall on (few, so that the hypertable's daily chunks stay few): the first days of the
 * accepted range, Berlin's spring-forward and fall-back nights, a recent day, the last day of the range.
 */
const DAYS = [
  Date.UTC(1970, 0, 1),
  Date.UTC(1970, 0, 2),
  springForward(2026),
  Date.UTC(2026, 9, 25),
  Date.UTC(2026, 11, 1),
  // The latest day whose every wall-clock time, in any offset, is within a day after now (readings later are refused).
  Math.floor(Date.now() / DAY) * DAY - DAY
]
const GAP_DAYS = [springForward(2025), springForward(2026)]

export const OFFSETS = [0, 60, -180, 330, 840, -720, 545]

const two = (n: number) => String(n).padStart(2, "0")

/** `YYYY-MM-DD`, the separator, `hh:mm:ss` of a wall-clock time given in UTC ms. */
const wallText = (wall: number, separator: string, seconds: boolean) => {
  const d = new Date(wall)
  const date = `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}`
  const time = `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}${seconds ? `:${two(d.getUTCSeconds())}` : ""}`
  return `${date}${separator}${time}`
}

const offsetText = (minutes: number, style: number) => {
  const sign = minutes < 0 ? "-" : "+"
  const hh = two(Math.floor(Math.abs(minutes) / 60))
  const mm = two(Math.abs(minutes) % 60)
  return style === 0 || mm !== "00" ? `${sign}${hh}:${mm}` : style === 1 ? `${sign}${hh}${mm}` : `${sign}${hh}`
}

/** A reading time as sent, and the instant it means in epoch microseconds. */
export interface SentTime {
  readonly text: string
  readonly micros: number
}

/** The fraction of a second written with `digits` digits (0 to 9) for `micros`; digits past the 6th do not count. */
const fraction = (micros: number, digits: number) =>
  digits === 0 ? "" : `.${String(micros).padStart(6, "0")}789`.slice(0, digits + 1)
/** The microseconds those digits keep. */
const kept = (micros: number, digits: number) => (digits >= 6 ? micros : Math.floor(micros / 10 ** (6 - digits)) * 10 ** (6 - digits))

/**
 * A reading time in one of the forms ingest accepts — UTC (`Z` or `z`), an offset (`+05:30`, `+0530`, `+05`), naive
 * (Berlin's wall clock, also in the repeated hour), naive in the hour the clocks skipped, a date alone — with `T`
 * or a space, to the minute or with 0 to 9 fraction digits, sometimes padded with spaces.
 */
export const sentTime: fc.Arbitrary<SentTime> = fc.record({
  day: fc.constantFrom(...DAYS),
  second: fc.integer({ min: 0, max: DAY / 1000 - 1 }),
  micros: fc.integer({ min: 0, max: 999_999 }),
  digits: fc.constantFrom(0, 1, 3, 6, 9),
  form: fc.constantFrom("Z", "z", "offset", "naive", "gap", "date"),
  offset: fc.constantFrom(...OFFSETS),
  offsetStyle: fc.nat(2),
  separator: fc.constantFrom("T", " "),
  minutesOnly: fc.boolean(),
  padded: fc.boolean()
}).map((t): SentTime => {
  const digits = t.minutesOnly ? 0 : t.digits
  const second = t.minutesOnly ? Math.floor(t.second / 60) * 60 : t.second
  const micros = t.minutesOnly ? 0 : kept(t.micros, digits)
  const clock = (wall: number) => wallText(wall, t.separator, !t.minutesOnly) + fraction(t.micros, digits)
  const pad = (text: string) => (t.padded ? ` ${text} ` : text)
  const instant = t.day + second * 1000
  const sent = (text: string, at: number): SentTime => ({ text: pad(text), micros: at * 1000 + micros })
  switch (t.form) {
    case "offset": {
      const wall = instant + t.offset * MINUTE
      // A wall clock before 1970 is refused as out of range, whatever instant its offset makes of it.
      if (new Date(wall).getUTCFullYear() >= 1970) return sent(clock(wall) + offsetText(t.offset, t.offsetStyle), instant)
      return sent(`${clock(instant)}Z`, instant)
    }
    case "naive": {
      const wall = instant + offsetAt(instant)
      return sent(clock(wall), instantOfWallClock(wall))
    }
    case "gap": {
      const wall = GAP_DAYS[t.second % GAP_DAYS.length]! + 2 * HOUR + (second * 1000) % HOUR
      return sent(clock(wall), instantOfWallClock(wall))
    }
    case "date": {
      // Midnight in Berlin of the first day of 1970 is still 1969 in UTC: the day after.
      const day = Math.max(t.day, DAYS[1]!)
      return { text: pad(wallText(day, "T", false).slice(0, 10)), micros: instantOfWallClock(day) * 1000 }
    }
    default:
      return sent(`${clock(instant)}${t.form}`, instant)
  }
})

/** The same instant written another way (UTC or an offset): a duplicate of a reading. */
export const sameInstant = (micros: number, offset: number): string => {
  const ms = Math.floor(micros / 1000)
  const rest = micros - ms * 1000
  const wall = ms + offset * MINUTE
  const text = (w: number) => `${wallText(w, "T", true)}.${String(new Date(ms).getUTCMilliseconds() * 1000 + rest).padStart(6, "0")}`
  return new Date(wall).getUTCFullYear() >= 1970 ? text(wall) + offsetText(offset, 0) : `${text(ms)}Z`
}
