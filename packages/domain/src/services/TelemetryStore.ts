import { Context, type Effect, type Stream } from "effect"
import type { ClaimCheck } from "../ClaimCheck.js"
import type { LedgerError, LoadError } from "../errors.js"
import type { TelemetryItem } from "../payload/Telemetry.js"

/**
 * The UTC days (days since the epoch, ascending) that hold a claim's readings: late data may need their buckets
 * refreshed, and only theirs (a claim's earliest and latest readings may be weeks apart with nothing between).
 */
export type ReadingDays = ReadonlyArray<number>

export type LoadOutcome =
  | {
    readonly _tag: "Loaded"
    readonly items: number
    readonly readings: number
    /** Readings of the claim that were stored already (by an earlier claim) and so were skipped. */
    readonly duplicates: number
    /** Readings older than the raw retention when the claim was received, not stored (`NormalizeOptions.keepFrom`). */
    readonly expired: number
    readonly days: ReadingDays
    /** When its earliest reading was taken (ms since the epoch); null when it held none. */
    readonly earliest: number | null
  }
  /**
   * With the days of its readings as recorded when it loaded (none for claims loaded by earlier versions): its
   * delivery may have stopped after the load and before its refresh.
   */
  | { readonly _tag: "AlreadyLoaded"; readonly days: ReadingDays }

export interface TelemetryStoreShape {
  /**
   * Loads a claim's items in one transaction that also records the claim in the ledger: a claim delivered twice
   * loads once (the second time answers AlreadyLoaded), a failure part-way loads nothing.
   */
  readonly load: <E, R>(
    claim: ClaimCheck,
    items: Stream.Stream<TelemetryItem, E, R>
  ) => Effect.Effect<LoadOutcome, LoadError | E, R>
  /** Which of these claims the ledger already holds. */
  readonly loadedClaims: (claimIds: ReadonlyArray<string>) => Effect.Effect<ReadonlySet<string>, LedgerError>
}

export class TelemetryStore extends Context.Tag("@telemetry/TelemetryStore")<TelemetryStore, TelemetryStoreShape>() {}
