import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import { integerSetting } from "@telemetry/domain"
import { Chunk, Effect, Option, type Schema, Stream } from "effect"
import { type Field, type JsonRows, rowsWriter, type Sensor } from "./JsonRows.js"
import type { Instant } from "./Instant.js"
import { SensorStats } from "./Rows.js"
import { TenantQueries } from "./TenantQueries.js"

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

/** The scope of a query: a filter of its rows (alias `a`), and of the sensors joined to them (alias `s`). */
interface Target {
  readonly filter: Statement.Fragment
  readonly sensors: Statement.Fragment
}

/** Readings, or buckets, whose time lies in [start, end). */
export interface Range {
  readonly start: Instant
  readonly end: Instant
}

export type Resolution = "hour" | "day"

/** Hourly statistics come from `telemetry_hourly`, daily ones from `telemetry_daily` (contract §3). */
const aggregates = {
  hour: { table: "telemetry_hourly", active: "active_minutes" },
  day: { table: "telemetry_daily", active: "active_hours" }
} as const

/** The rows of an answer: the fields of a row schema (Rows.ts), written in its order. */
export interface RowSchema {
  readonly fields: Schema.Struct.Fields
}

/** How a query reads a column: an expression of the row, written as JSON of its kind. */
interface Column {
  readonly kind: "number" | "string" | "json"
  readonly sql: Statement.Fragment
}

/** The fields of a row that are its sensor's own. */
const sensorFields: Record<string, keyof Sensor> = {
  sensor_uuid: "uuid",
  sensor_name: "name",
  sensor_type: "type",
  sensor_unit: "unit",
  unit: "unit"
}

/** Fields of the Home Assistant rows that are columns of the hourly buckets under another name. */
const aliases: Record<string, string> = { value: "avg_value", max: "max_value", min: "min_value", samples: "sample_count" }

/**
 * Rows of a history read from the database at a time. A larger answer (up to 100 000 rows, or a Home Assistant
 * answer of every sensor of an equipment for 168 hours) is read and sent page by page, as its client takes it: one
 * answer in memory at once would be ~45 MB for 100 000 raw readings, and a few readers asking together, or reading
 * slowly, could exhaust the process. On the embedded database the pages also let other requests in between.
 */
const PageRows = integerSetting("ANALYTICS_PAGE_ROWS", 5_000, { min: 1 })

/** A sensor as the answers name it, and the equipment it belongs to (the last key of a history's order). */
type SensorRow = Sensor & { readonly id: number; readonly equipment_id: number }

/** Where a history's next page starts: after the row of this time (as its query writes it) and sensor. */
interface Key {
  readonly time: string
  readonly sensor: SensorRow
}

/**
 * The analytics queries (contract §4), always scoped by tenant. Each answers its rows, to be written as JSON into
 * an envelope in the fields of the row schema it is asked for (JsonRows): numbers as the database writes them (cast
 * to text, so that node-postgres leaves them as they are), each row naming its sensor by id, whose own fields are
 * looked up once.
 */
