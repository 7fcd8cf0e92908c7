-- The role Grafana reads the pipeline's database as (docker-compose.yml, grafana-db-init). It may read the
-- equipments, sensors, readings and aggregates the dashboards query, and nothing else: not the accounts and their
-- password hashes, nor the ledgers. Run after the migrations, which create those relations; running it again
-- changes nothing. The caller sets the password.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'telemetry_reader') THEN
    CREATE ROLE telemetry_reader LOGIN;
  END IF;
END $$;

-- A dashboard can neither write nor hold the database with a runaway query.
ALTER ROLE telemetry_reader SET default_transaction_read_only = on;
ALTER ROLE telemetry_reader SET statement_timeout = '30s';

GRANT USAGE ON SCHEMA public TO telemetry_reader;
GRANT SELECT ON equipments, sensors, telemetry_data, telemetry_hourly, telemetry_daily TO telemetry_reader;
