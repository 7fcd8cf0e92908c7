import { Context, type Effect } from "effect"
import type { ClaimCheck } from "../ClaimCheck.js"
import type { QueueError } from "../errors.js"

export interface ClaimQueueShape {
  /** Durably hands a claim to the workers (or fails: the request must then not be acknowledged). */
  readonly publish: (claim: ClaimCheck) => Effect.Effect<void, QueueError>
  /**
   * Runs `handle` for every claim, forever. A claim counts as done (acknowledged, its offset committed) only
   * once `handle` succeeded; if `handle` fails the consumer stops with that error and the claim is delivered
   * again later.
   */
  readonly consume: <E, R>(handle: (claim: ClaimCheck) => Effect.Effect<void, E, R>) => Effect.Effect<never, QueueError | E, R>
  /** Succeeds when the queue can take claims now (for health checks). */
  readonly check: Effect.Effect<void, QueueError>
}

export class ClaimQueue extends Context.Tag("@telemetry/ClaimQueue")<ClaimQueue, ClaimQueueShape>() {}