export class Analytics extends Effect.Service<Analytics>()("@telemetry/Analytics", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { inTurn } = yield* TenantQueries
    const pageRows = yield* PageRows

    // The scope as a filter on the readings or buckets (alias `a`). An equipment by its id, which the (equipment_id,
    // time|bucket) indexes serve in time order, looked up first and given as a value, whose rows the planner can count:
    // behind a subquery it guessed an equipment's 56 000 readings of a month at 400, and sorted them all rather than
    // read them in time order up to the limit. A sensor uuid, for buckets and stats, by the ids of the sensors that
    // have it (computed once, an InitPlan), for the (sensor_id, …) indexes: given as values, they changed the order in
    // which the aggregates of raw rows add their values, and so their last digits. Raw readings are not added up, so
    // there (`sensorIds: "values"`) the ids are looked up first and given as values: one id lets the planner read its
    // (sensor_id, time) index in time order up to the limit, where an id it could not see made it read every sensor's
    // readings of the period by time (10 000 of a sensor's 100 000 readings of a month: 80 → 19 ms). `sensors` narrows
    // the sensors joined to the equipment's, where the count of its buckets made a hash of all sensors look cheaper
    // (the histories of buckets; not the raw readings, whose plan it turns to a sensor at a time, nor the stats, whose
    // sums it reorders). None: nothing in scope.
    const inScope = (scope: Scope, sensorIds: "subquery" | "values"): Effect.Effect<Option.Option<Target>, SqlError> => {
      if (scope.by === "equipment") {
        return Effect.map(
          sql<{ id: number }>`SELECT id FROM equipments WHERE tenant_id = ${scope.tenantId} AND uuid = ${scope.equipmentUuid}`,
          ([equipment]) =>
            Option.map(Option.fromNullable(equipment), ({ id }) => ({
              filter: sql`a.equipment_id = ${id}
                ${scope.sensorType === undefined ? sql`` : sql`AND s.type = ${scope.sensorType}`}`,
              sensors: sql`AND s.equipment_id = ${id}`
            }))
        )
      }
      const ids = sql`SELECT s.id FROM sensors s JOIN equipments e ON e.id = s.equipment_id
        WHERE e.tenant_id = ${scope.tenantId} AND s.uuid = ${scope.sensorUuid}
        ${scope.equipmentUuid === undefined ? sql`` : sql`AND e.uuid = ${scope.equipmentUuid}`}`
      if (sensorIds === "subquery") {
        return Effect.succeed(Option.some({ filter: sql`a.sensor_id = ANY(ARRAY(${ids}))`, sensors: sql`` }))
      }
      // One array for many ids (a uuid on every equipment of a fleet); one id as `=`, which the planner reads
      // through the index where `= ANY('{id}')` it did not.
      return Effect.map(ids.values, (found) =>
        found.length === 0 ? Option.none() : Option.some({
          filter: found.length === 1
            ? sql`a.sensor_id = ${found[0]![0] as number}`
            : sql`a.sensor_id = ANY(${found.map(([id]) => id as number)}::int[])`,
          sensors: sql``
        }))
    }

    const number = (expression: Statement.Fragment): Column => ({ kind: "number", sql: expression })
    const string = (expression: Statement.Fragment): Column => ({ kind: "string", sql: expression })

    /**
     * A query's columns, all selected whatever the answer writes (the same query text, the same plan: another list
     * of aggregate columns changed the order in which TimescaleDB summed a real-time bucket's values), after the
     * sensor's id; and the writer of its rows for each row schema, made once.
     */
    const queryColumns = (columns: Record<string, Column>) => {
      const names = Object.keys(columns)
      const writers = new Map<RowSchema, ReturnType<typeof rowsWriter>>()
      const writerFor = (row: RowSchema) => {
        let writer = writers.get(row)
        if (writer === undefined) {
          const fields = Object.keys(row.fields).map((key): Field => {
            const attribute = sensorFields[key]
            if (attribute !== undefined) return { key, kind: "sensor", attribute }
            const name = columns[key] === undefined ? aliases[key] : key
            const index = name === undefined ? -1 : names.indexOf(name)
            if (index < 0) throw new Error(`no column for the field ${key} among ${names.join(", ")}`)
            return { key, kind: columns[name!]!.kind, index: index + 1 }
          })
          writer = rowsWriter(fields)
          writers.set(row, writer)
        }
        return writer
      }
      const select = sql.join(", ", false)(
        names.map((name) => {
          const column = columns[name]!
          return column.kind === "number" ? sql`(${column.sql})::text` : column.sql
        })
      )
      // Of a history's row: its time, as the query writes it.
      return { select, writerFor, timeIndex: names.indexOf("time") + 1 }
    }

    const sensorsOf = (ids: Iterable<unknown>) =>
      // One array, however many: a parameter each would be past what a statement may bind for a large equipment.
      sql<SensorRow>`SELECT id, uuid, name, type, unit, equipment_id FROM sensors WHERE id = ANY(${[...ids] as Array<number>}::int[])`

    /** `row`'s fields of the rows of `query` (no rows when nothing is in scope), their sensors looked up. */
    const scoped = (
      scope: Scope,
      columns: ReturnType<typeof queryColumns>,
      row: RowSchema,
      query: (target: Target) => Statement.Statement<unknown>
    ): Effect.Effect<JsonRows<SqlError>, SqlError> => {
      const { withSensors, write } = columns.writerFor(row)
      const whole = (rows: ReadonlyArray<ReadonlyArray<unknown>>, sensors?: ReadonlyMap<unknown, Sensor>): JsonRows<SqlError> =>
      (head, tail) => ({ first: write(rows, sensors)(head, tail), rest: Option.none() })
      return inTurn(scope.tenantId)(Effect.flatMap(
        inScope(scope, "subquery"),
        Option.match({
          onNone: () => Effect.succeed(whole([])),
          onSome: (target) =>
            Effect.flatMap(query(target).values, (rows) =>
              !withSensors || rows.length === 0
                ? Effect.succeed(whole(rows))
                : Effect.map(sensorsOf(new Set(rows.map((row) => row[0]!))), (found) =>
                  whole(rows, new Map(found.map((sensor) => [sensor.id, sensor])))))
        })
      ))
    }

    /**
     * A history: `row`'s fields of the rows of `query`, at most `limit`, read `ANALYTICS_PAGE_ROWS` at a time in the
     * order of time (`order`: the readings' or the buckets'), sensor uuid and equipment — one row per sensor and
     * time, so a page starts after the last row of the one before. The first page is read before answering (a
     * database that fails then gets its 503); the others as the client takes the answer, each in the tenant's turn.
     */
    const paged = (
      scope: Scope,
      columns: ReturnType<typeof queryColumns>,
      row: RowSchema,
      sensorIds: "subquery" | "values",
      order: "time" | "bucket",
      limit: number | undefined,
      query: (target: Target, page: { readonly after: Statement.Fragment; readonly rows: number }) => Statement.Statement<unknown>
    ): Effect.Effect<JsonRows<SqlError>, SqlError> =>
      Effect.gen(function*() {
        const { answer, withSensors } = columns.writerFor(row)
        const target = yield* inTurn(scope.tenantId)(inScope(scope, sensorIds))
        if (Option.isNone(target)) {
          return (head, tail) => ({ first: answer(head)([], new Map(), tail), rest: Option.none() })
        }
        const sensors = new Map<unknown, SensorRow>()
        const after = (key: Key | undefined) =>
          key === undefined ? sql`` : sql`AND a.${sql(order)} >= ${key.time}::timestamptz
            AND (a.${sql(order)}, s.uuid, s.equipment_id) > (${key.time}::timestamptz, ${key.sensor.uuid}, ${key.sensor.equipment_id})`
        // The rows after `key`, `read` rows into the answer, their sensors looked up, and the key of the next page.
        const page = (key: Key | undefined, read: number) =>
          inTurn(scope.tenantId)(Effect.gen(function*() {
            const size = limit === undefined ? pageRows : Math.min(pageRows, limit - read)
            const rows = yield* query(target.value, { after: after(key), rows: size }).values
            const last = rows.length === size && (limit === undefined || read + size < limit) ? rows[size - 1] : undefined
            const missing = new Set<unknown>()
            if (withSensors) for (const r of rows) if (!sensors.has(r[0])) missing.add(r[0])
            if (last !== undefined && !sensors.has(last[0])) missing.add(last[0])
            if (missing.size > 0) for (const sensor of yield* sensorsOf(missing)) sensors.set(sensor.id, sensor)
            const next: Key | undefined = last && { time: last[columns.timeIndex] as string, sensor: sensors.get(last[0])! }
            return { rows, next, read: read + rows.length }
          }))
        const first = yield* page(undefined, 0)
        return (head, tail) => {
          const write = answer(head)
          const writePage = (p: typeof first) => write(p.rows, sensors, p.next === undefined ? tail : undefined)
          return {
            first: writePage(first),
            rest: first.next === undefined ? Option.none() : Option.some(Stream.paginateChunkEffect(
              first,
              (previous) =>
                Effect.map(page(previous.next, previous.read), (p) =>
                  [Chunk.unsafeFromArray(writePage(p) as Array<Uint8Array>), p.next === undefined ? Option.none() : Option.some(p)] as const)
            ))
          }
        }
      })

    // Rows come by time, then sensor uuid; a sensor uuid may exist on several equipments, so the equipment breaks
    // the tie and every database answers in the same order.
    const rawColumns = queryColumns({
      time: string(sql`to_char(a.time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`),
      value: number(sql`a.value`),
      status: string(sql`a.status`),
      metadata: { kind: "json", sql: sql`a.metadata` }
    })
    const raw = (scope: Scope, range: Range, row: RowSchema, limit: number) =>
      paged(scope, rawColumns, row, "values", "time", limit, ({ filter }, page) =>
        sql`SELECT a.sensor_id, ${rawColumns.select}
        FROM telemetry_data a
        JOIN sensors s ON s.id = a.sensor_id
        WHERE ${filter} AND a.time >= ${range.start.toISOString()} AND a.time < ${range.end.toISOString()} ${page.after}
        ORDER BY a.time, s.uuid, s.equipment_id
        LIMIT ${page.rows}`)

    // Numbers are cast to float8 or int before text: a numeric's text would keep its trailing zeros.
    const bucketColumns = (resolution: Resolution) => {
      const active = aggregates[resolution].active
      return queryColumns({
        time: string(sql`to_char(a.bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`),
        avg_value: number(sql`a.avg_value::float8`),
        max_value: number(sql`a.max_value::float8`),
        min_value: number(sql`a.min_value::float8`),
        sample_count: number(sql`a.sample_count::int`),
        stddev_value: number(sql`a.stddev_value::float8`),
        median_value: number(sql`a.median_value::float8`),
        p95_value: number(sql`a.p95_value::float8`),
        p99_value: number(sql`a.p99_value::float8`),
        [active]: number(sql`a.${sql(active)}::int`)
      })
    }
    const bucketsOf = { hour: bucketColumns("hour"), day: bucketColumns("day") }
    /** Hourly or daily buckets in range. */
    const buckets = (resolution: Resolution, scope: Scope, range: Range, row: RowSchema, limit?: number) =>
      paged(scope, bucketsOf[resolution], row, "subquery", "bucket", limit, ({ filter, sensors }, page) =>
        sql`SELECT a.sensor_id, ${bucketsOf[resolution].select}
        FROM ${sql(aggregates[resolution].table)} a
        JOIN sensors s ON s.id = a.sensor_id ${sensors}
        WHERE ${filter} AND a.bucket >= ${range.start.toISOString()} AND a.bucket < ${range.end.toISOString()} ${page.after}
        ORDER BY a.bucket, s.uuid, s.equipment_id
        LIMIT ${page.rows}`)

    const statsColumns = queryColumns({
      overall_avg: number(sql`(sum(a.sum_value) / nullif(sum(a.value_count), 0))::float8`),
      overall_max: number(sql`max(a.max_value)::float8`),
      overall_min: number(sql`min(a.min_value)::float8`),
      total_samples: number(sql`sum(a.sample_count)::float8`),
      active_periods: number(sql`count(*)::int`)
    })
    /** Per sensor over the buckets in range; the mean is the exact one (sum of values / number of values). */
    const stats = (resolution: Resolution, scope: Scope, range: Range) =>
      scoped(scope, statsColumns, SensorStats, ({ filter }) =>
        sql`SELECT s.id, ${statsColumns.select}
        FROM ${sql(aggregates[resolution].table)} a
        JOIN sensors s ON s.id = a.sensor_id
        WHERE ${filter} AND a.bucket >= ${range.start.toISOString()} AND a.bucket < ${range.end.toISOString()}
        GROUP BY s.id
        ORDER BY s.uuid`)

    return { raw, buckets, stats } as const
  }),
  dependencies: [TenantQueries.Default]
}) {}
