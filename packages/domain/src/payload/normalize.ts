import { Either, ParseResult, Schema } from "effect"
import { InvalidPayload } from "../errors.js"
import {
  atMostCharacters,
  BYTE_ORDER_MARK,
  DECIMAL,
  EquipmentItem,
  isNotBlank,
  MAX_ABS_VALUE,
  MAX_ID_LENGTH,
  MAX_SECONDS,
  MAX_TEXT_LENGTH,
  type SensorReading
} from "./Payload.js"
import type { Equipment, EquipmentStatus, Reading, Sensor, TelemetryItem } from "./Telemetry.js"
import { makeTimestampParser } from "./timestamps.js"

export interface NormalizeOptions {
  /** Zone of naive reading times: the sending device account's, else DEFAULT_TIMEZONE (default UTC). */
  readonly timeZone: string
  /** Reading time when a reading has none: when the payload was received (epoch ms). */
  readonly receivedAt: number
  /**
   * Readings before this time (epoch ms) are left out of the items, only counted (`TelemetryItem.expired`): the
   * worker's raw retention, which would drop them unaggregated, and whose chunks they would create one per day.
   */
  readonly keepFrom?: number
}

const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.map((key) => (typeof key === "number" ? `[${key}]` : `.${String(key)}`)).join("")

const STATUSES: Record<string, EquipmentStatus> = {
  ativo: "active",
  active: "active",
  inativo: "inactive",
  inactive: "inactive",
  bloqueado: "blocked",
  blocked: "blocked"
}
const SIREN_ON = new Set(["sim", "true"])

const decodeItem = Schema.decodeUnknownEither(EquipmentItem, { errors: "first" })

// A fast check of the wire format, for the items that certainly pass `EquipmentItem` (which is slow: several µs a
// reading). It answers undefined when unsure, and the schema then decides and words the error: so the two can only
// differ in speed, never in what is accepted or how it is reported.
type Fields = Record<string, unknown>

const isRecord = (u: unknown): u is Fields => typeof u === "object" && u !== null && !Array.isArray(u)
const isStorable = (u: string) => u.charCodeAt(0) !== BYTE_ORDER_MARK
const isBoundedText = (u: unknown) => typeof u === "string" && atMostCharacters(u, MAX_TEXT_LENGTH) && isStorable(u)
const isText = (u: unknown) => u == null || isBoundedText(u)
// Not blank, so not empty either.
const isId = (u: unknown) => typeof u === "string" && isNotBlank(u) && atMostCharacters(u, MAX_ID_LENGTH) && isStorable(u)
const isFiniteNumber = (u: unknown) => u == null || (typeof u === "number" && Number.isFinite(u))
const isFlag = (u: unknown) => u == null || isBoundedText(u) || typeof u === "boolean"
// Comparisons are false for NaN, so this also excludes it.
const isValue = (u: unknown) => typeof u === "number" && u >= -MAX_ABS_VALUE && u <= MAX_ABS_VALUE

/** `Seconds`: the number, null/undefined as they are, or NaN when unsure. */
const seconds = (u: unknown): number | null | undefined => {
  if (u == null) return u
  const n = typeof u === "number" ? u : typeof u === "string" && DECIMAL.test(u) ? Number(u) : NaN
  return Number.isFinite(n) && n >= 0 && Math.round(n) <= MAX_SECONDS ? n : NaN
}

const isReading = (r: unknown): boolean =>
  isRecord(r) && isId(r.sensor_uuid) && isText(r.sensor_nome) && isText(r.sensor_tipo) && isText(r.tipo) &&
  isText(r.sensor_unidade) && isText(r.sensor_status) && (r.valor == null || isValue(r.valor)) &&
  (r.sensor_telemetria == null || isBoundedText(r.sensor_telemetria) || isValue(r.sensor_telemetria)) &&
  isText(r.status) && isText(r.sensor_datahora_coleta) && isText(r.timestamp) &&
  isFiniteNumber(r.sensor_bateria_pct) && isFiniteNumber(r.sensor_sinal_rssi) && isFiniteNumber(r.sensor_sinal_lqi) &&
  isFiniteNumber(r.sensor_voltagem_bateria) && isFiniteNumber(r.sensor_voltagem) && isFiniteNumber(r.sensor_corrente) &&
  isFiniteNumber(r.sensor_potencia) && isText(r.sensor_fabricante) && isText(r.sensor_modelo) &&
  isText(r.sensor_firmware) && isText(r.sensor_id_hardware) && isFlag(r.sensor_via_hub)

