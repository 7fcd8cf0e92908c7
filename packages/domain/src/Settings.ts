import { Config, ConfigError, Duration, Either } from "effect"

/** The values a number setting may take, from `min` (to `max`); `message` says so when it is not one of them. */
export interface NumberRange {
  readonly min: number
  readonly max?: number
  readonly message?: string
}

const inRange = (n: number, { max, min }: NumberRange) => n >= min && (max === undefined || n <= max)
const rangeMessage = ({ max, message, min }: NumberRange) =>
  message ?? (max === undefined ? `must be at least ${min}` : `must be from ${min} to ${max}`)

/**
 * A number from the variable `name`. `Config.integer` and `Config.number` read an empty value (`PORT=`, as a compose
 * file or an env file may pass on) as 0, which turns a rate limit off or listens on a random port: empty or blank
 * text is refused here, naming the variable, like any other text that is not a number. The range is checked in the
 * same step (a `Config.validate` after this one would lose the variable's name from its message).
 */
const numberText = (name: string, integer: boolean, range?: NumberRange) =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => {
      const n = text.trim() === "" ? NaN : Number(text)
      if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
        return Either.left(
          ConfigError.InvalidData([], `Expected ${integer ? "an integer" : "a number"} but received ${JSON.stringify(text)}`)
        )
      }
      return range === undefined || inRange(n, range) ? Either.right(n) : Either.left(ConfigError.InvalidData([], rangeMessage(range)))
    })
  )

/** An integer variable in `range`, without a default; see `numberText`. */
export const integerConfig = (name: string, range?: NumberRange) => numberText(name, true, range)

/** A number variable in `range`, without a default; see `numberText`. */
export const numberConfig = (name: string, range?: NumberRange) => numberText(name, false, range)

/**
 * An integer setting from `min` (to `max`), `fallback` when unset: a value out of range stops the program at start,
 * naming the variable and the range, rather than running in a state where, say, no upload is ever admitted.
 * (Validated before the default is applied: validating after it loses the variable's name from the message.)
 */
export const integerSetting = (name: string, fallback: number, range: NumberRange) =>
  integerConfig(name, range).pipe(Config.withDefault(fallback))

/** A duration longer than zero from the variable `name`, without a default. */
export const positiveDurationConfig = (name: string) =>
  Config.duration(name).pipe(
    Config.validate({ message: "must be longer than 0", validation: (d: Duration.Duration) => Duration.greaterThan(d, Duration.zero) })
  )

/**
 * A duration that must be longer than zero, `fallback` when unset: a window of 0 made a rate limit refuse its
 * client for ever, a grace of 0 cut every body that did not come with its headers.
 */
export const positiveDuration = (name: string, fallback: Duration.Duration) =>
  positiveDurationConfig(name).pipe(Config.withDefault(fallback))

/** A TCP port to listen on; 0 for any free one. */
export const portSetting = (name: string, fallback: number) => integerSetting(name, fallback, { min: 0, max: 65535 })

/**
 * `LOG_FORMAT`: json, logfmt or pretty; by default pretty when `stream` is a terminal (a person reads it), else JSON,
 * which log shippers read line by line.
 */
export const logFormat = (stream: "stdout" | "stderr") =>
  Config.literal("json", "logfmt", "pretty")("LOG_FORMAT").pipe(Config.withDefault(process[stream].isTTY ? "pretty" : "json"))
