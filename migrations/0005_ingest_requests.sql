-- Requests ingest accepted, so that a retried request (the same Idempotency-Key, or without one the same body
-- from the same device within a window) gets its first claim back instead of a second claim.
CREATE TABLE ingest_requests (
  claim_id        uuid PRIMARY KEY,
  tenant_id       text NOT NULL,
  device_id       text NOT NULL,
  idempotency_key text,
  body_sha256     text NOT NULL,
  object_key      text NOT NULL,
  items           integer NOT NULL,
  readings        integer NOT NULL,
  -- False while the first request is still storing and publishing; a crashed one is reclaimed after a while.
  accepted        boolean NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT now()
);

-- One claim per key, or per body when the client sent no key: the unique indexes settle concurrent retries.
CREATE UNIQUE INDEX ingest_requests_by_key ON ingest_requests (tenant_id, device_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX ingest_requests_by_body ON ingest_requests (tenant_id, device_id, body_sha256)
  WHERE idempotency_key IS NULL;
CREATE INDEX ingest_requests_created_at ON ingest_requests (created_at);

-- Claims of requests refused after their publish timed out: Kafka may still deliver such a claim later. Its
-- object is deleted, and a worker finding the claim here settles it quietly instead of dead-lettering it.
CREATE TABLE revoked_claims (
  claim_id   uuid PRIMARY KEY,
  revoked_at timestamptz NOT NULL DEFAULT now()
);
