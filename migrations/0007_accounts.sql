-- Accounts that log in with a username and password (POST /api/v1/auth/device/login, /api/v1/auth/login) and
-- get a bearer token of their kind: devices may ingest, readers may read analytics. Each belongs to one tenant,
-- which its tokens carry. Usernames are unique per kind, since a login names no tenant.
CREATE TABLE accounts (
  id            serial PRIMARY KEY,
  kind          text NOT NULL CHECK (kind IN ('device', 'reader')),
  tenant_id     text NOT NULL,
  username      text NOT NULL,
  -- scrypt$N$r$p$salt$hash (base64url): the parameters travel with the hash, so they can be raised later.
  password_hash text NOT NULL,
  -- IANA zone in which the device's naive reading times are read; readers have none.
  time_zone     text CHECK (kind = 'device' OR time_zone IS NULL),
  disabled      boolean NOT NULL DEFAULT false,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (kind, username)
);
CREATE INDEX accounts_tenant_idx ON accounts (tenant_id, kind, username);
