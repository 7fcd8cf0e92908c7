import { Config, Effect, Layer, Logger, LogLevel, Option } from "effect"

const formats = { json: Logger.json, logfmt: Logger.logFmt, pretty: Logger.pretty } as const

/**
 * The process's logger from `LOG_FORMAT` (json, logfmt or pretty; pretty on a terminal, else JSON, which log
 * shippers read line by line) and `LOG_LEVEL` (default info).
 */
export const layer = Layer.unwrapEffect(
  Effect.gen(function*() {
    const format = yield* Config.option(Config.literal("json", "logfmt", "pretty")("LOG_FORMAT"))
    const level = yield* Config.logLevel("LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info))
    const chosen = Option.getOrElse(format, () => (process.stdout.isTTY ? "pretty" : "json"))
    return Layer.merge(formats[chosen], Logger.minimumLogLevel(level))
  })
)
