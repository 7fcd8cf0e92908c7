import { Effect, LogLevel, Runtime } from "effect"
import { type LogEntry, logLevel } from "kafkajs"

const levels: Record<number, LogLevel.LogLevel> = {
  [logLevel.ERROR]: LogLevel.Error,
  [logLevel.WARN]: LogLevel.Warning,
  [logLevel.INFO]: LogLevel.Info,
  [logLevel.DEBUG]: LogLevel.Debug
}

/**
 * The broker's answers that mean a rebalance is under way or has just moved the group on (REBALANCE_IN_PROGRESS,
 * ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID): the consumer rejoins on each.
 */
const REBALANCING = /rebalanc|generation id is not valid|not aware of this member/i

/**
 * kafkajs logs a rebalance — routine whenever a member joins or leaves — as errors: the broker's answers during one
 * (`Response SyncGroup(key: 14, version: 3)` with "The group is rebalancing", a heartbeat's, an offset commit's
 * "generation id is not valid") are noise, the consumer's "The group is rebalancing, re-joining" (or "The coordinator is
 * not aware of this member, re-joining the group", after a pause longer than the session) worth a line.
 * Other entries keep kafkajs's level.
 */
const levelOf = (level: logLevel, log: LogEntry["log"]): LogLevel.LogLevel => {
  if (log.type === "REBALANCE_IN_PROGRESS" || /Heartbeat/.test(log.message)) return LogLevel.Debug
  if (/^Response /.test(log.message) && REBALANCING.test(String(log.error ?? ""))) return LogLevel.Debug
  if (/rebalanc|re-joining/i.test(log.message)) return LogLevel.Info
  return levels[level] ?? LogLevel.Info
}

const annotations = (log: LogEntry["log"]): Record<string, string> =>
  Object.fromEntries(
    (["broker", "groupId", "type", "error"] as const).flatMap((key) => log[key] === undefined ? [] : [[key, String(log[key])]])
  )

/** kafkajs logs through our logger, one line each, instead of its own JSON on stderr. */
export const logCreator = (runtime: Runtime.Runtime<never>) => () => ({ namespace, level, log }: LogEntry) =>
  Runtime.runSync(runtime)(
    Effect.logWithLevel(levelOf(level, log), `kafka${namespace ? ` ${namespace}` : ""}: ${log.message}`).pipe(
      Effect.annotateLogs(annotations(log))
    )
  )
