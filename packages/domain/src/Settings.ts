import { Config } from "effect"

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

/** A TCP port to listen on; 0 for any free one. */
export const portSetting = (name: string, fallback: number) => integerSetting(name, fallback, { min: 0, max: 65535 })
