-- Scheduled maintenance where TimescaleDB's policies are not available (editions 'apache' and 'none'): the same
-- jobs, kept here and run by the workers (packages/domain/src/db/Maintenance.ts), each job by one worker at a
-- time. With the 'timescale' edition the table stays empty: the policies live in timescaledb_information.jobs.
CREATE TABLE telemetry_jobs (
  job_name          text PRIMARY KEY,
  proc_name         text NOT NULL,          -- a function (config jsonb) defined below
  config            jsonb NOT NULL,
  schedule_interval interval NOT NULL,
  next_start        timestamptz NOT NULL DEFAULT now(),
  last_finish       timestamptz,
  last_error        text
);

-- Runs one job now and schedules its next run. Failures roll back with the caller's transaction.
CREATE FUNCTION run_telemetry_job(job text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  j telemetry_jobs;
BEGIN
  SELECT * INTO STRICT j FROM telemetry_jobs WHERE job_name = job;
  EXECUTE format('SELECT %I($1)', j.proc_name) USING j.config;
  UPDATE telemetry_jobs SET last_finish = now(), last_error = NULL, next_start = now() + schedule_interval
  WHERE job_name = job;
END $$;

-- Raw retention: whole days, as TimescaleDB drops whole 1-day chunks, so raw history ends at the same place in
-- every edition. The aggregates keep their buckets.
CREATE FUNCTION telemetry_retention_policy(config jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  cutoff timestamptz := now() - (config ->> 'drop_after')::interval;
BEGIN
  IF telemetry_timescaledb_edition() = 'apache' THEN
    PERFORM drop_chunks('telemetry_data', older_than => cutoff);
  ELSE
    DELETE FROM telemetry_data WHERE time < date_bin(INTERVAL '1 day', cutoff, TIMESTAMPTZ '2000-01-03 00:00:00+00');
  END IF;
END $$;
