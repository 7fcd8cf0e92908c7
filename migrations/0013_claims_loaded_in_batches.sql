-- On the embedded database, which has one session, a large claim is committed batch by batch so that other
-- statements are not held up for the whole load (SqlTelemetryStore's commitEachBatch): its ledger row is written
-- first, partial, with running totals of what its committed batches hold, and a redelivery resumes after them. A
-- claim is loaded once its row is no longer partial. Rows written before this migration are of whole loads.
ALTER TABLE claim_ledger ADD COLUMN partial boolean NOT NULL DEFAULT false;
