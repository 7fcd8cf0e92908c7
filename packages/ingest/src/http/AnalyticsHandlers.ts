import { HttpApiBuilder } from "@effect/platform"
import type { SqlError } from "@effect/sql/SqlError"
import { Clock, Effect } from "effect"
import { Analytics, type Range, type Scope } from "../analytics/Analytics.js"
import { Instant } from "../analytics/Instant.js"
import type { JsonRows } from "../analytics/JsonRows.js"
import { DayMetrics, DayRow, HomeAssistantRow, HourMetrics, HourRow, RawReading, RawRow } from "../analytics/Rows.js"
import { TelemetryApi } from "./Api.js"
import { CurrentPrincipal } from "./Auth.js"
import { InvalidParameter } from "./errors.js"
import { jsonRowsResponse } from "./jsonResponse.js"

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
const historyRange = (params: { readonly start_date?: Instant | undefined; readonly end_date?: Instant | undefined }) =>
  Effect.gen(function*() {
    const end = params.end_date ?? Instant.fromMillis(yield* Clock.currentTimeMillis)
    const start = params.start_date ?? new Instant({ millis: end.millis - 7 * DAY, micros: end.micros })
    if (start.epochMicros >= end.epochMicros) {
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
    start: Instant.fromMillis(Math.floor((now - length) / bucket) * bucket),
    end: Instant.fromMillis(now)
  }))

/** The tenant of the reader token: the only data a request reads. */
const currentTenant = Effect.map(CurrentPrincipal, (principal) => principal.tenantId)

const equipmentScope = (equipmentUuid: string, sensorType: string | undefined) =>
  Effect.map(currentTenant, (tenantId): Scope => ({ by: "equipment", tenantId, equipmentUuid, sensorType }))

/** The row schema of each period as each history envelope writes it (AnalyticsApi: EquipmentHistory, SensorHistory). */
const rowsOf = {
  equipment: { hour: HourRow, day: DayRow, raw: RawRow },
  sensor: { hour: HourMetrics, day: DayMetrics, raw: RawReading }
} as const

/**
 * Answers are written as JSON once: the envelopes carry their keys in the order of the endpoints' success
 * schemas, and the rows come as JSON text in their schemas' fields (Analytics, JsonRows), so this is the body the
 * API's schema encoder would write, at a fraction of the cost for thousands of rows (the analytics answers test
 * holds it to the same bytes).
 */
export const layer = HttpApiBuilder.group(TelemetryApi, "analytics", (handlers) =>
  Effect.gen(function*() {
    const analytics = yield* Analytics

    /** A history's rows, as `of` writes them. */
    const history = (
      scope: Scope,
      params: { readonly period: "hour" | "day" | "raw"; readonly limit: number },
      range: Range,
      of: keyof typeof rowsOf
    ): Effect.Effect<JsonRows<SqlError>, SqlError> => {
      const row = rowsOf[of][params.period]
      return params.period === "raw"
        ? analytics.raw(scope, range, row, params.limit)
        : analytics.buckets(params.period, scope, range, row, params.limit)
    }

    // A failing database is a defect here: the server logs it and answers 503 database_unavailable (Server.ts).
    return handlers
      .handle("equipmentHistory", ({ path, urlParams }) =>
        Effect.gen(function*() {
          const range = yield* historyRange(urlParams)
          const scope = yield* equipmentScope(path.equipmentUuid, urlParams.sensor_type)
          const rows = yield* Effect.orDie(history(scope, urlParams, range, "equipment"))
          return yield* jsonRowsResponse({
            equipment_uuid: path.equipmentUuid,
            period: urlParams.period,
            start_date: range.start,
            end_date: range.end
          }, "data", rows)
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
          const rows = yield* Effect.orDie(history(scope, urlParams, range, "sensor"))
          return yield* jsonRowsResponse({
            sensor_uuid: path.sensorUuid,
            period: urlParams.period,
            start_date: range.start,
            end_date: range.end
          }, "data", rows)
        }))
      .handle("equipmentStats", ({ path, urlParams }) =>
        Effect.gen(function*() {
          const period = statsPeriods[urlParams.period]
          const range = yield* lastBuckets(period.length, period.bucket)
          const scope = yield* equipmentScope(path.equipmentUuid, urlParams.sensor_type)
          const sensors = yield* Effect.orDie(analytics.stats(period.resolution, scope, range))
          return yield* jsonRowsResponse({
            equipment_uuid: path.equipmentUuid,
            period: urlParams.period,
            start_date: range.start,
            end_date: range.end
          }, "sensors", sensors)
        }))
      .handle("homeAssistant", ({ path, urlParams }) =>
        Effect.gen(function*() {
          const range = yield* lastBuckets(urlParams.hours * HOUR, HOUR)
          const scope = yield* equipmentScope(path.equipmentUuid, urlParams.sensor_type)
          const rows = yield* Effect.orDie(analytics.buckets("hour", scope, range, HomeAssistantRow))
          return yield* jsonRowsResponse({
            equipment_uuid: path.equipmentUuid,
            period_hours: urlParams.hours,
            start_date: range.start,
            end_date: range.end
          }, "data", rows)
        }))
  }))
