/**
 * Payloads ingest must accept (issue 11's property test), each with what the database must hold afterwards: every
 * reading once — the first sent of those with the same sensor and instant — with its value, status and metadata,
 * and the equipments and sensors with their attributes. Worked out from the contract (§1), not from the pipeline.
 */
import { prng } from "@telemetry/ingest/testing/dataset"
import { FastCheck as fc } from "effect"
import { fixtureEnv } from "./fixtures.js"
import {
  extremeNumber,
  numericText,
  OFFSETS,
  sameInstant,
  type SentTime,
  sentTime,
  statusText,
  storableId,
  storableName
} from "./storable.js"

type Fields = Record<string, unknown>

/** A stored reading, as the test reads it back. */
export interface Row {
  readonly equipment: string
  readonly sensor: string
  /** Epoch microseconds, as text. */
  readonly micros: string
  readonly value: number | null
  readonly status: string | null
  readonly metadata: unknown
}

export interface Expected {
  readonly items: number
  /** Readings sent and stored or skipped as duplicates. */
  readonly readings: number
  /** Readings sent older than the retention (those of 1970), not stored. */
  readonly expired: number
  readonly rows: ReadonlyArray<Row>
  readonly equipments: ReadonlyArray<{ readonly uuid: string; readonly name: string | null; readonly location: string | null }>
  readonly sensors: ReadonlyArray<{
    readonly equipment: string
    readonly uuid: string
    readonly name: string | null
    readonly type: string | null
    readonly unit: string | null
  }>
}

/** A payload to send, plain or gzip, and what it must leave in the database. */
export interface Accepted {
  readonly payload: ReadonlyArray<Fields>
  readonly gzipped: boolean
  readonly expected: Expected
}

/** What a reading's value fields hold: `valor`, a number or numeric string in `sensor_telemetria`, a status text. */
type ValueSpec =
  | { readonly kind: "valor"; readonly valor: number; readonly ignored: string | null }
  | { readonly kind: "number"; readonly telemetria: number }
  | { readonly kind: "numeric"; readonly telemetria: readonly [string, number] }
  | { readonly kind: "status"; readonly telemetria: string }
  | { readonly kind: "none" }

const valueSpec: fc.Arbitrary<ValueSpec> = fc.oneof(
  fc.record({ kind: fc.constant("valor" as const), valor: extremeNumber, ignored: fc.option(statusText, { nil: null }) }),
  fc.record({ kind: fc.constant("number" as const), telemetria: extremeNumber }),
  fc.record({ kind: fc.constant("numeric" as const), telemetria: numericText }),
  fc.record({ kind: fc.constant("status" as const), telemetria: statusText }),
  fc.constant({ kind: "none" as const })
)

/** The known metadata fields of a reading and the names they are stored under. */
const METADATA = {
  sensor_bateria_pct: "battery",
  sensor_sinal_rssi: "rssi",
  sensor_sinal_lqi: "lqi",
  sensor_voltagem_bateria: "battery_voltage",
  sensor_voltagem: "voltage",
  sensor_corrente: "current",
  sensor_potencia: "power"
} as const

const unknownValue = fc.oneof(
  storableName,
  extremeNumber,
  fc.boolean(),
  fc.constant(null),
  fc.record({ nested: fc.array(fc.oneof(storableName, fc.integer()), { maxLength: 3 }) })
)

interface ReadingSpec {
  readonly sensor: number
  readonly time: SentTime
  /** The time under `timestamp` instead; or `sensor_datahora_coleta` wins over a `timestamp` also sent. */
  readonly timeField: "sensor_datahora_coleta" | "timestamp" | "both"
  readonly value: ValueSpec
  readonly status: string | null
  readonly metadata: Partial<Record<keyof typeof METADATA, number | null>>
  /** Unknown fields: those named `sensor_*` are kept in the metadata. */
  readonly unknown: ReadonlyArray<readonly [string, unknown]>
  /** Whether it carries its sensor's attributes (each reading may; the Home Assistant client always does). */
  readonly attributes: boolean
}

