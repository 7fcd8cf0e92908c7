-- How many of a claim's readings were older than the raw retention (RAW_RETENTION, from the claim's receipt) and
-- so were not stored: retention would drop them at its next run, unaggregated, and each of their days would be a
-- chunk of its own (a payload of readings from years back made thousands, which exhausted the lock table of every
-- query and of the retention job itself). Null for claims loaded before.
ALTER TABLE claim_ledger ADD COLUMN expired integer;
