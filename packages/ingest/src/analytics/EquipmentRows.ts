import { Schema } from "effect"
import { MicrosTimestamp, Timestamp } from "./Rows.js"

// The equipments of a tenant as the console lists them (GET /api/v1/equipments): what each is, how its sensors
// last read, and how much it sent over the last day. They type the response bodies and the OpenAPI document.

const Count = Schema.Number.annotations({ description: "a count (integer)" })

/**
 * The most sensors an equipment lists (the first by uuid): an equipment may be sent any number of sensors, and a page
 * listing them all (50 000 on one equipment took 9.7 MB and its query seconds) would hold the process's memory and,
 * embedded, its one thread. The equipment's own figures (newest reading, readings, sparkline) are of those listed.
 */
export const LISTED_SENSORS = 500

/**
 * The most sensors a page lists, all its equipments together: a page ends early, with a `next_cursor`, before the
 * equipment that would pass it (the first is always listed). 200 equipments of 500 sensors each made a page of 17 MB
 * that held the embedded database's one session for 3.5 s, and every other tenant's uploads behind it.
 */
export const PAGE_SENSORS = 2_000

export const LastReading = Schema.Struct({
  time: MicrosTimestamp,
  value: Schema.NullOr(Schema.Number),
  status: Schema.NullOr(Schema.String)
}).annotations({ identifier: "LastReading", description: "the sensor's newest stored reading" })

export const EquipmentSensor = Schema.Struct({
  uuid: Schema.String,
  name: Schema.NullOr(Schema.String),
  type: Schema.String,
  unit: Schema.NullOr(Schema.String),
  status: Schema.NullOr(Schema.String),
  last_reading: Schema.NullOr(LastReading),
  readings_24h: Count.annotations({ description: "readings in the hourly buckets of the last 24 hours" })
}).annotations({ identifier: "EquipmentSensor" })

export const Sparkline = Schema.Struct({
  sensor_uuid: Schema.String.annotations({ description: "the first sensor (by uuid) with values in the window" }),
  start: Timestamp.annotations({ description: "the first hour's start; each further value is one hour later" }),
  hourly_avg: Schema.Array(Schema.NullOr(Schema.Number)).annotations({
    description: "the mean of each hour up to the current one; null for an hour without values"
  })
}).annotations({ identifier: "Sparkline" })

export const Equipment = Schema.Struct({
  uuid: Schema.String,
  name: Schema.NullOr(Schema.String),
  location: Schema.NullOr(Schema.String),
  status: Schema.String,
  collection_interval: Count.annotations({ description: "seconds between readings, as the device declares" }),
  last_reading_at: Schema.NullOr(MicrosTimestamp).annotations({ description: "the newest reading of any sensor" }),
  stale: Schema.Boolean.annotations({
    description: "no reading for longer than 3 collection intervals, and at least 10 minutes (or none at all)"
  }),
  readings_24h: Count.annotations({
    description: "readings in the hourly buckets since the start of the hour 24 hours ago (as stats?period=24h)"
  }),
  sparkline: Schema.NullOr(Sparkline),
  sensor_count: Count.annotations({ description: `the sensors it has; \`sensors\` lists the first ${LISTED_SENSORS} by uuid` }),
  sensors: Schema.Array(EquipmentSensor).annotations({
    description: `its first ${LISTED_SENSORS} sensors by uuid (byte order); the figures above are of these`
  })
}).annotations({ identifier: "Equipment" })
export type Equipment = typeof Equipment.Type

export const StatusCount = Schema.Struct({
  status: Schema.String,
  equipments: Count
}).annotations({ identifier: "StatusCount" })

export const EquipmentPage = Schema.Struct({
  data: Schema.Array(Equipment).annotations({
    description: `up to \`limit\` equipments; fewer, with a \`next_cursor\`, where their listed sensors would pass ${PAGE_SENSORS}`
  }),
  total: Count.annotations({ description: "equipments matching the filters, on every page" }),
  next_cursor: Schema.NullOr(Schema.String).annotations({ description: "pass as `cursor` for the next page; null on the last" }),
  statuses: Schema.Array(StatusCount).annotations({
    description: "the statuses of the tenant's equipments and how many have each (for a status filter)"
  })
}).annotations({ identifier: "EquipmentPage" })
export type EquipmentPage = typeof EquipmentPage.Type
