import { Schema } from "effect"

// Rows of the analytics answers (contract §4): their fields, in the order the answers write them (Analytics picks
// the column behind each), and the OpenAPI document. Counts and values are JSON numbers; timestamps ISO-8601 strings.
const Count = Schema.Number.annotations({ description: "a count (integer)" })
/** A Date in the rows, an ISO-8601 string in JSON. */
export const Timestamp = Schema.Date.annotations({
  identifier: "Timestamp",
  jsonSchema: { type: "string", format: "date-time", description: "ISO-8601 date-time, UTC" }
})
/**
 * A bucket's start, as the database writes it: ISO-8601 text in UTC to the millisecond, the text a `Timestamp`
 * writes (the same schema in the OpenAPI document), without making and formatting a Date for each of thousands.
 */
export const BucketTimestamp = Schema.String.annotations({
  identifier: "Timestamp",
  jsonSchema: { type: "string", format: "date-time", description: "ISO-8601 date-time, UTC" }
})
/** A reading's time to the microsecond, as sent: ISO-8601 text in UTC with six fractional digits. */
export const MicrosTimestamp = Schema.String.annotations({
  identifier: "MicrosTimestamp",
  jsonSchema: { type: "string", format: "date-time", description: "ISO-8601 date-time, UTC, to the microsecond" }
})
const Stat = (description: string) => Schema.NullOr(Schema.Number).annotations({ description })

const SensorColumns = {
  sensor_uuid: Schema.String,
  sensor_name: Schema.NullOr(Schema.String),
  sensor_type: Schema.String,
  sensor_unit: Schema.NullOr(Schema.String)
}

const Metrics = {
  time: BucketTimestamp,
  avg_value: Stat("mean of the values"),
  max_value: Stat("largest value"),
  min_value: Stat("smallest value"),
  sample_count: Count.annotations({ description: "readings, including those without a value (status only)" }),
  stddev_value: Stat("sample standard deviation; null under two values"),
  median_value: Stat("percentile_cont(0.5)"),
  p95_value: Stat("percentile_cont(0.95)"),
  p99_value: Stat("percentile_cont(0.99)")
}
const activeMinutes = { active_minutes: Count.annotations({ description: "distinct minutes with readings" }) }
const activeHours = { active_hours: Count.annotations({ description: "distinct hours with readings" }) }

const RawColumns = {
  time: MicrosTimestamp,
  value: Schema.NullOr(Schema.Number),
  status: Schema.NullOr(Schema.String),
  metadata: Schema.NullOr(Schema.Unknown).annotations({
    description: "battery, rssi, lqi, battery_voltage, voltage, current, power, and the reading's other sensor_* fields"
  })
}

export const HourMetrics = Schema.Struct({ ...Metrics, ...activeMinutes }).annotations({ identifier: "HourMetrics" })
export const DayMetrics = Schema.Struct({ ...Metrics, ...activeHours }).annotations({ identifier: "DayMetrics" })
export const RawReading = Schema.Struct(RawColumns).annotations({ identifier: "RawReading" })

export const HourRow = Schema.Struct({ ...SensorColumns, ...Metrics, ...activeMinutes }).annotations({ identifier: "HourRow" })
export const DayRow = Schema.Struct({ ...SensorColumns, ...Metrics, ...activeHours }).annotations({ identifier: "DayRow" })
export const RawRow = Schema.Struct({ ...SensorColumns, ...RawColumns }).annotations({ identifier: "RawRow" })

export const SensorStats = Schema.Struct({
  ...SensorColumns,
  overall_avg: Stat("mean of all values in the period (weighted by samples, not a mean of bucket means)"),
  overall_max: Stat("largest value in the period"),
  overall_min: Stat("smallest value in the period"),
  total_samples: Count.annotations({ description: "readings in the period" }),
  active_periods: Count.annotations({ description: "buckets with readings: hours for 24h, days otherwise" })
}).annotations({ identifier: "SensorStats" })

/** An hourly row as the Home Assistant integration reads it. */
export const HomeAssistantRow = Schema.Struct({
  time: BucketTimestamp,
  sensor_uuid: Schema.String,
  sensor_name: Schema.NullOr(Schema.String),
  sensor_type: Schema.String,
  unit: Schema.NullOr(Schema.String),
  value: Stat("mean of the hour"),
  max: Stat("largest value of the hour"),
  min: Stat("smallest value of the hour"),
  samples: Count.annotations({ description: "readings in the hour" })
}).annotations({ identifier: "HomeAssistantRow" })
