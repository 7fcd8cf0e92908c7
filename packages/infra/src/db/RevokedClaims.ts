import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"

/**
 * Claims whose request was refused after publishing them timed out (table `revoked_claims`). Kafka may deliver
 * such a claim later all the same; its object is gone, and the worker settles it instead of dead-lettering it.
 */
export const revoke = (claimId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`INSERT INTO revoked_claims (claim_id) VALUES (${claimId}) ON CONFLICT DO NOTHING`.pipe(Effect.asVoid))

export const isRevoked = (claimId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql`SELECT 1 FROM revoked_claims WHERE claim_id = ${claimId}`, (rows) => rows.length > 0))

/** Revocations outlive any delivery of their claim by far after a week. */
export const purge = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql`DELETE FROM revoked_claims WHERE revoked_at < now() - interval '7 days'`.pipe(Effect.asVoid))