const readingSpec = (sensors: number): fc.Arbitrary<ReadingSpec> =>
  fc.record({
    sensor: fc.nat(sensors - 1),
    time: sentTime,
    timeField: fc.constantFrom("sensor_datahora_coleta" as const, "timestamp" as const, "both" as const),
    value: valueSpec,
    status: fc.option(statusText, { nil: null }),
    metadata: fc.record(
      Object.fromEntries(Object.keys(METADATA).map((k) => [k, fc.option(extremeNumber, { nil: null })])) as Record<
        keyof typeof METADATA,
        fc.Arbitrary<number | null>
      >,
      { requiredKeys: [] }
    ),
    unknown: fc.array(
      fc.tuple(fc.oneof(storableName.map((k) => `sensor_${k}`), fc.constantFrom("extra", "equip_uuid", "sensor")), unknownValue),
      { maxLength: 2 }
    ),
    attributes: fc.boolean()
  })

interface SensorSpec {
  readonly uuid: string
  readonly name: string | null
  readonly type: string | null
  /** The type under the fallback `tipo`. */
  readonly typeAsTipo: boolean
  readonly unit: string | null
}

const sensorSpec: fc.Arbitrary<SensorSpec> = fc.record({
  uuid: storableId,
  name: fc.option(storableName, { nil: null }),
  type: fc.option(storableName, { nil: null }),
  typeAsTipo: fc.boolean(),
  unit: fc.option(storableName, { nil: null })
})

interface ItemSpec {
  readonly uuid: string
  readonly name: string | null
  readonly location: string | null
  readonly status: string | null
  readonly interval: number | string | null
  readonly sensors: ReadonlyArray<SensorSpec>
  readonly readings: ReadonlyArray<ReadingSpec>
  /** Readings sent again later in the item, with another value and the same instant written another way. */
  readonly duplicates: ReadonlyArray<{ readonly of: number; readonly offset: number; readonly value: number }>
}

const itemSpec = (shape: { readonly sensors: number; readonly readings: number; readonly duplicates: number }) =>
  fc.uniqueArray(sensorSpec, { minLength: 1, maxLength: shape.sensors, selector: (s) => s.uuid }).chain((sensors) =>
    fc.record({
      uuid: storableId,
      name: fc.option(storableName, { nil: null }),
      location: fc.option(storableName, { nil: null }),
      status: fc.option(fc.oneof(fc.constantFrom("ATIVO", "inativo", "Bloqueado", "blocked"), storableName), { nil: null }),
      interval: fc.option(fc.oneof(fc.integer({ min: 0, max: 2_147_483_647 }), fc.constantFrom("30", " 2147483647 ", "1e3", "0.5")), { nil: null }),
      sensors: fc.constant(sensors),
      readings: fc.array(readingSpec(sensors.length), { minLength: 1, maxLength: shape.readings }),
      duplicates: fc.array(fc.record({ of: fc.nat(), offset: fc.constantFrom(...OFFSETS), value: extremeNumber }), {
        maxLength: shape.duplicates
      })
    })
  )

/** The value and status a reading's fields make (contract §1). */
const valueOf = (spec: ValueSpec, status: string | null) => {
  switch (spec.kind) {
    case "valor":
      return { value: spec.valor, status }
    case "number":
      return { value: spec.telemetria, status }
    case "numeric":
      return { value: spec.telemetria[1], status }
    case "status":
      return { value: null, status: status ?? spec.telemetria }
    case "none":
      return { value: null, status }
  }
}

const valueFields = (spec: ValueSpec): Fields => {
  switch (spec.kind) {
    case "valor":
      return spec.ignored === null ? { valor: spec.valor } : { valor: spec.valor, sensor_telemetria: spec.ignored }
    case "number":
      return { valor: null, sensor_telemetria: spec.telemetria }
    case "numeric":
      return { sensor_telemetria: spec.telemetria[0] }
    case "status":
      return { valor: null, sensor_telemetria: spec.telemetria }
    case "none":
      return {}
  }
}

