-- A reading is one (tenant, equipment, sensor, time): however many claims, retries, resends or replays bring it,
-- it is stored once, and the first stored value wins. Sensor ids belong to one equipment of one tenant, so
-- (sensor_id, time) identifies a reading. The unique index includes the time column, as TimescaleDB requires of
-- a hypertable's unique indexes (compressed chunks included), and takes the place of the sensor/time index of
-- 0003, which served the sensor history queries with the same columns.
-- Readings stored more than once before this migration keep their first copy.
DELETE FROM telemetry_data a USING telemetry_data b
  WHERE a.sensor_id = b.sensor_id AND a.time = b.time AND a.ctid > b.ctid;
DROP INDEX telemetry_data_sensor_time_idx;
CREATE UNIQUE INDEX telemetry_data_reading_idx ON telemetry_data (sensor_id, time DESC);

-- How many of a claim's readings were already stored when it loaded (a resend overlapping earlier readings).
ALTER TABLE claim_ledger ADD COLUMN duplicates integer;
