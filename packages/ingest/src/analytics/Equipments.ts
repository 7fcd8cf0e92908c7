import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { textStorable } from "@telemetry/domain"
import { Clock, Data, Effect, Option, Schema } from "effect"
import { checkedRows } from "./checkedRows.js"
import { type Equipment, type EquipmentPage, LISTED_SENSORS, PAGE_SENSORS } from "./EquipmentRows.js"
import { TenantQueries } from "./TenantQueries.js"

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

/** An equipment without a reading for this long, and for 3 of its collection intervals, is stale. */
const STALE_AFTER = 10 * MINUTE
const STALE_INTERVALS = 3

export interface EquipmentFilter {
  /** Part of the name or uuid, in any case. */
  readonly name?: string | undefined
  readonly status?: string | undefined
}

export interface PageRequest {
  readonly limit: number
  readonly cursor?: string | undefined
}

export class InvalidCursor extends Data.TaggedError("InvalidCursor")<{ readonly cursor: string }> {
  override get message() {
    return "is not a cursor this API returned (next_cursor)"
  }
}

/** Where a page starts: after the equipment with this sort key and uuid (text the database can compare: no NUL). */
const CursorText = textStorable(Schema.String)
const Cursor = Schema.compose(Schema.StringFromBase64Url, Schema.parseJson(Schema.Tuple(CursorText, CursorText)))
const encodeCursor = Schema.encodeSync(Cursor)
const decodeCursor = (cursor: string) =>
  Schema.decodeUnknown(Cursor)(cursor).pipe(Effect.mapError(() => new InvalidCursor({ cursor })))

const EquipmentRow = Schema.Struct({
  id: Schema.Number,
  uuid: Schema.String,
  name: Schema.NullOr(Schema.String),
  location: Schema.NullOr(Schema.String),
  status: Schema.String,
  collection_interval: Schema.Number,
  sort_key: Schema.String
})
type EquipmentRow = typeof EquipmentRow.Type

/** An equipment of a page, with how many sensors it lists (at most LISTED_SENSORS). */
const PageRow = Schema.Struct({ ...EquipmentRow.fields, listed: Schema.Number })
type PageRow = typeof PageRow.Type

const SensorRow = Schema.Struct({
  equipment_id: Schema.Number,
  uuid: Schema.String,
  name: Schema.NullOr(Schema.String),
  type: Schema.String,
  unit: Schema.NullOr(Schema.String),
  status: Schema.NullOr(Schema.String),
  last_time: Schema.NullOr(Schema.String),
  last_value: Schema.NullOr(Schema.Number),
  last_status: Schema.NullOr(Schema.String),
  readings: Schema.Number,
  hours: Schema.NullOr(Schema.Array(Schema.Number)),
  averages: Schema.NullOr(Schema.Array(Schema.NullOr(Schema.Number)))
})
type SensorRow = typeof SensorRow.Type

const SensorCount = Schema.Struct({ equipment_id: Schema.Number, sensors: Schema.Number })

const FacetRow = Schema.Struct({ status: Schema.String, equipments: Schema.Number, matching: Schema.Number })

/**
 * The equipments of a tenant with their sensors' newest readings and their last day, for the console. Every query
 * is index-led: the page from the tenant's equipments, each sensor's newest reading from the unique
 * (sensor_id, time DESC) index (one entry each), the day's counts and hourly means from `telemetry_hourly` by
 * (equipment_id, bucket) for the page's equipments only.
 */
