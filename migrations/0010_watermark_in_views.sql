-- Without continuous aggregates, the views compared bucket and time with the watermark read by a subquery: the
-- planner could not know its value, guessed that a third of the raw readings lie above it, and read the real-time
-- part through the time index over every equipment instead of an equipment's own index (the equipments listing:
-- 15 000 readings read to keep 2 500). Each view now holds its watermark as a constant, written again whenever a
-- refresh moves it, in the refresh's transaction: the same rows as before, planned on what the watermark selects.

CREATE FUNCTION replace_telemetry_aggregate_view(a telemetry_aggregates) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  watermark CONSTANT text := quote_literal(coalesce(a.watermark, '-infinity')) || '::timestamptz';
BEGIN
  EXECUTE format('CREATE OR REPLACE VIEW %I AS SELECT * FROM %I WHERE bucket < %s UNION ALL %s', a.view_name,
    a.materialized_table, watermark, telemetry_aggregate_query(a.width, a.activity_width, a.activity_column,
      format('WHERE time >= %s', watermark)));
END $$;

CREATE OR REPLACE FUNCTION refresh_telemetry_aggregate(aggregate text, window_start timestamptz, window_end timestamptz)
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
  -- As with TimescaleDB, the watermark only moves forward; the view follows it when it moves.
  EXECUTE format('SELECT max(bucket) + $1 FROM %I', a.materialized_table) INTO newest USING a.width;
  IF newest > coalesce(a.watermark, '-infinity') THEN
    UPDATE telemetry_aggregates SET watermark = newest WHERE view_name = aggregate RETURNING * INTO a;
    PERFORM replace_telemetry_aggregate_view(a);
  END IF;
END $$;

SELECT replace_telemetry_aggregate_view(a) FROM telemetry_aggregates a WHERE a.materialized_table IS NOT NULL;
