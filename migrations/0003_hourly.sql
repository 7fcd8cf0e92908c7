-- Hourly statistics per sensor (contract §3). Real-time aggregation on: rows not yet materialized are
-- aggregated at query time, so fresh readings show up before a refresh ran.
CREATE MATERIALIZED VIEW telemetry_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT
  time_bucket(INTERVAL '1 hour', time) AS bucket,
  equipment_id,
  sensor_id,
  avg(value)                                           AS avg_value,
  max(value)                                           AS max_value,
  min(value)                                           AS min_value,
  sum(value)                                           AS sum_value,
  count(value)                                         AS value_count,
  count(*)                                             AS sample_count,
  count(DISTINCT time_bucket(INTERVAL '1 minute', time)) AS active_minutes,
  stddev(value)                                        AS stddev_value,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY value)   AS median_value,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY value)  AS p95_value,
  percentile_cont(0.99) WITHIN GROUP (ORDER BY value)  AS p99_value
FROM telemetry_data
GROUP BY bucket, equipment_id, sensor_id
WITH NO DATA;

SELECT add_continuous_aggregate_policy('telemetry_hourly',
  start_offset => INTERVAL '3 days',
  end_offset => INTERVAL '1 hour',
  schedule_interval => INTERVAL '30 minutes',
  if_not_exists => true);
