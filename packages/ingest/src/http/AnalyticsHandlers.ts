import { HttpApiBuilder } from "@effect/platform"
import type { SqlError } from "@effect/sql/SqlError"
import { Clock, Effect } from "effect"
import { Analytics, type Range, type Scope } from "../analytics/Analytics.js"
import { inFieldOrder } from "../analytics/fieldOrder.js"
import { DayMetrics, DayRow, HourMetrics, HourRow, RawReading, RawRow, SensorStats } from "../analytics/Rows.js"
import { TelemetryApi } from "./Api.js"
import { CurrentPrincipal } from "./Auth.js"
import { InvalidParameter } from "./errors.js"
import { jsonResponse } from "./jsonResponse.js"

const HOUR = 3_600_000
const DAY = 24 * HOUR

/** The stats periods: their length and the aggregate they read (contract §4: 24h from hourly, else daily). */
const statsPeriods = {
  "24h": { length: DAY, resolution: "hour", bucket: HOUR },
  "7d": { length: 7 * DAY, resolution: "day", bucket: DAY },
  "30d": { length: 30 * DAY, resolution: "day", bucket: DAY },
  "1y": { length: 365 * DAY, resolution: "day", bucket: DAY }
} as const

/** [start_date, end_date) with defaults (the last 7 days); start ≥ end is a bad request. */
const historyRange = (params: { readonly start_date?: Date | undefined; readonly end_date?: Date | undefined }) =>
  Effect.gen(function*() {
    const end = params.end_date ?? new Date(yield* Clock.currentTimeMillis)
    const start = params.start_date ?? new Date(end.getTime() - 7 * DAY)
    if (start.getTime() >= end.getTime()) {
      return yield* Effect.fail(new InvalidParameter({ message: "start_date must be before end_date", path: "start_date" }))
    }
    return { start, end } satisfies Range
  })

/**
 * The buckets that cover the last `length` milliseconds: from the start of the bucket that was current then,
 * up to now (buckets aligned on the epoch, i.e. UTC hours and days, as `time_bucket` makes them).
 */
const lastBuckets = (length: number, bucket: number) =>
  Effect.map(Clock.currentTimeMillis, (now): Range => ({
    start: new Date(Math.floor((now - length) / bucket) * bucket),
    end: new Date(now)
  }))

/** The tenant of the reader token: the only data a request reads. */
const currentTenant = Effect.map(CurrentPrincipal, (principal) => principal.tenantId)

const equipmentScope = (equipmentUuid: string, sensorType: string | undefined) =>
  Effect.map(currentTenant, (tenantId): Scope => ({ by: "equipment", tenantId, equipmentUuid, sensorType }))

type History =
  | { readonly period: "hour"; readonly data: ReadonlyArray<HourRow> }
  | { readonly period: "day"; readonly data: ReadonlyArray<DayRow> }
  | { readonly period: "raw"; readonly data: ReadonlyArray<RawRow> }

/** The rows of each period as each history envelope writes them (AnalyticsApi: EquipmentHistory, SensorHistory). */
const rowsOf = {
  equipment: { hour: inFieldOrder(HourRow), day: inFieldOrder(DayRow), raw: inFieldOrder(RawRow) },
  sensor: { hour: inFieldOrder(HourMetrics), day: inFieldOrder(DayMetrics), raw: inFieldOrder(RawReading) }
} as const
const statsRows = inFieldOrder(SensorStats)

/**
 * Answers are written as JSON once (`jsonResponse`): the objects below carry their keys in the order of the
 * endpoints' success schemas and hold JSON values, so this is the body the API's schema encoder would write, at a
 * fraction of the cost for thousands of rows (the analytics answers test holds it to the same bytes).
 */
export const layer = HttpApiBuilder.group(TelemetryApi, "analytics", (handlers) =>
  Effect.gen(function*() {
    const analytics = yield* Analytics

    /** Rows of a history query, tagged with their period so the response matches its envelope. */
    const history = (
      scope: Scope,
      params: { readonly period: History["period"]; readonly limit: number },
      range: Range
    ): Effect.Effect<History, SqlError> => {
      switch (params.period) {
        case "hour":
          return Effect.map(analytics.hourly(scope, range, params.limit), (data) => ({ period: "hour", data }))
        case "day":
          return Effect.map(analytics.daily(scope, range, params.limit), (data) => ({ period: "day", data }))
        case "raw":
          return Effect.map(analytics.raw(scope, range, params.limit), (data) => ({ period: "raw", data }))
      }
    }

    // A failing database is an internal error: the server logs it and answers 500 (Server.ts).
    return handlers
      .handle("equipmentHistory", ({ path, urlParams }) =>
        Effect.gen(function*() {
          const range = yield* historyRange(urlParams)
          const scope = yield* equipmentScope(path.equipmentUuid, urlParams.sensor_type)
          const { data, period } = yield* Effect.orDie(history(scope, urlParams, range))
          return jsonResponse({
            equipment_uuid: path.equipmentUuid,
            period,
            start_date: range.start,
            end_date: range.end,
            data: rowsOf.equipment[period](data)
          })
        }))
      .handle("sensorHistory", ({ path, urlParams }) =>
        Effect.gen(function*() {
          const range = yield* historyRange(urlParams)
          const scope: Scope = {
            by: "sensor",
            tenantId: yield* currentTenant,
            sensorUuid: path.sensorUuid,
            equipmentUuid: urlParams.equipment_uuid
          }
          const { data, period } = yield* Effect.orDie(history(scope, urlParams, range))
          return jsonResponse({
            sensor_uuid: path.sensorUuid,
            period,
            start_date: range.start,
            end_date: range.end,
            data: rowsOf.sensor[period](data)
          })
        }))
      .handle("equipmentStats", ({ path, urlParams }) =>
        Effect.gen(function*() {
          const period = statsPeriods[urlParams.period]
          const range = yield* lastBuckets(period.length, period.bucket)
          const scope = yield* equipmentScope(path.equipmentUuid, urlParams.sensor_type)
          const sensors = yield* Effect.orDie(analytics.stats(period.resolution, scope, range))
          return jsonResponse({
            equipment_uuid: path.equipmentUuid,
            period: urlParams.period,
            start_date: range.start,
            end_date: range.end,
            sensors: statsRows(sensors)
          })
        }))
      .handle("homeAssistant", ({ path, urlParams }) =>
        Effect.gen(function*() {
          const range = yield* lastBuckets(urlParams.hours * HOUR, HOUR)
          const scope = yield* equipmentScope(path.equipmentUuid, urlParams.sensor_type)
          const rows = yield* Effect.orDie(analytics.hourly(scope, range))
          return jsonResponse({
            equipment_uuid: path.equipmentUuid,
            period_hours: urlParams.hours,
            start_date: range.start,
            end_date: range.end,
            data: rows.map((r) => ({
              time: r.time,
              sensor_uuid: r.sensor_uuid,
              sensor_name: r.sensor_name,
              sensor_type: r.sensor_type,
              unit: r.sensor_unit,
              value: r.avg_value,
              max: r.max_value,
              min: r.min_value,
              samples: r.sample_count
            }))
          })
        }))
  }))
