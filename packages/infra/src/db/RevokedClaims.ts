import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"

/**
 * Claims whose request was refused once their object may have been stored (table `revoked_claims`): publishing the
 * claim timed out, or storage failed as the object was committed. Kafka may deliver such a claim later all the
 * same, or a replay from storage find its object if deleting it failed too: a worker settles it without loading.
 */
export const revoke = (claimId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`INSERT INTO revoked_claims (claim_id) VALUES (${claimId}) ON CONFLICT DO NOTHING`.pipe(Effect.asVoid))

export const isRevoked = (claimId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql`SELECT 1 FROM revoked_claims WHERE claim_id = ${claimId}`, (rows) => rows.length > 0))

/** Which of these claims are revoked. */
export const among = (claimIds: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ claim_id: string }>`SELECT claim_id FROM revoked_claims WHERE claim_id = ANY(${claimIds}::uuid[])`,
      (rows): ReadonlySet<string> => new Set(rows.map((r) => r.claim_id))
    ))

/** Revocations outlive any delivery of their claim by far after a week. */
export const purge = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql`DELETE FROM revoked_claims WHERE revoked_at < now() - interval '7 days'`.pipe(Effect.asVoid))
