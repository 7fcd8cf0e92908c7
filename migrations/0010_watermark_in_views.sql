-- Without continuous aggregates, the views compared bucket and time with the watermark read by a subquery: the
-- planner could not know its value, guessed that a third of the raw readings lie above it, and read the real-time
-- part through the time index over every equipment instead of an equipment's own index (the equipments listing:
-- 15 000 readings read to keep 2 500). Each view now holds its watermark as a constant (view_watermark), written
-- again by the refresh that finds it behind, in the refresh's transaction: the same rows as before, planned on
-- what the watermark selects.
ALTER TABLE telemetry_aggregates ADD COLUMN view_watermark timestamptz;

CREATE FUNCTION replace_telemetry_aggregate_view(a telemetry_aggregates) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  watermark CONSTANT text := quote_literal(coalesce(a.watermark, '-infinity')) || '::timestamptz';
BEGIN
  EXECUTE format('CREATE OR REPLACE VIEW %I AS SELECT * FROM %I WHERE bucket < %s UNION ALL %s', a.view_name,
    a.materialized_table, watermark, telemetry_aggregate_query(a.width, a.activity_width, a.activity_column,
      format('WHERE time >= %s', watermark)));
  UPDATE telemetry_aggregates SET view_watermark = a.watermark WHERE view_name = a.view_name;
END $$;

-- A long query on a view must not hold up its refresh, nor every query queued behind the refresh's lock: a view that
-- cannot be had within a second keeps its older watermark, under which it shows the same rows (more of them
-- aggregated from raw readings), until the next refresh.
CREATE FUNCTION telemetry_watermark_moved() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  lock_timeout CONSTANT text := current_setting('lock_timeout');
BEGIN
  PERFORM set_config('lock_timeout', '1s', true);
  BEGIN
    PERFORM replace_telemetry_aggregate_view(NEW);
  EXCEPTION WHEN lock_not_available THEN
    RAISE WARNING '% is in use: it keeps its older watermark until the next refresh', NEW.view_name;
  END;
  PERFORM set_config('lock_timeout', lock_timeout, true);
  RETURN NULL;
END $$;

-- Every refresh sets the watermark, moved or not.
CREATE TRIGGER telemetry_watermark_moved AFTER UPDATE OF watermark ON telemetry_aggregates
  FOR EACH ROW WHEN (NEW.materialized_table IS NOT NULL AND NEW.watermark IS DISTINCT FROM NEW.view_watermark)
  EXECUTE FUNCTION telemetry_watermark_moved();

SELECT replace_telemetry_aggregate_view(a) FROM telemetry_aggregates a WHERE a.materialized_table IS NOT NULL;
