import { DateTime, Either } from "effect"

// Readings older or newer than this are refused as out of range (a device clock that was never set).
const MIN_TIME = Date.UTC(1970, 0, 1)
const MAX_TIME = Date.UTC(2100, 0, 1)

const outOfRange = (text: string) => Either.left(`is out of range (1970 to 2099): ${JSON.stringify(text.slice(0, 64))}`)

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/

/**
 * Parses ISO-8601 reading times into epoch milliseconds. A time with `Z` or an offset is that instant; a naive
 * time (the Home Assistant client sends local time without a zone) is read in `timeZone`.
 */
export const makeTimestampParser = (timeZone: string) => {
  const zone = DateTime.zoneMakeNamed(timeZone)
  if (zone._tag === "None") throw new Error(`unknown time zone ${timeZone}`)
  const isUtc = zone.value.id === "UTC" || zone.value.id === "Etc/UTC"
  // Offsets of a named zone only change on whole hours, so one lookup per local hour is enough.
  const offsetByHour = new Map<number, number>()
  const zoneOffset = (localHourMs: number): number => {
    let offset = offsetByHour.get(localHourMs)
    if (offset === undefined) {
      const local = new Date(localHourMs)
      const zoned = DateTime.unsafeMakeZoned(
        {
          year: local.getUTCFullYear(),
          month: local.getUTCMonth() + 1,
          day: local.getUTCDate(),
          hours: local.getUTCHours()
        },
        { timeZone: zone.value, adjustForTimeZone: true }
      )
      offset = localHourMs - DateTime.toEpochMillis(zoned)
      if (offsetByHour.size > 10_000) offsetByHour.clear()
      offsetByHour.set(localHourMs, offset)
    }
    return offset
  }

  return (text: string): Either.Either<number, string> => {
    const m = ISO.exec(text.trim())
    if (m === null) return Either.left(`is not an ISO-8601 date-time: ${JSON.stringify(text.slice(0, 64))}`)
    const [, y, mo, d, h = "0", mi = "0", s = "0", frac = "", tz] = m
    const year = Number(y), month = Number(mo), day = Number(d)
    const hours = Number(h), minutes = Number(mi), seconds = Number(s)
    const millis = frac === "" ? 0 : Math.floor(Number(`0.${frac}`) * 1000)
    // Checked before Date.UTC, which reads years 0-99 as 1900-1999.
    if (year < 1970 || year > 2100) return outOfRange(text)
    const local = Date.UTC(year, month - 1, day, hours, minutes, seconds, millis)
    const check = new Date(local)
    // Date.UTC rolls Feb 30 over into March: a changed field means an invalid date.
    if (check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day || hours > 23 || minutes > 59 || seconds > 59) {
      return Either.left(`is not a valid date-time: ${JSON.stringify(text.slice(0, 64))}`)
    }
    let time: number
    if (tz === undefined) {
      time = isUtc ? local : local - zoneOffset(local - (local % 3_600_000))
    } else if (tz === "Z" || tz === "z") {
      time = local
    } else {
      const sign = tz[0] === "-" ? -1 : 1
      const digits = tz.slice(1).replace(":", "")
      const offsetHours = Number(digits.slice(0, 2)), offsetMinutes = Number(digits.slice(2) || "0")
      if (offsetHours > 23 || offsetMinutes > 59) {
        return Either.left(`has an invalid UTC offset: ${JSON.stringify(text.slice(0, 64))}`)
      }
      time = local - sign * (offsetHours * 60 + offsetMinutes) * 60_000
    }
    return time < MIN_TIME || time >= MAX_TIME ? outOfRange(text) : Either.right(time)
  }
}