/** A reading as sent, and the row it stands for (before duplicates are dropped). */
const build = (item: ItemSpec, r: ReadingSpec): { sent: Fields; row: Row } => {
  const sensor = item.sensors[r.sensor]!
  const sent: Fields = { sensor_uuid: sensor.uuid }
  if (r.attributes) {
    if (sensor.name !== null) sent.sensor_nome = sensor.name
    if (sensor.type !== null) sent[sensor.typeAsTipo ? "tipo" : "sensor_tipo"] = sensor.type
    if (sensor.unit !== null) sent.sensor_unidade = sensor.unit
  }
  Object.assign(sent, valueFields(r.value))
  if (r.status !== null) sent.status = r.status
  if (r.timeField !== "timestamp") sent.sensor_datahora_coleta = r.time.text
  // Sent as well, it loses to sensor_datahora_coleta: a time the test would not expect.
  if (r.timeField !== "sensor_datahora_coleta") sent.timestamp = r.timeField === "both" ? "2026-12-01T00:00:00Z" : r.time.text
  const metadata: Fields = {}
  for (const [field, name] of Object.entries(METADATA) as Array<[keyof typeof METADATA, string]>) {
    const v = r.metadata[field]
    if (v !== undefined) sent[field] = v
    if (v != null) metadata[name] = v
  }
  for (const [field, v] of r.unknown) {
    // An unknown field of a known name would be that field.
    if (field in sent || SENSOR_FIELDS.has(field)) continue
    sent[field] = v
    if (field.startsWith("sensor_") && v != null) metadata[field] = v
  }
  const { status, value } = valueOf(r.value, r.status)
  return {
    sent,
    row: {
      equipment: item.uuid,
      sensor: sensor.uuid,
      micros: String(r.time.micros),
      value,
      status,
      metadata: Object.keys(metadata).length === 0 ? null : json(metadata)
    }
  }
}

/** The reading fields of the wire format (an unknown field may not take one of these names). */
const SENSOR_FIELDS = new Set([
  "sensor_uuid", "sensor_nome", "sensor_tipo", "sensor_unidade", "sensor_status", "sensor_telemetria",
  "sensor_datahora_coleta", "sensor_bateria_pct", "sensor_sinal_rssi", "sensor_sinal_lqi", "sensor_voltagem_bateria",
  "sensor_voltagem", "sensor_corrente", "sensor_potencia", "sensor_fabricante", "sensor_modelo", "sensor_firmware",
  "sensor_id_hardware", "sensor_via_hub"
])

/** Objects with their keys in order, as JSON text of equal values is then equal. */
const canonical = (value: unknown): unknown =>
  Array.isArray(value)
    ? value.map(canonical)
    : typeof value === "object" && value !== null
    ? Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical((value as Fields)[k])]))
    : value

/**
 * A JSON value as it reads back from the database's JSON, keys in order: numbers as text and back (`-0` is `0`
 * there), keys in the database's own order.
 */
export const json = (value: unknown): unknown => canonical(JSON.parse(JSON.stringify(value)))

const itemFields = (item: ItemSpec): Fields => ({
  equip_uuid: item.uuid,
  ...(item.name === null ? {} : { equip_nome: item.name }),
  ...(item.location === null ? {} : { equip_local: item.location }),
  ...(item.status === null ? {} : { equip_status: item.status }),
  ...(item.interval === null ? {} : { equip_intervalo_coleta: item.interval })
})

/** Where the retention the tests run with (fixtureEnv) begins, in epoch µs: far between the days readings are of. */
const KEPT_FROM = (Date.now() - Number.parseInt(fixtureEnv.RAW_RETENTION) * 86_400_000) * 1000