export class Equipments extends Effect.Service<Equipments>()("@telemetry/Equipments", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { inTurn } = yield* TenantQueries

    const rows = checkedRows

    // Names sort ignoring ASCII case, then by uuid, in byte order on every database (their collations differ):
    // the order of equipments_tenant_name_idx (migration 0009), which the page reads from its cursor on.
    const sortKey = sql`lower(coalesce(e.name, e.uuid)) COLLATE "C"`
    // Part of the name or uuid in any case, against their lowered copies (migration 0011).
    const nameMatches = (part: string | undefined) =>
      part === undefined
        ? sql`true`
        : sql`(strpos(e.name_folded, lower(${part})) > 0 OR strpos(e.uuid_folded, lower(${part})) > 0)`

    const equipmentColumns = sql`e.id, e.uuid, e.name, e.location, e.status, e.collection_interval, ${sortKey} AS sort_key`

    const page = (tenantId: string, filter: EquipmentFilter, limit: number, after: readonly [string, string] | undefined) =>
      // Sensors are counted for the page's equipments only, once it is cut (whatever plan finds them).
      rows(PageRow)(sql`SELECT p.*, listed.sensors AS listed
        FROM (
          SELECT ${equipmentColumns}
          FROM equipments e
          WHERE e.tenant_id = ${tenantId} AND ${nameMatches(filter.name)}
            ${filter.status === undefined ? sql`` : sql`AND e.status = ${filter.status}`}
            ${after === undefined ? sql`` : sql`AND (${sortKey}, e.uuid COLLATE "C") > (${after[0]}, ${after[1]})`}
          ORDER BY sort_key, e.uuid COLLATE "C"
          LIMIT ${limit}
        ) p
        CROSS JOIN LATERAL (
          SELECT count(*)::int AS sensors FROM (SELECT FROM sensors s WHERE s.equipment_id = p.id LIMIT ${LISTED_SENSORS}) s
        ) listed
        ORDER BY p.sort_key COLLATE "C", p.uuid COLLATE "C"`)

    /** Per status, the tenant's equipments and those whose name matches: the filter's choices and the total. */
    const facets = (tenantId: string, filter: EquipmentFilter) =>
      rows(FacetRow)(sql`SELECT e.status, count(*)::int AS equipments, count(*) FILTER (WHERE ${nameMatches(filter.name)})::int AS matching
        FROM equipments e
        WHERE e.tenant_id = ${tenantId}
        GROUP BY e.status
        ORDER BY e.status COLLATE "C"`)

    const sensorsOf = (ids: ReadonlyArray<number>, since: Date) =>
      rows(SensorRow)(sql`WITH listed AS (
          SELECT s.* FROM unnest(${ids}::int[]) AS page(equipment_id)
          CROSS JOIN LATERAL (
            SELECT s.id, s.equipment_id, s.uuid, s.name, s.type, s.unit, s.status FROM sensors s
            WHERE s.equipment_id = page.equipment_id
            ORDER BY s.uuid COLLATE "C"
            LIMIT ${LISTED_SENSORS}
          ) s
        )
        SELECT s.equipment_id, s.uuid, s.name, s.type, s.unit, s.status,
          to_char(last.time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS last_time,
          last.value AS last_value, last.status AS last_status,
          coalesce(day.readings, 0)::float8 AS readings, day.hours, day.averages
        FROM listed s
        LEFT JOIN LATERAL (
          SELECT d.time, d.value, d.status FROM telemetry_data d WHERE d.sensor_id = s.id ORDER BY d.time DESC LIMIT 1
        ) last ON true
        LEFT JOIN (
          -- The day's hours and means as JSON arrays, which the driver parses natively where it would read a
          -- float8[] character by character. Both arrays take a sensor's buckets in the same order, which is all
          -- that pairs an hour with its mean: ordered by bucket, PostgreSQL 15 sorted each sensor's buckets apart,
          -- the most costly step of the page. TimescaleDB's hourly aggregate gives NaN, not null, for an hour of
          -- status-only readings: JSON has no NaN, and neither hour has a value to chart.
          SELECT h.sensor_id, sum(h.sample_count) AS readings,
            array_to_json(array_agg(floor(extract(epoch FROM h.bucket - ${since}::timestamptz) / 3600)::int)) AS hours,
            array_to_json(array_agg(nullif(h.avg_value::float8, 'NaN'))) AS averages
          FROM telemetry_hourly h
          WHERE h.equipment_id = ANY(${ids}::int[]) AND h.bucket >= ${since}
          GROUP BY h.sensor_id
        ) day ON day.sensor_id = s.id
        ORDER BY s.equipment_id, s.uuid COLLATE "C"`)

    /** How many sensors each equipment of `ids` has. */
    const sensorCounts = (ids: ReadonlyArray<number>) =>
      rows(SensorCount)(sql`SELECT equipment_id, count(*)::int AS sensors FROM sensors
        WHERE equipment_id = ANY(${ids}::int[]) GROUP BY equipment_id`)

    /** The equipments of `rows` with their sensors, as of `now`. */
    const described = (equipments: ReadonlyArray<EquipmentRow>) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        // The hourly buckets of the last 24 hours, as stats?period=24h takes them.
        const since = Math.floor((now - DAY) / HOUR) * HOUR
        const ids = equipments.map((e) => e.id)
        const [sensors, counts] = equipments.length === 0
          ? [[], []]
          : yield* Effect.all([sensorsOf(ids, new Date(since)), sensorCounts(ids)], { concurrency: 2 })
        const hours = Math.floor((now - since) / HOUR) + 1
        const countOf = new Map(counts.map((c) => [c.equipment_id, c.sensors]))
        const sensorsOfEquipment = new Map<number, Array<SensorRow>>()
        for (const s of sensors) {
          const listed = sensorsOfEquipment.get(s.equipment_id)
          if (listed === undefined) sensorsOfEquipment.set(s.equipment_id, [s])
          else listed.push(s)
        }
        return equipments.map((e) =>
          toEquipment(e, sensorsOfEquipment.get(e.id) ?? [], countOf.get(e.id) ?? 0, { now, since, hours })
        )
      })

    const list = (
      tenantId: string,
      filter: EquipmentFilter,
      request: PageRequest
    ): Effect.Effect<EquipmentPage, SqlError | InvalidCursor> =>
      inTurn(tenantId)(Effect.gen(function*() {
        const after = request.cursor === undefined ? undefined : yield* decodeCursor(request.cursor)
        // The counts do not wait for the page and its sensors, nor they for the counts.
        const [[found, listed, data], counts] = yield* Effect.all([
          Effect.flatMap(page(tenantId, filter, request.limit + 1, after), (found) => {
            const listed = withinSensorBudget(found.slice(0, request.limit))
            return Effect.map(described(listed), (data) => [found, listed, data] as const)
          }),
          facets(tenantId, filter)
        ], { concurrency: 2 })
        const last = listed[listed.length - 1]
        return {
          data,
          total: counts.reduce((sum, c) => sum + (filter.status === undefined || c.status === filter.status ? c.matching : 0), 0),
          next_cursor: found.length > listed.length && last ? encodeCursor([last.sort_key, last.uuid]) : null,
          statuses: counts.map(({ equipments, status }) => ({ status, equipments }))
        }
      }))

    const get = (tenantId: string, uuid: string): Effect.Effect<Option.Option<Equipment>, SqlError> =>
      rows(EquipmentRow)(sql`SELECT ${equipmentColumns} FROM equipments e WHERE e.tenant_id = ${tenantId} AND e.uuid = ${uuid}`).pipe(
        Effect.flatMap(described),
        Effect.map((found) => Option.fromNullable(found[0])),
        inTurn(tenantId)
      )

    return { list, get } as const
  }),
  dependencies: [TenantQueries.Default]
}) {}

