import { Config, Duration } from "effect"

/**
 * An integer setting from `min` (to `max`), `fallback` when unset: a value out of range stops the program at start,
 * naming the variable and the range, rather than running in a state where, say, no upload is ever admitted.
 * (Validated before the default is applied: validating after it loses the variable's name from the message.)
 */
export const integerSetting = (name: string, fallback: number, range: { readonly min: number; readonly max?: number }) =>
  Config.integer(name).pipe(
    Config.validate({
      message: range.max === undefined ? `must be at least ${range.min}` : `must be from ${range.min} to ${range.max}`,
      validation: (n) => n >= range.min && (range.max === undefined || n <= range.max)
    }),
    Config.withDefault(fallback)
  )

/**
 * A duration that must be longer than zero, `fallback` when unset: a window of 0 made a rate limit refuse its
 * client for ever, a grace of 0 cut every body that did not come with its headers.
 */
export const positiveDuration = (name: string, fallback: Duration.Duration) =>
  Config.duration(name).pipe(
    Config.validate({ message: "must be longer than 0", validation: (d: Duration.Duration) => Duration.greaterThan(d, Duration.zero) }),
    Config.withDefault(fallback)
  )

/** A TCP port to listen on; 0 for any free one. */
export const portSetting = (name: string, fallback: number) => integerSetting(name, fallback, { min: 0, max: 65535 })
