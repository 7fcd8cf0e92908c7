/**
 * A generated telemetry dataset for the analytics tests: deterministic values and spacing (seeded), placed over
 * the ~3 days before `end`, several equipments and sensors, readings without values, out of order and late.
 */
import type { Equipment, Reading, Sensor, TelemetryItem } from "@telemetry/domain"

/** mulberry32: a small seeded PRNG, so every run draws the same values and gaps. */
export const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** A reading as the tests reason about it (and as the raw history returns it). */
export interface Point {
  readonly tenantId: string
  readonly equipment: string
  readonly sensor: string
  readonly time: number
  readonly value: number | null
  readonly status: string | null
  readonly metadata: Record<string, number> | null
}

export interface SensorSpec {
  readonly uuid: string
  readonly name: string
  readonly type: string
  readonly unit: string | null
  /** Value of a reading, or null for a status-only reading. */
  readonly draw: (random: () => number) => { value: number | null; status: string | null }
}

const round2 = (x: number) => Math.round(x * 100) / 100

const temperature = (uuid: string, base: number): SensorSpec => ({
  uuid,
  name: "Temperature",
  type: "temperature",
  unit: "°C",
  // One reading in 25 failed (status only): it counts as a sample but not as a value.
  draw: (random) => random() < 0.04 ? { value: null, status: "error" } : { value: round2(base + random() * 4 - 2), status: null }
})
const humidity = (uuid: string): SensorSpec => ({
  uuid,
  name: "Humidity",
  type: "humidity",
  unit: "%",
  draw: (random) => ({ value: round2(40 + random() * 20), status: null })
})
const door = (uuid: string): SensorSpec => ({
  uuid,
  name: "Door",
  type: "door",
  unit: null,
  draw: (random) => ({ value: null, status: random() < 0.5 ? "open" : "closed" })
})

export interface EquipmentSpec {
  readonly tenantId: string
  readonly uuid: string
  readonly sensors: ReadonlyArray<SensorSpec>
}

/** The equipments: `probe-1` is a sensor uuid on two equipments; `eq-a` also exists in another tenant. */
export const equipments: ReadonlyArray<EquipmentSpec> = [
  { tenantId: "default", uuid: "eq-a", sensors: [temperature("eq-a-temp", -18), humidity("eq-a-hum"), door("eq-a-door")] },
  { tenantId: "default", uuid: "eq-b", sensors: [temperature("eq-b-temp", 4), door("eq-b-door"), humidity("probe-1")] },
  { tenantId: "default", uuid: "eq-c", sensors: [temperature("eq-c-temp", -22), humidity("probe-1")] },
  { tenantId: "tenant-b", uuid: "eq-a", sensors: [temperature("eq-a-temp", 100)] }
]

/** The description of a sensor uuid (`probe-1` is the same humidity sensor model on both equipments). */
export const sensorSpec = (uuid: string): SensorSpec => equipments.flatMap((e) => e.sensors).find((s) => s.uuid === uuid)!

const SPAN = 70 * 3_600_000

/**
 * Readings of every sensor over (end - 70 h, end]: gaps of 5 s to 9 min (several readings in some minutes, none
 * in others), some with battery metadata; the readings of every equipment are shuffled.
 */
export const generate = (seed: number, end: number): ReadonlyArray<Point> => {
  const random = prng(seed)
  const points: Array<Point> = []
  for (const equipment of equipments) {
    for (const sensor of equipment.sensors) {
      let time = end - SPAN + Math.floor(random() * 600) * 1000
      while (time <= end) {
        const { status, value } = sensor.draw(random)
        const metadata = random() < 0.1 ? { battery: Math.floor(random() * 100) } : null
        points.push({ tenantId: equipment.tenantId, equipment: equipment.uuid, sensor: sensor.uuid, time, value, status, metadata })
        time += (5 + Math.floor(random() * 535)) * 1000
      }
    }
  }
  return shuffle(points, random)
}

const shuffle = <A>(items: ReadonlyArray<A>, random: () => number): Array<A> => {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

/** Splits the points into the first delivery and a late one (one in `lateShare`, from all over the span). */
export const splitLate = (points: ReadonlyArray<Point>, seed: number, lateShare = 0.1) => {
  const random = prng(seed)
  const onTime: Array<Point> = []
  const late: Array<Point> = []
  for (const p of points) (random() < lateShare ? late : onTime).push(p)
  return { onTime, late }
}

const equipmentOf = (uuid: string): Equipment => ({
  uuid,
  name: `Equipment ${uuid}`,
  location: null,
  status: "active",
  collectionInterval: 60,
  sirenActive: false,
  sirenTime: 120
})

const sensorOf = (spec: SensorSpec): Sensor => ({
  uuid: spec.uuid,
  name: spec.name,
  type: spec.type,
  unit: spec.unit,
  status: null,
  manufacturer: null,
  model: null,
  firmware: null,
  hardwareId: null,
  viaHub: null
})

/** The items of one tenant's delivery, in the points' order, as the worker hands them to `TelemetryStore.load`. */
export const itemsOf = (tenantId: string, points: ReadonlyArray<Point>): ReadonlyArray<TelemetryItem> =>
  equipments.filter((e) => e.tenantId === tenantId).map((e) => ({
    equipment: equipmentOf(e.uuid),
    sensors: e.sensors.map(sensorOf),
    readings: points
      .filter((p) => p.tenantId === tenantId && p.equipment === e.uuid)
      .map((p): Reading => ({
        sensorUuid: p.sensor,
        timeMicros: p.time * 1000,
        value: p.value,
        status: p.status,
        metadata: p.metadata === null ? null : JSON.stringify(p.metadata)
      }))
  }))
