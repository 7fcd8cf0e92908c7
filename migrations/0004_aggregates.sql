-- Hourly and daily statistics per sensor (contract §3): telemetry_hourly and telemetry_daily, with the same
-- columns in every edition, real-time (readings loaded a moment ago show before any refresh), refreshed on the
-- original's schedule, and kept when raw readings are dropped.

-- Buckets aligned on UTC midnight: time_bucket with TimescaleDB, date_bin (PostgreSQL 14+) without.
CREATE FUNCTION telemetry_bucket_sql(width interval) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN telemetry_timescaledb_edition() = 'none'
    THEN format('date_bin(%L::interval, time, TIMESTAMPTZ ''2000-01-03 00:00:00+00'')', width)
    ELSE format('time_bucket(%L::interval, time)', width)
  END
$$;

-- THE definition of an aggregate, for both ways of keeping it: the continuous aggregate with TimescaleDB; the
-- refresh and the real-time part of the view without. Percentiles are exact per bucket (a day's come from its raw
-- rows, they cannot be rolled up from hours); sum_value/value_count give exact weighted averages over buckets.
CREATE FUNCTION telemetry_aggregate_query(width interval, activity_width interval, activity_column text,
                                          raw_filter text DEFAULT '') RETURNS text LANGUAGE sql STABLE AS $fn$
  SELECT format($q$SELECT
  %1$s AS bucket,
  equipment_id,
  sensor_id,
  avg(value) AS avg_value,
  max(value) AS max_value,
  min(value) AS min_value,
  sum(value) AS sum_value,
  count(value) AS value_count,
  count(*) AS sample_count,
  count(DISTINCT %2$s) AS %3$I,
  stddev(value) AS stddev_value,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS median_value,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY value) AS p95_value,
  percentile_cont(0.99) WITHIN GROUP (ORDER BY value) AS p99_value
FROM telemetry_data %4$s
GROUP BY bucket, equipment_id, sensor_id$q$,
    telemetry_bucket_sql(width), telemetry_bucket_sql(activity_width), activity_column, raw_filter)
$fn$;

-- The aggregates and their bucket widths. Without continuous aggregates (editions 'apache' and 'none') we keep
-- their semantics by hand: buckets are materialized into <view>_materialized by window; the view shows the
-- materialized buckets below the watermark (the end of the newest materialized bucket) and aggregates raw rows
-- above it at query time. With TimescaleDB, materialized_table and watermark stay NULL.
CREATE TABLE telemetry_aggregates (
  view_name          text PRIMARY KEY,
  width              interval NOT NULL,
  activity_width     interval NOT NULL,
  activity_column    text NOT NULL,
  materialized_table text,
  watermark          timestamptz
);

-- Materializes the whole buckets inside [window_start, window_end) (NULL: unbounded), as
-- refresh_continuous_aggregate does: buckets are recomputed from the raw rows there now.
CREATE FUNCTION refresh_telemetry_aggregate(aggregate text, window_start timestamptz, window_end timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  a telemetry_aggregates;
  origin CONSTANT timestamptz := '2000-01-03 00:00:00+00';
  first_bucket timestamptz;
  end_bucket timestamptz;
  newest timestamptz;
BEGIN
  -- The row lock makes refreshes of one aggregate take turns.
  SELECT * INTO STRICT a FROM telemetry_aggregates WHERE view_name = aggregate FOR UPDATE;
  first_bucket := coalesce(date_bin(a.width, window_start + a.width - INTERVAL '1 microsecond', origin), '-infinity');
  end_bucket := coalesce(date_bin(a.width, window_end, origin), 'infinity');
  IF first_bucket >= end_bucket THEN
    RETURN;
  END IF;
  EXECUTE format('DELETE FROM %I WHERE bucket >= $1 AND bucket < $2', a.materialized_table)
    USING first_bucket, end_bucket;
  EXECUTE format('INSERT INTO %I %s', a.materialized_table,
      telemetry_aggregate_query(a.width, a.activity_width, a.activity_column, 'WHERE time >= $1 AND time < $2'))
    USING first_bucket, end_bucket;
  -- As with TimescaleDB, the watermark only moves forward.
  EXECUTE format('SELECT max(bucket) + $1 FROM %I', a.materialized_table) INTO newest USING a.width;
  UPDATE telemetry_aggregates SET watermark = greatest(watermark, newest) WHERE view_name = aggregate;
END $$;

-- The refresh policy: [now - start_offset, now - end_offset].
CREATE FUNCTION telemetry_refresh_policy(config jsonb) RETURNS void LANGUAGE sql AS $$
  SELECT refresh_telemetry_aggregate(config ->> 'view_name', now() - (config ->> 'start_offset')::interval,
    now() - (config ->> 'end_offset')::interval)
$$;

-- Creates an aggregate with its refresh policy, in the form the edition allows.
CREATE FUNCTION create_telemetry_aggregate(aggregate text, width interval, activity_width interval,
  activity_column text, start_offset interval, end_offset interval, schedule_interval interval)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  materialized text := aggregate || '_materialized';
  watermark text := format('(SELECT watermark FROM telemetry_aggregates WHERE view_name = %L)', aggregate);
BEGIN
  INSERT INTO telemetry_aggregates (view_name, width, activity_width, activity_column)
  VALUES (aggregate, width, activity_width, activity_column);
  IF telemetry_timescaledb_edition() = 'timescale' THEN
    EXECUTE format(
      'CREATE MATERIALIZED VIEW %I WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS %s WITH NO DATA',
      aggregate, telemetry_aggregate_query(width, activity_width, activity_column));
    PERFORM add_continuous_aggregate_policy(aggregate, start_offset => start_offset, end_offset => end_offset,
      schedule_interval => schedule_interval, if_not_exists => true);
    RETURN;
  END IF;
  EXECUTE format('CREATE TABLE %I AS %s WITH NO DATA', materialized,
    telemetry_aggregate_query(width, activity_width, activity_column));
  EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (bucket, equipment_id, sensor_id)', materialized);
  EXECUTE format('CREATE INDEX ON %I (equipment_id, bucket DESC)', materialized);
  EXECUTE format('CREATE INDEX ON %I (sensor_id, bucket DESC)', materialized);
  UPDATE telemetry_aggregates SET materialized_table = materialized WHERE view_name = aggregate;
  EXECUTE format('CREATE VIEW %I AS SELECT * FROM %I WHERE bucket < %s UNION ALL %s', aggregate, materialized,
    watermark, telemetry_aggregate_query(width, activity_width, activity_column,
      format('WHERE time >= coalesce(%s, ''-infinity'')', watermark)));
  INSERT INTO telemetry_jobs (job_name, proc_name, config, schedule_interval)
  VALUES ('refresh ' || aggregate, 'telemetry_refresh_policy',
    jsonb_build_object('view_name', aggregate, 'start_offset', start_offset, 'end_offset', end_offset),
    schedule_interval)
  ON CONFLICT (job_name) DO NOTHING;
END $$;

-- The original's policies: hourly every 30 minutes over [now - 3 days, now - 1 hour], daily every 2 hours over
-- [now - 7 days, now - 1 day].
SELECT create_telemetry_aggregate('telemetry_hourly', INTERVAL '1 hour', INTERVAL '1 minute', 'active_minutes',
  INTERVAL '3 days', INTERVAL '1 hour', INTERVAL '30 minutes');
SELECT create_telemetry_aggregate('telemetry_daily', INTERVAL '1 day', INTERVAL '1 hour', 'active_hours',
  INTERVAL '7 days', INTERVAL '1 day', INTERVAL '2 hours');
