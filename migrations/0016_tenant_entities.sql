-- Each tenant's equipments and sensors, counted by the loads that add them (in their transaction), so that
-- MAX_EQUIPMENTS_PER_TENANT and MAX_SENSORS_PER_TENANT are checked without counting the tables at every load.
CREATE TABLE tenant_entities (
  tenant_id  text PRIMARY KEY,
  equipments bigint NOT NULL DEFAULT 0,
  sensors    bigint NOT NULL DEFAULT 0
);

INSERT INTO tenant_entities (tenant_id, equipments, sensors)
SELECT e.tenant_id, count(DISTINCT e.id), count(s.id)
FROM equipments e LEFT JOIN sensors s ON s.equipment_id = e.id
GROUP BY e.tenant_id;
