import { Data } from "effect"

/**
 * A point in time to the microsecond, as readings are stored and answered (a Date holds milliseconds): a date
 * parameter cut to its millisecond would take readings of that millisecond that came before it, and a client paging
 * a raw history from its last reading's time + 1 µs would get that reading again and again.
 */
export class Instant extends Data.Class<{
  /** Epoch milliseconds. */
  readonly millis: number
  /** Microseconds past `millis`, 0..999. */
  readonly micros: number
}> {
  static fromMillis(millis: number): Instant {
    return new Instant({ millis, micros: 0 })
  }

  /** Epoch microseconds: exact in a double until the year 2255. */
  get epochMicros(): number {
    return this.millis * 1000 + this.micros
  }

  /** ISO-8601 in UTC: to the millisecond, as a Date writes it, unless it has microseconds (then six digits). */
  toISOString(): string {
    const iso = new Date(this.millis).toISOString()
    return this.micros === 0 ? iso : `${iso.slice(0, -1)}${String(this.micros).padStart(3, "0")}Z`
  }

  /** As JSON (an answer's envelope), its ISO-8601 text. */
  toJSON(): string {
    return this.toISOString()
  }
}
