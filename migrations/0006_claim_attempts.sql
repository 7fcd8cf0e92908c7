-- Deliveries of a claim that began loading and have not ended yet, counted in a statement committed before each
-- load: a claim that took the process down with it (out of memory, a native crash, SIGKILL) leaves its count
-- here, so its next delivery knows, and past WORKER_MAX_DELIVERIES it is set aside instead of loaded again. A
-- delivery that ends in this process (loaded, dead-lettered, or left for later during an outage) gives its count
-- back or removes the row, so the table only holds claims in progress and those that crashed a worker.
CREATE TABLE claim_attempts (
  claim_id   uuid PRIMARY KEY,
  attempts   integer NOT NULL,
  -- How the last delivery that ended in a worker failed; null when none did (it crashed, or is in progress).
  last_error text,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX claim_attempts_updated_at ON claim_attempts (updated_at);
