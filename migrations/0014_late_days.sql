-- The UTC days (since the epoch) holding readings that the refresh policies no longer cover, noted by the load
-- that brought them and refreshed by the next late-data poll of any worker (SqlMaintenance's refreshNoted): however
-- many claims bring readings of a day — a fleet resending the backlog of an outage — the day is refreshed once a
-- poll, not once a claim, and the claims' partitions do not wait for it. `version` counts the notes, so that a day
-- noted again while it is being refreshed stays for the next poll; `taken` is when a worker began refreshing it
-- (a lease, renewed before each refresh statement: the day of a worker that died meanwhile is taken again 10
-- minutes after its last statement began).
CREATE TABLE telemetry_late_days (
  day      integer PRIMARY KEY,
  version  integer NOT NULL DEFAULT 0,
  taken    timestamptz
);
