-- The console lists a tenant's equipments by name (ignoring ASCII case, in byte order on every database), then
-- uuid, a page at a time: in this index's order, a page is read from where the previous one ended instead of
-- sorting all of the tenant's equipments for each page.
CREATE INDEX equipments_tenant_name_idx ON equipments
  (tenant_id, (lower(coalesce(name, uuid))) COLLATE "C", uuid COLLATE "C");
