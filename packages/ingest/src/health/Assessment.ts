import type { Backlog, WorkerStatus } from "@telemetry/domain"
import { Config, Duration } from "effect"

/** A part of the pipeline that answers, but not as it should: what the detailed health check calls degraded. */
export interface Assessment {
  readonly status: "up" | "degraded"
  /** Why it is degraded. */
  readonly reason?: string
}

/** `HEALTH_MAX_CLAIM_AGE`: claims waiting (or one loading) longer than this make the pipeline degraded. */
export const MaxClaimAge = Config.duration("HEALTH_MAX_CLAIM_AGE").pipe(Config.withDefault(Duration.minutes(5)))

/** A consumer started again, or claims failing, this many times within the window keep failing (one is a hiccup). */
const MAX_SETBACKS = 3
const SETBACK_WINDOW = Duration.minutes(5)

const seconds = (millis: number) => Duration.format(Duration.seconds(Math.round(millis / 1000)))

const assessment = (reasons: ReadonlyArray<string>): Assessment =>
  reasons.length === 0 ? { status: "up" } : { status: "degraded", reason: reasons.join("; ") }

/** Which partition is stuck, with its share of the claims, where there are partitions to tell apart. */
const stalledWhere = (backlog: Backlog) => {
  const stuck = backlog.partitions.find((p) => p.partition === backlog.stalledPartition)
  return stuck === undefined ? "" : `partition ${stuck.partition} (${stuck.lag} of them) `
}

/** Degraded when the in-process queue is full, or claims wait without the workers getting through them. */
export const assessBacklog = (backlog: Backlog, maxAge: Duration.Duration): Assessment =>
  assessment([
    ...(backlog.room !== undefined && backlog.room.waiting >= backlog.room.capacity
      ? [`the queue is full (${backlog.room.waiting} claims wait, its capacity): ingest answers 503`]
      : []),
    ...(backlog.pending > 0 && Duration.greaterThan(backlog.stalledFor, maxAge)
      ? [
        `${backlog.pending} claim(s) not loaded, ${stalledWhere(backlog)}${
          // In process, the age of the oldest claim: others may load meanwhile (a device's backlog takes turns).
          backlog.room === undefined ? "without progress for" : "the oldest waiting for"} ` +
        `${seconds(Duration.toMillis(backlog.stalledFor))} (more than HEALTH_MAX_CLAIM_AGE, ${Duration.format(maxAge)})`
      ]
      : [])
  ])

/** Degraded when the worker's consumer keeps restarting or its claims keep failing, or a claim has been loading too long. */
export const assessWorker = (worker: WorkerStatus.WorkerSnapshot, now: number, maxAge: Duration.Duration): Assessment => {
  const restarts = recent(worker.restarts, now)
  const failures = recent(worker.failures, now)
  const window = Duration.format(SETBACK_WINDOW)
  return assessment([
    ...(restarts >= MAX_SETBACKS ? [`the consumer stopped and was started again ${restarts} times in the last ${window}`] : []),
    ...(failures >= MAX_SETBACKS ? [`the handling of a claim failed ${failures} times in the last ${window}, leaving it queued`] : []),
    ...(worker.busySince !== null && now - worker.busySince > Duration.toMillis(maxAge)
      ? [`a claim has been loading for ${seconds(now - worker.busySince)} (more than HEALTH_MAX_CLAIM_AGE, ${Duration.format(maxAge)})`]
      : [])
  ])
}

/** Those of `times` (epoch ms) within the window before `now`. */
export const recent = (times: ReadonlyArray<number>, now: number) =>
  times.filter((at) => now - at <= Duration.toMillis(SETBACK_WINDOW)).length
