-- Readings: with TimescaleDB a hypertable in 1-day chunks, compressed after 7 days (segmented by equipment and
-- sensor, newest first). Raw readings are kept 30 days in every edition (RAW_RETENTION changes it at start);
-- the aggregates keep their buckets.
DO $$
BEGIN
  IF telemetry_timescaledb_edition() <> 'none' THEN
    PERFORM create_hypertable('telemetry_data', by_range('time', INTERVAL '1 day'), create_default_indexes => false);
  END IF;
  IF telemetry_timescaledb_edition() = 'timescale' THEN
    ALTER TABLE telemetry_data SET (
      timescaledb.compress,
      timescaledb.compress_segmentby = 'equipment_id, sensor_id',
      timescaledb.compress_orderby = 'time DESC'
    );
    PERFORM add_compression_policy('telemetry_data', compress_after => INTERVAL '7 days', if_not_exists => true);
    PERFORM add_retention_policy('telemetry_data', drop_after => INTERVAL '30 days', if_not_exists => true);
  ELSE
    INSERT INTO telemetry_jobs (job_name, proc_name, config, schedule_interval)
    VALUES ('retention telemetry_data', 'telemetry_retention_policy', '{"drop_after": "30 days"}', INTERVAL '1 day')
    ON CONFLICT (job_name) DO NOTHING;
  END IF;
END $$;

-- History queries read by equipment or sensor over a time range; refreshes and retention read by time.
-- The analytics read an equipment's readings over a time range: the raw history, and the real-time part of
-- telemetry_hourly/telemetry_daily (readings above the watermark, grouped by bucket, equipment and sensor).
-- Carrying sensor_id and value in the equipment index makes that aggregation an index-only scan; the raw
-- history still reads status and metadata from the table, in the index's time order.
CREATE INDEX telemetry_data_equipment_time_idx ON telemetry_data (equipment_id, time DESC) INCLUDE (sensor_id, value);
CREATE INDEX telemetry_data_sensor_time_idx ON telemetry_data (sensor_id, time DESC);
CREATE INDEX telemetry_data_time_idx ON telemetry_data (time DESC);

-- Index-only scans need the visibility map of fresh rows: without TimescaleDB's small daily chunks, have
-- autovacuum visit the one large table after 1% new rows instead of 20%.
DO $$
BEGIN
  IF telemetry_timescaledb_edition() = 'none' THEN
    ALTER TABLE telemetry_data SET (autovacuum_vacuum_insert_scale_factor = 0.01);
  END IF;
END
$$;
