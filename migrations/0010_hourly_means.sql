-- The console's sparklines need each sensor's hourly means and counts only. Through telemetry_hourly, the view's
-- real-time part would compute every statistic, percentiles included, over the raw rows above the watermark; this
-- reads the materialized buckets below the watermark as the view does, and only averages and counts the raw rows
-- above it. Same buckets and values as telemetry_hourly's avg_value and sample_count, on every edition.
CREATE FUNCTION telemetry_hourly_means(equipment_ids integer[], since timestamptz)
RETURNS TABLE (sensor_id integer, bucket timestamptz, avg_value double precision, sample_count bigint)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  materialized text;
  watermark timestamptz;
BEGIN
  IF telemetry_timescaledb_edition() = 'timescale' THEN
    -- Where the continuous aggregate keeps its buckets, and its watermark as its own view reads it.
    SELECT format('%I.%I', h.schema_name, h.table_name),
        _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark(c.mat_hypertable_id))
      INTO STRICT materialized, watermark
      FROM _timescaledb_catalog.continuous_agg c JOIN _timescaledb_catalog.hypertable h ON h.id = c.mat_hypertable_id
      WHERE c.user_view_name = 'telemetry_hourly';
  ELSE
    SELECT format('%I', a.materialized_table), a.watermark INTO STRICT materialized, watermark
      FROM telemetry_aggregates a WHERE a.view_name = 'telemetry_hourly';
  END IF;
  RETURN QUERY EXECUTE format($q$
    SELECT m.sensor_id, m.bucket, m.avg_value::float8, m.sample_count::bigint FROM %s m
      WHERE m.equipment_id = ANY($1) AND m.bucket >= $2 AND m.bucket < $3
    UNION ALL
    SELECT sensor_id, %s, avg(value)::float8, count(*) FROM telemetry_data
      WHERE equipment_id = ANY($1) AND time >= greatest($2, $3)
      GROUP BY 1, 2$q$, materialized, telemetry_bucket_sql(INTERVAL '1 hour'))
    USING equipment_ids, since, coalesce(watermark, '-infinity');
END $fn$;
