import { logFormat } from "@telemetry/domain"
import { Config, Effect, Layer, Logger, LogLevel } from "effect"

const onStdout = { json: Logger.json, logfmt: Logger.logFmt, pretty: Logger.pretty } as const
const onStderr = {
  json: Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.jsonLogger)),
  logfmt: Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger)),
  pretty: Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true }))
} as const

/**
 * The process's logger from `LOG_FORMAT` (`logFormat`) and `LOG_LEVEL` (default info), on `stream`: stdout for a
 * server, stderr for a command line, whose stdout carries its result alone (`pnpm migrate --json | jq`).
 */
const make = (stream: "stdout" | "stderr") =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const chosen = yield* logFormat(stream)
      const level = yield* Config.logLevel("LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info))
      return Layer.merge((stream === "stdout" ? onStdout : onStderr)[chosen], Logger.minimumLogLevel(level))
    })
  ).pipe(
    // A bad LOG_FORMAT or LOG_LEVEL leaves no logger to say so: said in JSON, as a process logs by default.
    Layer.tapErrorCause((cause) => Effect.logError("stopped: the logging settings are invalid", cause).pipe(Effect.provide(onStderr.json)))
  )

export const layer = make("stdout")
export const stderrLayer = make("stderr")
