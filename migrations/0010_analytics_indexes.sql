-- The analytics read an equipment's readings over a time range: the raw history, and the real-time part of
-- telemetry_hourly/telemetry_daily (readings above the watermark, grouped by bucket, equipment and sensor).
-- Carrying sensor_id and value in the equipment index makes the aggregation an index-only scan; the raw
-- history still reads status and metadata from the table, in the index's time order.
DROP INDEX IF EXISTS telemetry_data_equipment_time_idx;
CREATE INDEX telemetry_data_equipment_time_idx ON telemetry_data (equipment_id, time DESC) INCLUDE (sensor_id, value);
