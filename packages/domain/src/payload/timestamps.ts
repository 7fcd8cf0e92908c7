import { DateTime, Either } from "effect"

const MICROS_PER_MS = 1000
const MINUTE = 60_000
const DAY = 86_400_000

// Readings older or newer than this are refused as out of range (a device clock that was never set).
const MIN_TIME = Date.UTC(1970, 0, 1) * MICROS_PER_MS
const MAX_TIME = Date.UTC(2100, 0, 1) * MICROS_PER_MS

const outOfRange = (text: string) => Either.left(`is out of range (1970 to 2099): ${JSON.stringify(text.slice(0, 64))}`)

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/

/** Whether `timeZone` is an IANA zone name this runtime knows. */
export const isTimeZone = (timeZone: string): boolean => DateTime.zoneMakeNamed(timeZone)._tag === "Some"

/**
 * The UTC offset (ms) of `timeZone` at each instant, from the runtime's time zone data (Intl). Modern offsets
 * change on quarter hours, so one lookup per quarter hour is enough.
 */
const makeOffsets = (timeZone: string) => {
  const format = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "numeric",
    day: "numeric",
    hour: "numeric",
    minute: "numeric"
  })
  const cache = new Map<number, number>()
  return (instant: number): number => {
    const quarter = instant - (((instant % (15 * MINUTE)) + 15 * MINUTE) % (15 * MINUTE))
    let offset = cache.get(quarter)
    if (offset === undefined) {
      const parts: Record<string, number> = {}
      for (const part of format.formatToParts(quarter)) parts[part.type] = Number(part.value)
      offset = Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!) - quarter
      if (cache.size > 10_000) cache.clear()
      cache.set(quarter, offset)
    }
    return offset
  }
}

/**
 * The instant (epoch ms) of a wall-clock time in `timeZone`, given as epoch ms of the same wall-clock time in
 * UTC. Two rules decide what a wall clock cannot say on its own:
 * - a time the clocks skipped (the DST gap, e.g. 02:30 on a spring-forward night) is read with the offset before
 *   the change, so it lands as far after the gap's start as it was written (02:30 becomes 03:30 daylight time);
 * - a time the clocks showed twice (the repeated hour of a fall-back night) is the first of the two instants.
 * These are the "compatible" rules of JavaScript's Temporal and of Python's `fold=0`.
 */
const makeZonedToInstant = (timeZone: string) => {
  const offsetAt = makeOffsets(timeZone)
  return (local: number): number => {
    // The instant lies within a day of the wall-clock time; at most one offset change falls in that span.
    const before = offsetAt(local - DAY)
    const after = offsetAt(local + DAY)
    // No change in that span (nearly always): the rules below would also answer this.
    if (before === after) return local - before
    const fits = (offset: number) => offsetAt(local - offset) === offset
    if (fits(before)) return local - Math.max(before, fits(after) ? after : before)
    return fits(after) ? local - after : local - before
  }
}

/**
 * One converter per zone for the process: making the Intl formatter costs a fraction of a millisecond, and its
 * cache of offsets serves every payload of the zone.
 */
const converters = new Map<string, (local: number) => number>()
const zonedToInstantIn = (timeZone: string) => {
  let convert = converters.get(timeZone)
  if (convert === undefined) {
    convert = makeZonedToInstant(timeZone)
    if (converters.size > 1000) converters.clear()
    converters.set(timeZone, convert)
  }
  return convert
}

/**
 * Parses ISO-8601 reading times into epoch microseconds. A time with `Z` or an offset is that instant; a naive
 * time (the Home Assistant client sends local time without a zone) is read in `timeZone` (see
 * `makeZonedToInstant` for the DST gap and the repeated hour). Fractions are kept to the microsecond.
 */
export const makeTimestampParser = (timeZone: string) => {
  if (!isTimeZone(timeZone)) throw new Error(`unknown time zone ${timeZone}`)
  const isUtc = timeZone === "UTC" || timeZone === "Etc/UTC"
  const zonedToInstant = zonedToInstantIn(timeZone)

  return (text: string): Either.Either<number, string> => {
    let year: number, month: number, day: number, hours: number, minutes: number, seconds: number
    let micros = 0
    let tz: string | undefined
    if (isNaiveToTheSecond(text)) {
      // What devices send (the Home Assistant client always): read without the regular expression.
      year = 100 * digits(text, 0) + digits(text, 2)
      month = digits(text, 5)
      day = digits(text, 8)
      hours = digits(text, 11)
      minutes = digits(text, 14)
      seconds = digits(text, 17)
    } else {
      const m = ISO.exec(text.trim())
      if (m === null) return Either.left(`is not an ISO-8601 date-time: ${JSON.stringify(text.slice(0, 64))}`)
      const [, y, mo, d, h = "0", mi = "0", s = "0", frac = "", zone] = m
      year = Number(y), month = Number(mo), day = Number(d)
      hours = Number(h), minutes = Number(mi), seconds = Number(s)
      micros = frac === "" ? 0 : Number(frac.slice(0, 6).padEnd(6, "0"))
      tz = zone
    }
    // Checked before Date.UTC, which reads years 0-99 as 1900-1999; the instant itself is checked below (a
    // local time of 1969 may be an instant of 1970).
    if (year < 1969 || year > 2100) return outOfRange(text)
    if (
      month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hours > 23 || minutes > 59 ||
      seconds > 59
    ) {
      return Either.left(`is not a valid date-time: ${JSON.stringify(text.slice(0, 64))}`)
    }
    const local = Date.UTC(year, month - 1, day, hours, minutes, seconds)
    let time: number
    if (tz === undefined) {
      time = isUtc ? local : zonedToInstant(local)
    } else if (tz === "Z" || tz === "z") {
      time = local
    } else {
      const sign = tz[0] === "-" ? -1 : 1
      const hhmm = tz.slice(1).replace(":", "")
      const offsetHours = Number(hhmm.slice(0, 2)), offsetMinutes = Number(hhmm.slice(2) || "0")
      if (offsetHours > 23 || offsetMinutes > 59) {
        return Either.left(`has an invalid UTC offset: ${JSON.stringify(text.slice(0, 64))}`)
      }
      time = local - sign * (offsetHours * 60 + offsetMinutes) * MINUTE
    }
    const instant = time * MICROS_PER_MS + micros
    return instant < MIN_TIME || instant >= MAX_TIME ? outOfRange(text) : Either.right(instant)
  }
}

/** The shape of a naive time to the second: `0` stands for a digit, `T` for a `T` or a space. */
const NAIVE_TO_THE_SECOND = "0000-00-00T00:00:00"

/** `text` has that shape and nothing more: the regular expression would read it alike. */
const isNaiveToTheSecond = (text: string): boolean => {
  if (text.length !== NAIVE_TO_THE_SECOND.length) return false
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    const shape = NAIVE_TO_THE_SECOND.charCodeAt(i)
    const fits = shape === 0x30 ? code >= 0x30 && code <= 0x39 : shape === 0x54 ? code === 0x54 || code === 0x20 : code === shape
    if (!fits) return false
  }
  return true
}

/** The number the two digits at `at` write. */
const digits = (text: string, at: number): number => 10 * (text.charCodeAt(at) - 0x30) + text.charCodeAt(at + 1) - 0x30

const daysInMonth = (year: number, month: number): number =>
  month === 2
    ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28)
    : month === 4 || month === 6 || month === 9 || month === 11
    ? 30
    : 31