/** The first equipments of `found` whose listed sensors, together, stay within PAGE_SENSORS; the first in any case. */
const withinSensorBudget = (found: ReadonlyArray<PageRow>) => {
  let sensors = 0
  const over = found.findIndex((e, i) => (sensors += e.listed) > PAGE_SENSORS && i > 0)
  return over === -1 ? found : found.slice(0, over)
}

const toEquipment = (
  e: EquipmentRow,
  sensors: ReadonlyArray<SensorRow>,
  sensorCount: number,
  window: { readonly now: number; readonly since: number; readonly hours: number }
): Equipment => {
  const lastReadingAt = sensors.reduce<string | null>(
    (newest, s) => (s.last_time !== null && (newest === null || s.last_time > newest) ? s.last_time : newest),
    null
  )
  const staleAfter = Math.max(STALE_AFTER, STALE_INTERVALS * e.collection_interval * 1000)
  const charted = sensors.find((s) => s.averages?.some((mean) => mean !== null))
  return {
    uuid: e.uuid,
    name: e.name,
    location: e.location,
    status: e.status,
    collection_interval: e.collection_interval,
    last_reading_at: lastReadingAt,
    stale: lastReadingAt === null || window.now - Date.parse(lastReadingAt) > staleAfter,
    readings_24h: sensors.reduce((sum, s) => sum + s.readings, 0),
    sparkline: charted === undefined ? null : {
      sensor_uuid: charted.uuid,
      start: new Date(window.since),
      hourly_avg: hourly(charted, window.hours)
    },
    sensor_count: sensorCount,
    sensors: sensors.map((s) => ({
      uuid: s.uuid,
      name: s.name,
      type: s.type,
      unit: s.unit,
      status: s.status,
      last_reading: s.last_time === null ? null : { time: s.last_time, value: s.last_value, status: s.last_status },
      readings_24h: s.readings
    }))
  }
}

/** One mean per hour of the window, null where the hour has none. */
const hourly = (sensor: SensorRow, hours: number) => {
  const slots: Array<number | null> = Array.from({ length: hours }, () => null)
  sensor.hours?.forEach((hour, i) => {
    const mean = sensor.averages?.[i] ?? null
    if (hour >= 0 && hour < hours && mean !== null) slots[hour] = mean
  })
  return slots
}
