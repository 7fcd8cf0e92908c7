-- The analytics read an equipment's readings over a time range: the raw history, and the real-time part of
-- telemetry_hourly/telemetry_daily (readings above the watermark, grouped by bucket, equipment and sensor).
-- Carrying sensor_id and value in the equipment index makes the aggregation an index-only scan; the raw
-- history still reads status and metadata from the table, in the index's time order.
DROP INDEX IF EXISTS telemetry_data_equipment_time_idx;
CREATE INDEX telemetry_data_equipment_time_idx ON telemetry_data (equipment_id, time DESC) INCLUDE (sensor_id, value);

-- Index-only scans need the visibility map of fresh rows: without TimescaleDB's small daily chunks, have
-- autovacuum visit the one large table after 1% new rows instead of 20%.
DO $$
BEGIN
  IF telemetry_timescaledb_edition() = 'none' THEN
    ALTER TABLE telemetry_data SET (autovacuum_vacuum_insert_scale_factor = 0.01);
  END IF;
END
$$;
