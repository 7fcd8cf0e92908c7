-- On the embedded database, which has one session, a large claim is committed batch by batch so that other
-- statements are not held up for the whole load (SqlTelemetryStore's commitEachBatch): its ledger row is written
-- first, partial, with running totals of what its committed batches hold, and a redelivery resumes after them. A
-- claim is loaded once its row is no longer partial. Rows written before this migration are of whole loads.
ALTER TABLE claim_ledger ADD COLUMN partial boolean NOT NULL DEFAULT false;

-- The UTC days (since the epoch) of a claim's readings, so that a redelivery of a loaded claim refreshes the
-- aggregates over them again: readings older than the refresh policies' windows are refreshed after the load
-- commits, and a worker stopped in between would otherwise leave them out of the aggregates. Null for claims
-- loaded before.
ALTER TABLE claim_ledger ADD COLUMN days integer[];
