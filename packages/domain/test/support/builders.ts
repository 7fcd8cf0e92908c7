/** Builders of telemetry for the database tests. */
import { randomUUID } from "node:crypto"
import { ClaimCheck } from "../../src/ClaimCheck.js"
import type { Equipment, Reading, Sensor, TelemetryItem } from "../../src/payload/Telemetry.js"

export const uid = (prefix: string) => `${prefix}-${randomUUID()}`

export const equipment = (uuid: string, overrides: Partial<Equipment> = {}): Equipment => ({
  uuid,
  name: "Freezer",
  location: "Kitchen",
  status: "active",
  collectionInterval: 60,
  sirenActive: false,
  sirenTime: 120,
  ...overrides
})

export const sensor = (uuid: string, overrides: Partial<Sensor> = {}): Sensor => ({
  uuid,
  name: null,
  type: null,
  unit: null,
  status: null,
  manufacturer: null,
  model: null,
  firmware: null,
  hardwareId: null,
  viaHub: null,
  ...overrides
})

/** A reading at `time`: ISO text, or epoch milliseconds. */
export const reading = (sensorUuid: string, time: number | string, value: number | null, overrides: Partial<Reading> = {}): Reading => ({
  sensorUuid,
  timeMicros: (typeof time === "string" ? Date.parse(time) : time) * 1000,
  value,
  status: null,
  metadata: null,
  ...overrides
})

export const item = (eq: Equipment, sensors: ReadonlyArray<Sensor>, readings: ReadonlyArray<Reading>): TelemetryItem => ({
  equipment: eq,
  sensors,
  readings
})

/** `n` readings of one sensor, one a minute from `start`, values 0, 1, 2, ... */
export const series = (sensorUuid: string, n: number, start = Date.UTC(2025, 0, 15, 8, 0, 0)) =>
  Array.from({ length: n }, (_, k) => reading(sensorUuid, start + k * 60_000, k))

export const claim = (
  options: { tenantId?: string; deviceId?: string; requestId?: string; claimId?: string; readings?: number } = {}
) => {
  const claimId = options.claimId ?? randomUUID()
  return new ClaimCheck({
    version: 1,
    claim_id: claimId,
    claim_check: `telemetry/2025-01-15T08-00-00-000Z/${claimId}.json.gz`,
    storage_type: "memory",
    bucket: "telemetry-raw",
    file_size: 100,
    original_size: 1000,
    compression: "gzip",
    timestamp: "2025-01-15T08:00:00.000Z",
    metadata: {
      requestId: options.requestId ?? uid("req"),
      deviceId: options.deviceId ?? null,
      tenantId: options.tenantId ?? "default",
      itemsCount: 0,
      totalSensors: options.readings ?? 0,
      fileSize: 100
    }
  })
}