/** The item as `EquipmentItem` decodes it, or undefined when unsure. Readings pass through as they are. */
const decodeFast = (u: unknown): EquipmentItem | undefined => {
  if (!isRecord(u) || !isId(u.equip_uuid) || !isText(u.equip_nome) || !isText(u.equip_local)) return undefined
  if (!isText(u.equip_status) || !isFlag(u.equip_sirene_ativa)) return undefined
  const interval = seconds(u.equip_intervalo_coleta)
  const sirenTime = seconds(u.equip_sirete_tempo)
  if (Number.isNaN(interval) || Number.isNaN(sirenTime)) return undefined
  const sensor = u.sensor
  if (!Array.isArray(sensor) || sensor.length === 0) return undefined
  for (let i = 0; i < sensor.length; i++) if (!isReading(sensor[i])) return undefined
  return { ...u, equip_intervalo_coleta: interval, equip_sirete_tempo: sirenTime } as EquipmentItem
}

const text = (value: string | null | undefined): string | null => value ?? null

type MutableSensor = { -readonly [K in keyof Sensor]: Sensor[K] }

const toSensor = (r: SensorReading): MutableSensor => ({
  uuid: r.sensor_uuid,
  name: text(r.sensor_nome),
  type: r.sensor_tipo ?? r.tipo ?? null,
  unit: text(r.sensor_unidade),
  status: text(r.sensor_status),
  manufacturer: text(r.sensor_fabricante),
  model: text(r.sensor_modelo),
  firmware: text(r.sensor_firmware),
  hardwareId: text(r.sensor_id_hardware),
  viaHub: r.sensor_via_hub == null ? null : String(r.sensor_via_hub)
})

/** `mergeLatest(sensor, toSensor(r))` in place: a sensor's readings mostly repeat its attributes. */
const mergeReading = (sensor: MutableSensor, r: SensorReading): void => {
  if (r.sensor_nome != null) sensor.name = r.sensor_nome
  const type = r.sensor_tipo ?? r.tipo
  if (type != null) sensor.type = type
  if (r.sensor_unidade != null) sensor.unit = r.sensor_unidade
  if (r.sensor_status != null) sensor.status = r.sensor_status
  if (r.sensor_fabricante != null) sensor.manufacturer = r.sensor_fabricante
  if (r.sensor_modelo != null) sensor.model = r.sensor_modelo
  if (r.sensor_firmware != null) sensor.firmware = r.sensor_firmware
  if (r.sensor_id_hardware != null) sensor.hardwareId = r.sensor_id_hardware
  if (r.sensor_via_hub != null) sensor.viaHub = String(r.sensor_via_hub)
}

/** The fields of a reading normalization reads; its other `sensor_*` fields are kept in its metadata as sent. */
const READING_FIELDS = new Set<string>([
  "sensor_uuid", "sensor_nome", "sensor_tipo", "sensor_unidade", "sensor_status", "sensor_telemetria",
  "sensor_datahora_coleta", "sensor_bateria_pct", "sensor_sinal_rssi", "sensor_sinal_lqi", "sensor_voltagem_bateria",
  "sensor_voltagem", "sensor_corrente", "sensor_potencia", "sensor_fabricante", "sensor_modelo", "sensor_firmware",
  "sensor_id_hardware", "sensor_via_hub"
] satisfies ReadonlyArray<keyof SensorReading>)

/**
 * A reading's metadata as JSON text: battery %, rssi, lqi, battery voltage, voltage, current and power under our
 * names, then its unknown `sensor_*` fields under theirs; null when there is none. Built as text, without the
 * object: finite numbers print alike.
 */
