/** Test support of the adapters, shared by the packages' tests (`@telemetry/infra/testing`). */
export { databases, postgresAt, storeOn, type TestDatabase } from "./databases.js"
import { NodeContext } from "@effect/platform-node"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import * as SqlMaintenance from "../../src/db/SqlMaintenance.js"
import * as PgliteClient from "../../src/db/PgliteClient.js"
import * as SqlTelemetryStore from "../../src/db/SqlTelemetryStore.js"
import * as Migrator from "../../src/db/Migrator.js"

/** A fresh in-memory embedded TimescaleDB with the migrations applied, and a store and maintenance over it. */
export const inMemoryStore = (batchReadings: number) =>
  Layer.merge(SqlTelemetryStore.layer({ batchReadings }), SqlMaintenance.layer).pipe(
    Layer.provideMerge(Migrator.migrated(PgliteClient.layer({}))),
    Layer.provideMerge(NodeContext.layer)
  )

export interface DataRow {
  readonly time: Date
  readonly sensor: string
  readonly value: number | null
  readonly status: string | null
  readonly metadata: unknown
}

/** The readings loaded for an equipment, in time order. */
export const dataOf = (equipUuid: string, tenantId = "default") =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<DataRow>`SELECT t.time, s.uuid AS sensor, t.value, t.status, t.metadata
      FROM telemetry_data t
      JOIN equipments e ON e.id = t.equipment_id
      JOIN sensors s ON s.id = t.sensor_id AND s.equipment_id = e.id
      WHERE e.uuid = ${equipUuid} AND e.tenant_id = ${tenantId}
      ORDER BY t.time, s.uuid, t.value`)

/** Rows of `table` (which may be a join) matching `where`. */
export const count = (table: string, where = "true") =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql.unsafe<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE ${where}`), (rows) => rows[0]!.n))
export { nextClaim } from "./queue.js"
