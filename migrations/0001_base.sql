-- TimescaleDB where the server has it. A server without it, or with it installed but not preloaded, runs the
-- same schema on plain PostgreSQL (see telemetry_timescaledb_edition below).
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_available_extensions WHERE name = 'timescaledb') THEN
    CREATE EXTENSION IF NOT EXISTS timescaledb;
  END IF;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'timescaledb is installed but cannot be created (%); continuing on plain PostgreSQL', SQLERRM;
END $$;

-- What the schema is built on:
--   'timescale'  TimescaleDB under its community license: hypertable, continuous aggregates, policies;
--   'apache'     TimescaleDB under the Apache license: hypertable; aggregates and jobs of our own (below);
--   'none'       plain PostgreSQL (14+): plain table; aggregates and jobs of our own.
-- The names and columns dashboards query are the same in all three.
CREATE FUNCTION telemetry_timescaledb_edition() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT CASE
    WHEN NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'timescaledb') THEN 'none'
    WHEN current_setting('timescaledb.license', true) = 'apache' THEN 'apache'
    ELSE 'timescale'
  END
$$;

-- Equipments and their sensors, keyed by the identities devices send; readings refer to them by id.
CREATE TABLE equipments (
  id                  serial PRIMARY KEY,
  tenant_id           text NOT NULL DEFAULT 'default',
  uuid                text NOT NULL,
  name                text,
  location            text,
  status              text NOT NULL DEFAULT 'active',
  collection_interval integer NOT NULL DEFAULT 60,
  siren_active        boolean NOT NULL DEFAULT false,
  siren_time          integer NOT NULL DEFAULT 120,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, uuid)
);

CREATE TABLE sensors (
  id           serial PRIMARY KEY,
  equipment_id integer NOT NULL REFERENCES equipments (id),
  uuid         text NOT NULL,
  name         text,
  type         text NOT NULL DEFAULT 'unknown',
  unit         text,
  status       text,
  manufacturer text,
  model        text,
  firmware     text,
  hardware_id  text,
  via_hub      text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (equipment_id, uuid)
);
CREATE INDEX sensors_uuid_idx ON sensors (uuid);

CREATE TABLE telemetry_data (
  time         timestamptz NOT NULL,
  equipment_id integer NOT NULL,
  sensor_id    integer NOT NULL,
  value        double precision,
  status       text,
  metadata     jsonb
);

-- One row per loaded claim, written in the same transaction as its readings: a claim delivered twice loads once.
CREATE TABLE claim_ledger (
  claim_id   uuid PRIMARY KEY,
  object_key text NOT NULL,
  tenant_id  text NOT NULL,
  request_id text,
  items      integer,
  readings   integer,
  loaded_at  timestamptz NOT NULL DEFAULT now()
);
