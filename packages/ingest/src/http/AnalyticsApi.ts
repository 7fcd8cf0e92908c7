import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import {
  DayMetrics,
  DayRow,
  HomeAssistantRow,
  HourMetrics,
  HourRow,
  RawReading,
  RawRow,
  SensorStats,
  Timestamp
} from "../analytics/Rows.js"
import { ReaderAuth } from "./Auth.js"
import { InvalidParameter, Unavailable } from "./errors.js"
import { dateParam, Limit, Text, Uuid, wholeNumber, withDefault } from "./params.js"

// --- Analytics (contract §4) ---

const Period = Schema.Literal("hour", "day", "raw").annotations({
  description: "hourly or daily statistics, or the readings",
  message: () => ({ message: "must be hour, day or raw", override: true })
})
const HistoryParams = {
  period: withDefault(Period, "hour"),
  start_date: Schema.optional(dateParam("from (inclusive; default: 7 days before end_date)")),
  end_date: Schema.optional(dateParam("until (exclusive; default: now)")),
  limit: withDefault(Limit, 10_000)
}
const SensorType = Schema.optional(Text.annotations({ description: "only sensors of this type" }))

const range = { start_date: Timestamp, end_date: Timestamp }
/** One envelope per period, so each period's rows are documented. */
const histories = <
  Id extends Schema.Struct.Fields,
  Hour extends Schema.Schema.AnyNoContext,
  Day extends Schema.Schema.AnyNoContext,
  Raw extends Schema.Schema.AnyNoContext
>(id: Id, rows: { hour: Hour; day: Day; raw: Raw }) =>
  Schema.Union(
    Schema.Struct({ ...id, period: Schema.Literal("hour"), ...range, data: Schema.Array(rows.hour) }),
    Schema.Struct({ ...id, period: Schema.Literal("day"), ...range, data: Schema.Array(rows.day) }),
    Schema.Struct({ ...id, period: Schema.Literal("raw"), ...range, data: Schema.Array(rows.raw) })
  )

const EquipmentHistory = histories(
  { equipment_uuid: Schema.String },
  { hour: HourRow, day: DayRow, raw: RawRow }
)
const SensorHistory = histories(
  { sensor_uuid: Schema.String },
  { hour: HourMetrics, day: DayMetrics, raw: RawReading }
)

const StatsPeriod = Schema.Literal("24h", "7d", "30d", "1y").annotations({
  message: () => ({ message: "must be 24h, 7d, 30d or 1y", override: true })
})
const EquipmentStats = Schema.Struct({
  equipment_uuid: Schema.String,
  period: StatsPeriod,
  ...range,
  sensors: Schema.Array(SensorStats)
}).annotations({ identifier: "EquipmentStats" })

const HomeAssistant = Schema.Struct({
  equipment_uuid: Schema.String,
  period_hours: Schema.Number,
  ...range,
  data: Schema.Array(HomeAssistantRow)
}).annotations({ identifier: "HomeAssistant" })

export class AnalyticsGroup extends HttpApiGroup.make("analytics")
  .add(
    HttpApiEndpoint.get("equipmentHistory", "/equipment/:equipmentUuid/history")
      .setPath(Schema.Struct({ equipmentUuid: Uuid }))
      .setUrlParams(Schema.Struct({ ...HistoryParams, sensor_type: SensorType }))
      .addSuccess(EquipmentHistory)
      .annotate(OpenApi.Summary, "Hourly or daily statistics, or raw readings, of an equipment's sensors")
      .annotate(
        OpenApi.Description,
        "Buckets (hour, day) or readings (raw) whose time lies in [start_date, end_date), in time order."
      )
  )
  .add(
    HttpApiEndpoint.get("sensorHistory", "/sensor/:sensorUuid/history")
      .setPath(Schema.Struct({ sensorUuid: Uuid }))
      .setUrlParams(Schema.Struct({
        ...HistoryParams,
        equipment_uuid: Schema.optional(
          Uuid.annotations({ description: "only the sensor of this equipment (sensor uuids are per equipment)" })
        )
      }))
      .addSuccess(SensorHistory)
      .annotate(OpenApi.Summary, "Hourly or daily statistics, or raw readings, of one sensor")
  )
  .add(
    HttpApiEndpoint.get("equipmentStats", "/equipment/:equipmentUuid/stats")
      .setPath(Schema.Struct({ equipmentUuid: Uuid }))
      .setUrlParams(Schema.Struct({
        period: withDefault(StatsPeriod, "24h"),
        sensor_type: SensorType
      }))
      .addSuccess(EquipmentStats)
      .annotate(OpenApi.Summary, "Per-sensor totals over the last 24 hours (hourly buckets) or 7/30/365 days (daily)")
      .annotate(
        OpenApi.Description,
        "Covers whole buckets: from the start of the hour (24h) or UTC day that was current one period ago, up to now."
      )
  )
  .add(
    HttpApiEndpoint.get("homeAssistant", "/home-assistant/:equipmentUuid")
      .setPath(Schema.Struct({ equipmentUuid: Uuid }))
      .setUrlParams(Schema.Struct({
        hours: withDefault(
          wholeNumber(1, 168).annotations({
            description: "hours back from now, 1..168",
            message: () => ({ message: "must be a whole number of hours from 1 to 168", override: true })
          }),
          24
        ),
        sensor_type: SensorType
      }))
      .addSuccess(HomeAssistant)
      .annotate(OpenApi.Summary, "Hourly statistics of the last hours, for the Home Assistant integration")
  )
  .addError(InvalidParameter)
  // While the database refuses or drops connections (Server.ts answers it for every route).
  .addError(Unavailable)
  .middleware(ReaderAuth)
  .prefix("/api/v1/analytics")
{}
