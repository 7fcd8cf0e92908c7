import { Effect, LogLevel, Runtime } from "effect"
import { type LogEntry, logLevel } from "kafkajs"

const levels: Record<number, LogLevel.LogLevel> = {
  [logLevel.ERROR]: LogLevel.Error,
  [logLevel.WARN]: LogLevel.Warning,
  [logLevel.INFO]: LogLevel.Info,
  [logLevel.DEBUG]: LogLevel.Debug
}

/** kafkajs logs through our logger, one line each, instead of its own JSON on stderr. */
export const logCreator = (runtime: Runtime.Runtime<never>) => () => ({ namespace, level, log }: LogEntry) =>
  Runtime.runSync(runtime)(
    Effect.logWithLevel(levels[level] ?? LogLevel.Info, `kafka${namespace ? ` ${namespace}` : ""}: ${log.message}`).pipe(
      Effect.annotateLogs(log.broker === undefined ? {} : { broker: String(log.broker) })
    )
  )
