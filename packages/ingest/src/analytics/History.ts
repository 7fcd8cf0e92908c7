import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"

export type Period = "raw" | "hour"

export interface HistoryQuery {
  readonly equipmentUuid: string
  readonly period: Period
  readonly start: Date
  readonly end: Date
  readonly sensorType: string | undefined
  readonly limit: number
}

/** Rows of `GET equipment/:uuid/history` (contract §4); counts cast to int so they reach JSON as numbers. */
export class History extends Effect.Service<History>()("@telemetry/History", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const sensorFilter = (type: string | undefined) => (type === undefined ? sql`` : sql`AND s.type = ${type}`)

    const equipmentHistory = (q: HistoryQuery) =>
      q.period === "raw"
        ? sql`SELECT t.time, s.uuid AS sensor_uuid, s.name AS sensor_name, s.type AS sensor_type,
              s.unit AS sensor_unit, t.value, t.status, t.metadata
            FROM telemetry_data t
            JOIN equipments e ON e.id = t.equipment_id
            JOIN sensors s ON s.id = t.sensor_id
            WHERE e.uuid = ${q.equipmentUuid} AND t.time >= ${q.start} AND t.time < ${q.end} ${sensorFilter(q.sensorType)}
            ORDER BY t.time, s.uuid
            LIMIT ${q.limit}`
        : sql`SELECT h.bucket AS time, s.uuid AS sensor_uuid, s.name AS sensor_name, s.type AS sensor_type,
              s.unit AS sensor_unit, h.avg_value, h.max_value, h.min_value, h.sample_count::int AS sample_count,
              h.active_minutes::int AS active_minutes, h.median_value, h.p95_value
            FROM telemetry_hourly h
            JOIN equipments e ON e.id = h.equipment_id
            JOIN sensors s ON s.id = h.sensor_id
            WHERE e.uuid = ${q.equipmentUuid} AND h.bucket >= ${q.start} AND h.bucket < ${q.end} ${sensorFilter(q.sensorType)}
            ORDER BY h.bucket, s.uuid
            LIMIT ${q.limit}`

    return { equipmentHistory } as const
  })
}) {}
