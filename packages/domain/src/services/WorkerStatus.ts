import { Cause, Clock, Context, Effect, Exit, Layer, Option, Ref } from "effect"
import { ClaimRejected } from "../DeadLetter.js"

/** What the worker of this process is doing, as the detailed health check reports it. */
export interface WorkerSnapshot {
  /** Whether a worker runs in this process at all. */
  readonly running: boolean
  /** When its consumer stopped on a failure and was started again (epoch ms), the latest last; recent ones only. */
  readonly restarts: ReadonlyArray<number>
  /** When the handling of a claim failed, leaving it queued for later (epoch ms), the latest last; recent ones only. */
  readonly failures: ReadonlyArray<number>
  /** When a claim was last handled to its end (loaded, skipped or dead-lettered), if one was. */
  readonly lastHandledAt: number | null
  /** Since when the claim that has been in progress the longest is, if one is. */
  readonly busySince: number | null
}

export interface WorkerStatusShape {
  /** A worker consumes claims in this process from now on. */
  readonly started: Effect.Effect<void>
  /** Its consumer stopped on a failure and is started again. */
  readonly restarted: Effect.Effect<void>
  /** Runs the handling of a claim, counted as in progress meanwhile. */
  readonly handling: <A, E, R>(claimId: string, handle: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly snapshot: Effect.Effect<WorkerSnapshot>
}

export class WorkerStatus extends Context.Tag("@telemetry/WorkerStatus")<WorkerStatus, WorkerStatusShape>() {}

/** Restarts and failures are kept this many at most: the health check looks at a few recent ones. */
const KEPT_TIMES = 20

const appended = (times: ReadonlyArray<number>, now: number) => [...times, now].slice(-KEPT_TIMES)

interface State {
  readonly running: boolean
  readonly restarts: ReadonlyArray<number>
  readonly failures: ReadonlyArray<number>
  readonly lastHandledAt: number | null
  /** Claims in progress and since when; a claim delivered twice at once counts once, from its first start. */
  readonly busy: ReadonlyMap<string, number>
}

export const make = Effect.map(
  Ref.make<State>({ running: false, restarts: [], failures: [], lastHandledAt: null, busy: new Map() }),
  (state): WorkerStatusShape => ({
    started: Ref.update(state, (s) => ({ ...s, running: true })),
    restarted: Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Ref.update(state, (s) => ({ ...s, restarts: appended(s.restarts, now) }))),
    handling: (claimId, handle) =>
      Effect.flatMap(Clock.currentTimeMillis, (start) =>
        Ref.update(state, (s) => s.busy.has(claimId) ? s : { ...s, busy: new Map(s.busy).set(claimId, start) })).pipe(
          Effect.zipRight(handle),
          Effect.onExit((exit) =>
            Effect.flatMap(Clock.currentTimeMillis, (now) =>
              Ref.update(state, (s) => {
                const busy = new Map(s.busy)
                busy.delete(claimId)
                // A claim rejected (dead-lettered) was handled too; the queue tells rejections from failures.
                if (Exit.isSuccess(exit) || isRejection(exit)) return { ...s, busy, lastHandledAt: now }
                return { ...s, busy, failures: Cause.isInterruptedOnly(exit.cause) ? s.failures : appended(s.failures, now) }
              }))
          )
        ),
    snapshot: Effect.map(Ref.get(state), (s) => ({
      running: s.running,
      restarts: s.restarts,
      failures: s.failures,
      lastHandledAt: s.lastHandledAt,
      busySince: s.busy.size === 0 ? null : Math.min(...s.busy.values())
    }))
  })
)

const isRejection = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) && Option.getOrUndefined(Cause.failureOption(exit.cause)) instanceof ClaimRejected

/** The status of the worker of this process; shared by the worker and the health check. */
export const layer = Layer.effect(WorkerStatus, make)
