-- When a noted day is due for its refresh. Days the refresh policies no longer cover are due at once; days inside
-- their windows (a Home Assistant queue resent after an outage lands in buckets already materialized, which
-- real-time aggregation does not cover) after LATE_REFRESH_DELAY, so that a storm of resends refreshes each day at
-- most once in that time rather than once a poll — and not only at the policy's next run (up to 30 minutes, or 2
-- hours for the daily aggregate), which left the aggregates contradicting the raw readings until then.
ALTER TABLE telemetry_late_days ADD COLUMN due timestamptz NOT NULL DEFAULT now();
