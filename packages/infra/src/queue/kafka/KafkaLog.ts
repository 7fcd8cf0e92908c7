import { Clock, Duration, Effect, LogLevel, Runtime } from "effect"
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

/**
 * How long a warning or error kafkajs repeats as it was is not logged again. While a broker is away every client
 * tries it again and again — each health check, each reconnection —, each try a few lines alike: 157 of 176 lines
 * of a 27-second outage. The first line after the window says how many it left out.
 */
const REPEAT_WINDOW = Duration.seconds(30)
/** Distinct lines remembered at most, so that lines with varying words cannot grow the process. */
const MAX_REMEMBERED = 1000

/** The warnings and errors logged lately, each with when it may be logged again and how many were left out since. */
export type Repeats = Map<string, { readonly until: number; left: number }>

/**
 * The lines a process logged lately: kept across its clients, since a process waiting for its broker at startup
 * makes new clients at each try, and each would log the same lines anew.
 */
export const processRepeats: Repeats = new Map()

/** kafkajs logs through our logger, one line each (repeated warnings and errors once a window), not on stderr. */
export const logCreator = (runtime: Runtime.Runtime<never>, recent: Repeats = processRepeats) => {
  const run = Runtime.runSync(runtime)
  return () => ({ namespace, level, log }: LogEntry) => {
    const logLevel = levelOf(level, log)
    const message = `kafka${namespace ? ` ${namespace}` : ""}: ${log.message}`
    const more = annotations(log)
    if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) {
      const key = JSON.stringify([message, more["broker"], more["error"]])
      const now = run(Clock.currentTimeMillis)
      const last = recent.get(key)
      if (last !== undefined && now < last.until) {
        last.left++
        return
      }
      if (recent.size >= MAX_REMEMBERED) recent.clear()
      recent.set(key, { until: now + Duration.toMillis(REPEAT_WINDOW), left: 0 })
      if (last !== undefined && last.left > 0) more["repeated"] = `${last.left} more times in the ${Duration.format(REPEAT_WINDOW)} before`
    }
    run(Effect.logWithLevel(logLevel, message).pipe(Effect.annotateLogs(more)))
  }
}