/** A payload of `items` and what it must leave in the database. */
const accepted = (items: ReadonlyArray<ItemSpec>, gzipped: boolean): Accepted => {
  const rows = new Map<string, Row>()
  const payload: Array<Fields> = []
  let readings = 0
  let expired = 0
  for (const item of items) {
    const sent: Array<Fields> = []
    const add = (reading: Fields, row: Row) => {
      sent.push(reading)
      if (Number(row.micros) < KEPT_FROM) {
        expired++
        return
      }
      readings++
      const key = JSON.stringify([row.equipment, row.sensor, row.micros])
      // The first of the readings of a sensor at one instant is stored.
      if (!rows.has(key)) rows.set(key, row)
    }
    const built = item.readings.map((r) => build(item, r))
    for (const { row, sent: reading } of built) add(reading, row)
    for (const d of item.duplicates) {
      const { row, sent: reading } = built[d.of % built.length]!
      const again: Fields = { ...reading, sensor_datahora_coleta: sameInstant(Number(row.micros), d.offset), valor: d.value }
      delete again.timestamp
      add(again, { ...row, value: d.value, status: typeof again.status === "string" ? again.status : null })
    }
    payload.push({ ...itemFields(item), sensor: sent })
  }
  const attributed = (sensor: SensorSpec, item: ItemSpec) => item.readings.some((r) => r.attributes && item.sensors[r.sensor] === sensor)
  return {
    payload,
    gzipped,
    expected: {
      items: items.length,
      readings,
      expired,
      rows: [...rows.values()],
      equipments: items.map((i) => ({ uuid: i.uuid, name: i.name, location: i.location })),
      sensors: items.flatMap((i) =>
        i.sensors.filter((s) => i.readings.some((r) => i.sensors[r.sensor] === s)).map((s) => ({
          equipment: i.uuid,
          uuid: s.uuid,
          name: attributed(s, i) ? s.name : null,
          // Contract §1: a sensor whose type was never sent is of type `unknown`.
          type: (attributed(s, i) ? s.type : null) ?? "unknown",
          unit: attributed(s, i) ? s.unit : null
        }))
      )
    }
  }
}

const uniqueItems = (shape: { readonly items: number; readonly sensors: number; readonly readings: number; readonly duplicates: number }) =>
  fc.uniqueArray(itemSpec(shape), { minLength: 1, maxLength: shape.items, selector: (i) => i.uuid })

/**
 * One equipment with thousands of readings of two sensors, a second apart over part of a day: made from a seed
 * (fast-check drawing each would be slow), every 97th reading sent again with another value.
 */
const hugeItem = fc.record({
  uuid: storableId,
  sensors: fc.uniqueArray(storableId, { minLength: 2, maxLength: 2 }),
  readings: fc.integer({ min: 2_000, max: 4_000 }),
  seed: fc.integer(),
  // A day long past, and yesterday evening: readings are refused more than a day after they are received.
  start: fc.constantFrom(Date.UTC(2026, 11, 1, 3), Math.floor(Date.now() / 86_400_000) * 86_400_000 - 4 * 3_600_000)
}).map(({ readings, seed, sensors, start, uuid }): ItemSpec => {
  const random = prng(seed)
  const pick = <A>(xs: ReadonlyArray<A>) => xs[Math.floor(random() * xs.length)]!
  const values = [1e100, -1e100, 5e-324, 1e21, -0, 0.5]
  return {
    uuid,
    name: "huge",
    location: null,
    status: null,
    interval: null,
    sensors: sensors.map((s) => ({ uuid: s, name: null, type: "temperature", typeAsTipo: false, unit: "°C" })),
    readings: Array.from({ length: readings }, (_, i): ReadingSpec => {
      const micros = (start + i * 1000) * 1000 + Math.floor(random() * 1_000_000)
      return {
        sensor: i % 2,
        time: { text: sameInstant(micros, pick(OFFSETS)), micros },
        timeField: "sensor_datahora_coleta",
        value: { kind: "valor", valor: random() < 0.2 ? pick(values) : (random() - 0.5) * 1e6, ignored: null },
        status: null,
        metadata: {},
        unknown: [],
        attributes: i < 2
      }
    }),
    duplicates: Array.from({ length: Math.floor(readings / 97) }, (_, k) => ({ of: k * 97, offset: pick(OFFSETS), value: k }))
  }
})

/**
 * An accepted payload: one reading; a few items of a few sensors and readings, with duplicates; many items of one
 * reading; an item of thousands of readings. Sent plain or gzip-compressed.
 */
export const acceptedPayload: fc.Arbitrary<Accepted> = fc.tuple(
  fc.oneof(
    { weight: 1, arbitrary: uniqueItems({ items: 1, sensors: 1, readings: 1, duplicates: 0 }) },
    { weight: 4, arbitrary: uniqueItems({ items: 4, sensors: 3, readings: 12, duplicates: 3 }) },
    { weight: 1, arbitrary: uniqueItems({ items: 120, sensors: 1, readings: 1, duplicates: 0 }) },
    { weight: 1, arbitrary: hugeItem.map((item) => [item]) }
  ),
  fc.boolean()
).map(([items, gzipped]) => accepted(items, gzipped))
