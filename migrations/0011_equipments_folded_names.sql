-- The console's name filter matches part of an equipment's name or uuid in any case: lowered once when a row is
-- written instead of twice per equipment and request (the filter's counts read every equipment of the tenant).
ALTER TABLE equipments
  ADD COLUMN name_folded text GENERATED ALWAYS AS (lower(coalesce(name, ''))) STORED,
  ADD COLUMN uuid_folded text GENERATED ALWAYS AS (lower(uuid)) STORED;
