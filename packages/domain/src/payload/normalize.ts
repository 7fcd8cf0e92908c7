import { Either, ParseResult, Schema } from "effect"
import { InvalidPayload } from "../errors.js"
import { DECIMAL, EquipmentItem, MAX_ABS_VALUE, type SensorReading } from "./Payload.js"
import { type Equipment, type EquipmentStatus, mergeLatest, type Reading, type Sensor, type TelemetryItem } from "./Telemetry.js"
import { makeTimestampParser } from "./timestamps.js"

export interface NormalizeOptions {
  /** Zone of naive reading times (contract: DEFAULT_TIMEZONE, default UTC). */
  readonly timeZone: string
  /** Reading time when a reading has none: when the payload was received. */
  readonly receivedAt: number
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

const text = (value: string | null | undefined): string | null => value ?? null

const toSensor = (r: SensorReading): Sensor => ({
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

const toMetadata = (r: SensorReading): string | null => {
  const meta: Record<string, number> = {}
  if (r.sensor_bateria_pct != null) meta.battery = r.sensor_bateria_pct
  if (r.sensor_sinal_rssi != null) meta.rssi = r.sensor_sinal_rssi
  if (r.sensor_sinal_lqi != null) meta.lqi = r.sensor_sinal_lqi
  if (r.sensor_voltagem_bateria != null) meta.battery_voltage = r.sensor_voltagem_bateria
  for (const _ in meta) return JSON.stringify(meta)
  return null
}

/**
 * Validates one equipment item of a payload (the `index`-th) and normalizes it per contract §1: coercions,
 * fallbacks, defaults, reading times in UTC. Fails with the path of the first offending field.
 */
export const makeNormalizer = (options: NormalizeOptions) => {
  const parseTime = makeTimestampParser(options.timeZone)

  return (input: unknown, index: number): Either.Either<TelemetryItem, InvalidPayload> => {
    const decoded = decodeItem(input)
    if (Either.isLeft(decoded)) {
      const [issue] = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)
      const path = `[${index}]${formatPath(issue?.path ?? [])}`
      return Either.left(new InvalidPayload({ message: `${path}: ${issue?.message ?? "invalid"}`, path }))
    }
    const item = decoded.right
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
    const sensors = new Map<string, Sensor>()
    const readings: Array<Reading> = []
    for (let i = 0; i < item.sensor.length; i++) {
      const r = item.sensor[i]!
      const at = r.sensor_datahora_coleta ?? r.timestamp
      let time = options.receivedAt
      if (at != null) {
        const parsed = parseTime(at)
        if (Either.isLeft(parsed)) {
          const field = r.sensor_datahora_coleta != null ? "sensor_datahora_coleta" : "timestamp"
          const path = `[${index}].sensor[${i}].${field}`
          return Either.left(new InvalidPayload({ message: `${path}: ${parsed.left}`, path }))
        }
        time = parsed.right
      }
      let value: number | null = r.valor ?? null
      let status: string | null = r.status ?? null
      const telemetry = r.sensor_telemetria
      if (value === null && telemetry != null) {
        const numeric = typeof telemetry === "number" ? telemetry : DECIMAL.test(telemetry) ? Number(telemetry) : NaN
        if (Math.abs(numeric) > MAX_ABS_VALUE) {
          const path = `[${index}].sensor[${i}].sensor_telemetria`
          return Either.left(new InvalidPayload({ message: `${path}: must be within ±${MAX_ABS_VALUE}`, path }))
        }
        if (Number.isFinite(numeric)) value = numeric
        else if (typeof telemetry === "string") status ??= telemetry
      }
      // Readings of one sensor may each carry some of its attributes.
      sensors.set(r.sensor_uuid, mergeLatest(sensors.get(r.sensor_uuid), toSensor(r)))
      readings.push({ sensorUuid: r.sensor_uuid, time, value, status, metadata: toMetadata(r) })
    }
    return Either.right({ equipment, sensors: Array.from(sensors.values()), readings })
  }
}