const toMetadata = (r: SensorReading, sent: Fields): string | null => {
  let json = ""
  if (r.sensor_bateria_pct != null) json += `,"battery":${r.sensor_bateria_pct}`
  if (r.sensor_sinal_rssi != null) json += `,"rssi":${r.sensor_sinal_rssi}`
  if (r.sensor_sinal_lqi != null) json += `,"lqi":${r.sensor_sinal_lqi}`
  if (r.sensor_voltagem_bateria != null) json += `,"battery_voltage":${r.sensor_voltagem_bateria}`
  if (r.sensor_voltagem != null) json += `,"voltage":${r.sensor_voltagem}`
  if (r.sensor_corrente != null) json += `,"current":${r.sensor_corrente}`
  if (r.sensor_potencia != null) json += `,"power":${r.sensor_potencia}`
  for (const field in sent) {
    if (field.startsWith("sensor_") && !READING_FIELDS.has(field) && sent[field] != null) {
      json += `,${JSON.stringify(field)}:${JSON.stringify(sent[field])}`
    }
  }
  return json === "" ? null : `{${json.slice(1)}}`
}

const DAY_MICROS = 86_400_000_000

/**
 * How far past its receipt a reading's time may lie: a clock a few hours fast, or naive times read in the wrong
 * zone, pass; a time further ahead is a clock gone wrong, whose readings would sit in chunks retention never drops.
 */
export const MAX_AHEAD_MICROS = DAY_MICROS

/**
 * The most UTC days the readings of one payload may span (a year's backlog and more). Each day is a chunk of
 * `telemetry_data` its load writes in one transaction, holding locks on each: 6 000 days in one payload exhausted
 * the database's lock table ("out of shared memory") on every attempt, holding up the worker for minutes.
 */
export const MAX_PAYLOAD_DAYS = 400

/** What a reader of items makes of one item: each reading once checked, then the item's equipment. */
interface ItemBuilder<A> {
  readonly reading: (r: SensorReading, timeMicros: number, value: number | null, status: string | null, sent: Fields) => void
  readonly done: (equipment: Equipment) => A
}

/**
 * Validates the equipment items of a payload (the `index`-th each call) and reads them per contract §1: coercions,
 * fallbacks, defaults, reading times in UTC, each item into what `builder` makes of it. Fails with the path of the
 * first offending field.
 */
