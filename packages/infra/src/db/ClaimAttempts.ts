import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"

/**
 * Deliveries of claims that began loading and did not end in a worker (table `claim_attempts`): what is left of a
 * claim that took its process down, so that its next delivery knows.
 */

export interface Delivery {
  /** This delivery included. */
  readonly attempts: number
  /** How the last delivery that ended in a worker failed, if one did. */
  readonly lastError: string | null
  /** Its request was refused after all (RevokedClaims): nothing is to be loaded, whatever storage still holds. */
  readonly revoked: boolean
}

// An error message has no business being long; a whole payload's worth of it would only bloat the table.
const MAX_ERROR_CHARS = 2000

/** Deliveries this process ended without an outcome and could not give back then (the database was down). */
export interface Owed {
  readonly deliveries: number
  readonly lastError: string
}

/**
 * Counts a delivery of the claim (and tells whether it was revoked), committed at once (outside any transaction of
 * the load that follows); gives back at the same time the deliveries `owed`.
 */
export const begin = (claimId: string, owed?: Owed) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ attempts: number; last_error: string | null; revoked: boolean }>`INSERT INTO claim_attempts (claim_id, attempts)
        VALUES (${claimId}, 1)
        ON CONFLICT (claim_id) DO UPDATE SET attempts = greatest(claim_attempts.attempts + 1 - ${owed?.deliveries ?? 0}, 1),
          last_error = coalesce(${owed?.lastError.slice(0, MAX_ERROR_CHARS) ?? null}, claim_attempts.last_error),
          updated_at = now()
        RETURNING attempts, last_error, EXISTS (SELECT 1 FROM revoked_claims WHERE claim_id = ${claimId}) AS revoked`,
      ([row]): Delivery => ({ attempts: row!.attempts, lastError: row!.last_error, revoked: row!.revoked })
    ))

/**
 * The delivery committed a part of its claim (a claim loaded batch by batch): the deliveries before it that never
 * ended made progress too, so they no longer count as ones that took their process down; this one still counts.
 * A payload that takes its worker down at the same place every time makes no progress, and is counted out as before.
 */
export const progressed = (claimId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.asVoid(sql`UPDATE claim_attempts SET attempts = 1, updated_at = now() WHERE claim_id = ${claimId} AND attempts > 1`))

/** The claim was loaded or set aside: nothing more to count. */
export const settle = (claimId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => Effect.asVoid(sql`DELETE FROM claim_attempts WHERE claim_id = ${claimId}`))

/**
 * The delivery ended in this process without an outcome, `error` recorded. Given back (a dependency was down, or the
 * worker stopped), it does not count against the claim, whose next delivery starts where this one did; kept (its
 * session lost without the database's answer, as a payload that crashes the server would lose it too), it does.
 */
export const unfinished = (claimId: string, error: string, counts: "given back" | "kept") =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.asVoid(sql`UPDATE claim_attempts SET attempts = greatest(attempts - ${counts === "kept" ? 0 : 1}, 0),
        last_error = ${error.slice(0, MAX_ERROR_CHARS)}, updated_at = now()
      WHERE claim_id = ${claimId}`))

/** The deliveries counted for these claims; those without any are left out. */
export const counts = (claimIds: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ claim_id: string; attempts: number }>`SELECT claim_id, attempts FROM claim_attempts
        WHERE claim_id = ANY(${claimIds}::uuid[]) AND attempts > 0`,
      (rows): ReadonlyMap<string, number> => new Map(rows.map((r) => [r.claim_id, r.attempts]))
    ))

/** Rows untouched for a month belong to claims that never came back (replayed as new, or their object deleted). */
export const purge = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql`DELETE FROM claim_attempts WHERE updated_at < now() - interval '30 days'`.pipe(Effect.asVoid))
