/** Normalized records, as the worker loads them (contract §3). */
export type EquipmentStatus = "active" | "inactive" | "blocked"

export interface Equipment {
  readonly uuid: string
  readonly name: string | null
  readonly location: string | null
  readonly status: EquipmentStatus
  readonly collectionInterval: number
  readonly sirenActive: boolean
  readonly sirenTime: number
}

/** Attributes a reading did not carry are null and leave what is stored untouched. */
export interface Sensor {
  readonly uuid: string
  readonly name: string | null
  /** Stored as `unknown` when no reading ever told it. */
  readonly type: string | null
  readonly unit: string | null
  readonly status: string | null
  readonly manufacturer: string | null
  readonly model: string | null
  readonly firmware: string | null
  readonly hardwareId: string | null
  readonly viaHub: string | null
}

export interface Reading {
  readonly sensorUuid: string
  /** Epoch microseconds. */
  readonly timeMicros: number
  readonly value: number | null
  readonly status: string | null
  /** JSON text of battery, rssi, lqi, battery and supply voltage, current, power and unknown `sensor_*` fields, or null when the reading has none. */
  readonly metadata: string | null
}

/**
 * One equipment item of a payload: its equipment, its distinct sensors, and its readings. A large item comes as
 * several, each with some of its readings (and its sensors), the first of them not `continued`.
 */
export interface TelemetryItem {
  readonly equipment: Equipment
  readonly sensors: ReadonlyArray<Sensor>
  readonly readings: ReadonlyArray<Reading>
  readonly continued?: boolean
  /** Readings of the item older than the raw retention (`NormalizeOptions.keepFrom`), left out of `readings`. */
  readonly expired?: number
}

/** Merges two descriptions of the same equipment or sensor: the latest non-null value of each field wins. */
export const mergeLatest = <A extends object>(before: A | undefined, after: A): A => {
  if (before === undefined) return after
  const merged = { ...before } as Record<string, unknown>
  for (const [field, value] of Object.entries(after)) if (value !== null) merged[field] = value
  return merged as A
}