const makeItemReader = <A>(options: NormalizeOptions, builder: () => ItemBuilder<A>) => {
  const parseTime = makeTimestampParser(options.timeZone)
  const receivedAt = options.receivedAt * 1000
  const latest = receivedAt + MAX_AHEAD_MICROS
  // The readings of one sampling instant usually share their time text: parse it once.
  let lastText: string | undefined
  let lastTime = 0
  // The UTC days of the payload's readings so far, and the last time counted in them.
  const days = new Set<number>()
  let countedTime = NaN
  // Readings without a time take the receive time, each a microsecond after the one before: two of one sensor
  // would otherwise be one reading twice, and the second dropped as a duplicate.
  let untimed = 0
  const timePath = (index: number, reading: number, r: SensorReading) =>
    `[${index}].sensor[${reading}].${r.sensor_datahora_coleta != null ? "sensor_datahora_coleta" : "timestamp"}`

  /**
   * `offset`: the index in the item's `sensor` of the first reading of `input`, when `input` holds only some of
   * them (a part of a large item), for the paths of errors.
   */
  return (input: unknown, index: number, offset = 0): Either.Either<A, InvalidPayload> => {
    let item = decodeFast(input)
    if (item === undefined) {
      const decoded = decodeItem(input)
      if (Either.isLeft(decoded)) {
        const [issue] = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)
        const where = (issue?.path ?? []).map((key, k, keys) =>
          k === 1 && keys[0] === "sensor" && typeof key === "number" ? key + offset : key
        )
        const path = `[${index}]${formatPath(where)}`
        return Either.left(new InvalidPayload({ message: `${path}: ${issue?.message ?? "invalid"}`, path }))
      }
      item = decoded.right
    }
    const siren = item.equip_sirene_ativa
    const equipment: Equipment = {
      uuid: item.equip_uuid,
      name: text(item.equip_nome),
      location: text(item.equip_local),
      status: STATUSES[item.equip_status?.toLowerCase() ?? ""] ?? "active",
      collectionInterval: Math.round(item.equip_intervalo_coleta ?? 60),
      sirenActive: siren === true || (typeof siren === "string" && SIREN_ON.has(siren.toLowerCase())),
      sirenTime: Math.round(item.equip_sirete_tempo ?? 120)
    }
    const built = builder()
    // As sent: decoding by the schema drops the unknown fields, which the metadata keeps.
    const sent = (input as { readonly sensor: ReadonlyArray<Fields> }).sensor
    for (let i = 0; i < item.sensor.length; i++) {
      const r = item.sensor[i]!
      const at = r.sensor_datahora_coleta ?? r.timestamp
      let time: number
      if (at == null) time = receivedAt + untimed++
      else {
        if (at !== lastText) {
          const parsed = parseTime(at)
          if (Either.isLeft(parsed)) {
            const path = timePath(index, offset + i, r)
            return Either.left(new InvalidPayload({ message: `${path}: ${parsed.left}`, path }))
          }
          if (parsed.right > latest) {
            const path = timePath(index, offset + i, r)
            return Either.left(new InvalidPayload({
              message: `${path}: is more than a day after the payload was received (a clock gone wrong?): ${JSON.stringify(at.slice(0, 64))}`,
              path
            }))
          }
          lastText = at
          lastTime = parsed.right
        }
        time = lastTime
      }
      if (time !== countedTime) {
        const day = Math.floor(time / DAY_MICROS)
        if (!days.has(day)) {
          if (days.size === MAX_PAYLOAD_DAYS) {
            const path = at != null ? timePath(index, offset + i, r) : `[${index}].sensor[${offset + i}]`
            return Either.left(new InvalidPayload({
              message: `${path}: the payload's readings fall on more than ${MAX_PAYLOAD_DAYS} days (UTC); send them in several payloads`,
              path
            }))
          }
          days.add(day)
        }
        countedTime = time
      }
      let value: number | null = r.valor ?? null
      let status: string | null = r.status ?? null
      const telemetry = r.sensor_telemetria
      if (value === null && telemetry != null) {
        if (typeof telemetry === "number") {
          if (!(Math.abs(telemetry) <= MAX_ABS_VALUE)) {
            const path = `[${index}].sensor[${offset + i}].sensor_telemetria`
            return Either.left(new InvalidPayload({ message: `${path}: must be within ±${MAX_ABS_VALUE}`, path }))
          }
          value = telemetry
        } else {
          // A numeric string past the values' range ("1e400") is a status like any other string: refused, it would
          // refuse the whole batch, which a client that resends its queue (Home Assistant's) would send for ever.
          const numeric = DECIMAL.test(telemetry) ? Number(telemetry) : NaN
          if (Math.abs(numeric) <= MAX_ABS_VALUE) value = numeric
          else status ??= telemetry
        }
      }
      built.reading(r, time, value, status, sent[i]!)
    }
    return Either.right(built.done(equipment))
  }
}

/** The items as the database takes them: equipment, sensors (attributes merged) and readings with their metadata. */
export const makeNormalizer = (options: NormalizeOptions) => {
  const keepFrom = (options.keepFrom ?? -Infinity) * 1000
  return makeItemReader<TelemetryItem>(options, () => {
    const sensors = new Map<string, MutableSensor>()
    const readings: Array<Reading> = []
    let expired = 0
    return {
      reading: (r, timeMicros, value, status, sent) => {
        // Readings of one sensor may each carry some of its attributes (an expired one too: only its row is left out).
        const sensor = sensors.get(r.sensor_uuid)
        if (sensor === undefined) sensors.set(r.sensor_uuid, toSensor(r))
        else mergeReading(sensor, r)
        if (timeMicros < keepFrom) {
          expired++
          return
        }
        readings.push({ sensorUuid: r.sensor_uuid, timeMicros, value, status, metadata: toMetadata(r, sent) })
      },
      done: (equipment) => ({ equipment, sensors: Array.from(sensors.values()), readings, ...(expired > 0 ? { expired } : {}) })
    }
  })
}

/** An item's readings counted, every check made: what validating a payload needs, without building them. */
export interface CountedItem {
  readonly readings: number
  readonly continued?: boolean
}

export const makeCounter = (options: NormalizeOptions) =>
  makeItemReader<CountedItem>(options, () => {
    let readings = 0
    return { reading: () => void readings++, done: () => ({ readings }) }
  })
