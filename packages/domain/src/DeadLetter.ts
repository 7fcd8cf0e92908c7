import { Effect, Option, Schema } from "effect"
import { ClaimCheck } from "./ClaimCheck.js"

/** Why a message was set aside instead of loaded. */
export const DeadLetterReason = Schema.Literal(
  "invalid_payload",
  "payload_too_large",
  "object_not_found",
  "retries_exhausted",
  /** The database refused the claim's data for good (a permanent SQLSTATE, e.g. a NUL, a too large index row). */
  "unloadable",
  /** Loading it threw (a defect of the loader) while storage and database answered. */
  "loader_defect",
  /** Delivered more than WORKER_MAX_DELIVERIES times without ending: it took its worker down with it. */
  "too_many_attempts",
  /** On the claims topic but not a claim check: nothing to load. */
  "unreadable_message"
)
export type DeadLetterReason = typeof DeadLetterReason.Type

/**
 * A worker will not load this claim (it fails its handling with this): the queue keeps it as a dead letter, then
 * acknowledges it.
 */
export class ClaimRejected extends Schema.TaggedError<ClaimRejected>()("ClaimRejected", {
  reason: DeadLetterReason,
  message: Schema.String,
  /** Loads tried before giving up (0: the message never reached a worker). */
  attempts: Schema.NonNegativeInt
}) {}

/** Handling's outcome: the claim's rejection, if it was rejected; its other failures as they were. */
export const rejectionOf = <E, R>(handling: Effect.Effect<unknown, E | ClaimRejected, R>) =>
  handling.pipe(
    Effect.as(Option.none<ClaimRejected>()),
    Effect.catchAll((e) => e instanceof ClaimRejected ? Effect.succeed(Option.some(e)) : Effect.fail(e as E))
  )

/** A message set aside, as the queue keeps it: what it was, why, when and where from. */
export class DeadLetter extends Schema.Class<DeadLetter>("DeadLetter")({
  /** Null when the message was not a claim check. */
  claim: Schema.NullOr(ClaimCheck),
  reason: DeadLetterReason,
  error: Schema.String,
  attempts: Schema.NonNegativeInt,
  failedAt: Schema.Date,
  /** Where the message was taken from, e.g. `telemetry.raw/2@1234`. */
  source: Schema.String
}) {}

/** A span of time, from inclusive, to exclusive; either end open when absent. */
export interface TimeRange {
  readonly from?: Date | undefined
  readonly to?: Date | undefined
}

export const inRange = (range: TimeRange, time: Date): boolean =>
  (range.from === undefined || time >= range.from) && (range.to === undefined || time < range.to)
