import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import { Effect, Option } from "effect"
import { checkedRows } from "./checkedRows.js"
import { DayRow, HourRow, RawRow, SensorStats } from "./Rows.js"

/** Whose data: one equipment (optionally one sensor type), or one sensor uuid (optionally of one equipment). */
export type Scope =
  | {
    readonly by: "equipment"
    readonly tenantId: string
    readonly equipmentUuid: string
    readonly sensorType?: string | undefined
  }
  | {
    readonly by: "sensor"
    readonly tenantId: string
    readonly sensorUuid: string
    readonly equipmentUuid?: string | undefined
  }

/** Readings, or buckets, whose time lies in [start, end). */
export interface Range {
  readonly start: Date
  readonly end: Date
}

export type Resolution = "hour" | "day"

/** Hourly statistics come from `telemetry_hourly`, daily ones from `telemetry_daily` (contract §3). */
const aggregates = {
  hour: { table: "telemetry_hourly", active: "active_minutes" },
  day: { table: "telemetry_daily", active: "active_hours" }
} as const

const rawRows = checkedRows(RawRow)
const hourRows = checkedRows(HourRow)
const dayRows = checkedRows(DayRow)
const statsRows = checkedRows(SensorStats)

/**
 * The analytics queries (contract §4), always scoped by tenant. Every number is cast to float8/int in SQL, since
 * node-postgres returns bigint and numeric as strings; the rows are checked against their schemas (checkedRows), so a
 * column of the wrong type is a defect here rather than a malformed response.
 */
export class Analytics extends Effect.Service<Analytics>()("@telemetry/Analytics", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient


    // The scope as a filter on the readings or buckets (alias `a`). An equipment by its id, which the
    // (equipment_id, time|bucket) indexes serve in time order, looked up first and given as a value, whose rows
    // the planner can count: behind a subquery it guessed an equipment's 56 000 readings of a month at 400, and
    // sorted them all rather than read them in time order up to the limit. A sensor uuid by the ids of the sensors
    // that have it (computed once, an InitPlan), for the (sensor_id, …) indexes: given as values, they changed the
    // order in which the aggregates of raw rows add their values, and so their last digits. `sensors` narrows the
    // sensors joined to the equipment's, where the count of its buckets made a hash of all sensors look cheaper
    // (the histories of buckets; not the raw readings, whose plan it turns to a sensor at a time, nor the stats,
    // whose sums it reorders). None: nothing in scope.
    const inScope = (scope: Scope) =>
      scope.by === "equipment"
        ? Effect.map(
          sql<{ id: number }>`SELECT id FROM equipments WHERE tenant_id = ${scope.tenantId} AND uuid = ${scope.equipmentUuid}`,
          ([equipment]) =>
            Option.map(Option.fromNullable(equipment), ({ id }) => ({
              filter: sql`a.equipment_id = ${id}
                ${scope.sensorType === undefined ? sql`` : sql`AND s.type = ${scope.sensorType}`}`,
              sensors: sql`AND s.equipment_id = ${id}`
            }))
        )
        : Effect.succeed(Option.some({
          filter: sql`a.sensor_id = ANY(ARRAY(SELECT s.id FROM sensors s JOIN equipments e ON e.id = s.equipment_id
            WHERE e.tenant_id = ${scope.tenantId} AND s.uuid = ${scope.sensorUuid}
            ${scope.equipmentUuid === undefined ? sql`` : sql`AND e.uuid = ${scope.equipmentUuid}`}))`,
          sensors: sql``
        }))

    /** `query` of the scope's filter; no rows when nothing is in scope. */
    const scoped = <A>(
      scope: Scope,
      query: (scope: { filter: Statement.Fragment; sensors: Statement.Fragment }) => Effect.Effect<ReadonlyArray<A>, SqlError>
    ) => Effect.flatMap(inScope(scope), Option.match({ onNone: () => Effect.succeed([]), onSome: query }))

    const limited = (limit: number | undefined) => (limit === undefined ? sql`` : sql`LIMIT ${limit}`)

    // Columns come in the order of the rows' schemas (Rows.ts), so that the answers send the rows as they are.
    const sensorColumns = sql`s.uuid AS sensor_uuid, s.name AS sensor_name, s.type AS sensor_type, s.unit AS sensor_unit`

    // Rows come by time, then sensor uuid; a sensor uuid may exist on several equipments, so the equipment breaks
    // the tie and every database answers in the same order.
    const raw = (scope: Scope, range: Range, limit?: number) =>
      rawRows(scoped(scope, ({ filter }) =>
        sql`SELECT ${sensorColumns},
          to_char(a.time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS time, a.value, a.status, a.metadata
        FROM telemetry_data a
        JOIN sensors s ON s.id = a.sensor_id
        WHERE ${filter} AND a.time >= ${range.start} AND a.time < ${range.end}
        ORDER BY a.time, s.uuid, s.equipment_id
        ${limited(limit)}`))

    const buckets = (resolution: Resolution, scope: Scope, range: Range, limit: number | undefined) => {
      const { active, table } = aggregates[resolution]
      return scoped(scope, ({ filter, sensors }) =>
        sql`SELECT ${sensorColumns}, to_char(a.bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS time,
          a.avg_value::float8 AS avg_value, a.max_value::float8 AS max_value, a.min_value::float8 AS min_value,
          a.sample_count::int AS sample_count, a.stddev_value::float8 AS stddev_value,
          a.median_value::float8 AS median_value, a.p95_value::float8 AS p95_value, a.p99_value::float8 AS p99_value,
          a.${sql(active)}::int AS ${sql(active)}
        FROM ${sql(table)} a
        JOIN sensors s ON s.id = a.sensor_id ${sensors}
        WHERE ${filter} AND a.bucket >= ${range.start} AND a.bucket < ${range.end}
        ORDER BY a.bucket, s.uuid, s.equipment_id
        ${limited(limit)}`)
    }

    const hourly = (scope: Scope, range: Range, limit?: number) => hourRows(buckets("hour", scope, range, limit))
    const daily = (scope: Scope, range: Range, limit?: number) => dayRows(buckets("day", scope, range, limit))

    /** Per sensor over the buckets in range; the mean is the exact one (sum of values / number of values). */
    const stats = (resolution: Resolution, scope: Scope, range: Range) =>
      statsRows(scoped(scope, ({ filter }) =>
        sql`SELECT ${sensorColumns},
          (sum(a.sum_value) / nullif(sum(a.value_count), 0))::float8 AS overall_avg,
          max(a.max_value)::float8 AS overall_max, min(a.min_value)::float8 AS overall_min,
          sum(a.sample_count)::float8 AS total_samples, count(*)::int AS active_periods
        FROM ${sql(aggregates[resolution].table)} a
        JOIN sensors s ON s.id = a.sensor_id
        WHERE ${filter} AND a.bucket >= ${range.start} AND a.bucket < ${range.end}
        GROUP BY s.id
        ORDER BY s.uuid`))

    return { raw, hourly, daily, stats } as const
  })
}) {}
