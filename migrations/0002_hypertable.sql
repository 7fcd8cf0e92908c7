-- Readings partitioned by time in 1-day chunks; history queries read by equipment or sensor over a time range.
SELECT create_hypertable('telemetry_data', by_range('time', INTERVAL '1 day'), create_default_indexes => false);
CREATE INDEX telemetry_data_equipment_time_idx ON telemetry_data (equipment_id, time DESC);
CREATE INDEX telemetry_data_sensor_time_idx ON telemetry_data (sensor_id, time DESC);
CREATE INDEX telemetry_data_time_idx ON telemetry_data (time DESC);
