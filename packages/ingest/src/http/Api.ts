import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { EquipmentItem } from "@telemetry/domain"
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
import { DeviceAuth, ReaderAuth } from "./Auth.js"
import {
  InProgress,
  InternalError,
  InvalidBody,
  KeyReused,
  RateLimited,
  InvalidParameter,
  TooLarge,
  Unavailable,
  UnsupportedMediaType
} from "./errors.js"
import { allowUnknownFields, withoutDecodeError } from "./docs.js"
import { dateParam, Limit, withDefault } from "./params.js"

// The HTTP API in one declaration: routes, parameter validation, response encoding and the OpenAPI document
// (served at /api/v1/openapi.json and as Swagger UI at /api/v1/docs) all come from it.

const Count = Schema.NonNegativeInt

// --- Ingest (contract §1) ---

const Accepted = Schema.Struct({
  status: Schema.Literal("accepted"),
  received: Count.annotations({ description: "equipment items" }),
  message: Schema.String,
  claim_check: Schema.String.annotations({ description: "object key of the stored payload" }),
  claim_id: Schema.UUID,
  readings: Count
}).annotations({ identifier: "Accepted" })

const BulkHeaders = Schema.Struct({
  // Strings, not literals: the handler answers a bad encoding with 415, which a decode failure here would preempt.
  "content-encoding": Schema.optional(Schema.String).annotations({
    description: "gzip (or x-gzip, identity); gzip bodies are stored as sent"
  }),
  "x-request-id": Schema.optional(Schema.String).annotations({ description: "echoed; generated when absent" }),
  "idempotency-key": Schema.optional(Schema.String).annotations({
    description: "a retry with the same key (and body) gets the first claim back, with `Idempotent-Replayed: true`; " +
      "without a key, the same body from the same device within IDEMPOTENCY_BODY_WINDOW counts as a retry"
  }),
  "x-device-id": Schema.optional(Schema.String).annotations({
    description: "device identity: the device token's `sub`, which it must equal when sent"
  })
})

// Documented, not decoded by the framework: the bulk handler streams the body through its own decoder.
const bulk = <const Name extends string>(name: Name, path: `/${string}`, summary: string) =>
  HttpApiEndpoint.post(name, path)
    .setPayload(Schema.Array(EquipmentItem).annotations({ description: "equipment items, 1 to MAX_ITEMS" }))
    .setHeaders(BulkHeaders)
    .addSuccess(Accepted, { status: 202 })
    .addError(InvalidBody)
    .addError(TooLarge)
    .addError(UnsupportedMediaType)
    .addError(RateLimited)
    .addError(InProgress)
    .addError(KeyReused)
    .addError(Unavailable)
    .annotate(OpenApi.Summary, summary)
    .annotate(OpenApi.Transform, allowUnknownFields)

class IngestGroup extends HttpApiGroup.make("ingest")
  .add(bulk("bulk", "/api/v1/telemetry/bulk", "Accept a batch of readings (plain or gzip JSON)"))
  .add(bulk("bulkAlias", "/api/v1/telemetria/bulk", "The original Portuguese path of bulk"))
  .middleware(DeviceAuth)
{}

// --- Analytics (contract §4) ---

const Period = Schema.Literal("hour", "day", "raw").annotations({
  description: "hourly or daily statistics, or the readings",
  message: () => "must be hour, day or raw"
})
const HistoryParams = {
  period: withDefault(Period, "hour"),
  start_date: Schema.optional(dateParam("from (inclusive; default: 7 days before end_date)")),
  end_date: Schema.optional(dateParam("until (exclusive; default: now)")),
  limit: withDefault(Limit, 10_000)
}
const SensorType = Schema.optional(Schema.String.annotations({ description: "only sensors of this type" }))

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
  message: () => "must be 24h, 7d, 30d or 1y"
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

class AnalyticsGroup extends HttpApiGroup.make("analytics")
  .add(
    HttpApiEndpoint.get("equipmentHistory", "/equipment/:equipmentUuid/history")
      .setPath(Schema.Struct({ equipmentUuid: Schema.String }))
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
      .setPath(Schema.Struct({ sensorUuid: Schema.String }))
      .setUrlParams(Schema.Struct({
        ...HistoryParams,
        equipment_uuid: Schema.optional(
          Schema.String.annotations({ description: "only the sensor of this equipment (sensor uuids are per equipment)" })
        )
      }))
      .addSuccess(SensorHistory)
      .annotate(OpenApi.Summary, "Hourly or daily statistics, or raw readings, of one sensor")
  )
  .add(
    HttpApiEndpoint.get("equipmentStats", "/equipment/:equipmentUuid/stats")
      .setPath(Schema.Struct({ equipmentUuid: Schema.String }))
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
      .setPath(Schema.Struct({ equipmentUuid: Schema.String }))
      .setUrlParams(Schema.Struct({
        hours: withDefault(
          Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 168)).annotations({
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
  .middleware(ReaderAuth)
  .prefix("/api/v1/analytics")
{}

// --- Health (contract §5) ---

const Healthy = Schema.Struct({
  status: Schema.Literal("healthy"),
  service: Schema.String,
  timestamp: Timestamp
}).annotations({ identifier: "Healthy" })

const DependencyCheck = Schema.Struct({
  status: Schema.Literal("up", "down"),
  latency_ms: Schema.Number.annotations({ description: "how long the check took" }),
  error: Schema.optional(Schema.String)
}).annotations({ identifier: "DependencyCheck" })

const Checks = Schema.Struct({ storage: DependencyCheck, queue: DependencyCheck, database: DependencyCheck })

export class DetailedHealth extends Schema.Class<DetailedHealth>("DetailedHealth")({
  status: Schema.Literal("healthy"),
  service: Schema.String,
  timestamp: Timestamp,
  checks: Checks
}) {}

export class Unhealthy extends Schema.Class<Unhealthy>("Unhealthy")(
  { status: Schema.Literal("unhealthy"), service: Schema.String, timestamp: Timestamp, checks: Checks },
  HttpApiSchema.annotations({ status: 503, description: "A dependency is down" })
) {}

class HealthGroup extends HttpApiGroup.make("health")
  .add(HttpApiEndpoint.get("health", "/api/v1/health").addSuccess(Healthy))
  .add(
    HttpApiEndpoint.get("detailed", "/api/v1/health/detailed")
      .addSuccess(DetailedHealth)
      .addError(Unhealthy)
      .annotate(OpenApi.Summary, "Storage, queue and database checked, with latencies")
  )
{}

export class TelemetryApi extends HttpApi.make("telemetry")
  .add(IngestGroup)
  .add(AnalyticsGroup)
  .add(HealthGroup)
  .addError(InternalError)
  .annotate(OpenApi.Title, "Telemetry pipeline")
  .annotate(OpenApi.Version, "1")
  .annotate(OpenApi.Transform, withoutDecodeError)
{}
