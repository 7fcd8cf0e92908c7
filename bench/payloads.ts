/**
 * Generated bulk payloads in the seed's format: equipment items of 1 000 readings from 4 sensors each (a
 * temperature with battery metadata, a humidity as a numeric string, a door as a status, a power reading as a
 * number in sensor_telemetria), naive local reading times as the Home Assistant client sends them; about 190 bytes
 * of JSON a reading. Deterministic, so every run and every baseline sees the same rows.
 */
import { Stream } from "effect"
import { createHash } from "node:crypto"
import { Readable } from "node:stream"
import { createGzip } from "node:zlib"

export interface PayloadSpec {
  readonly readings: number
  /** Prefix of the equipment uuids: payloads with different prefixes touch different equipments. */
  readonly prefix: string
  /** Time of the newest readings (epoch ms); the readings of each sensor are spread over `span` before it. */
  readonly end: number
  readonly span: number
}

export const READINGS_PER_ITEM = 1000
const SENSORS = 4
const EQUIPMENTS = 200

const naive = (ms: number) => new Date(ms).toISOString().slice(0, 19)

/** A deterministic pseudo-random integer in [0, 2^32) for `n` (a 32-bit mix), so values do not repeat in patterns. */
const mix = (n: number): number => {
  let h = Math.imul(n ^ 0x9e3779b9, 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/** A UUID-shaped identity for `n`, as devices send them. */
const uuid = (n: number): string => {
  const hex = [mix(n), mix(n + 1e6), mix(n + 2e6), mix(n + 3e6)].map((x) => x.toString(16).padStart(8, "0")).join("")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`
}

const reading = (equipment: string, kind: number, n: number, time: string): string => {
  const random = mix(n)
  const wave = random % 10_000
  switch (kind) {
    case 0:
      return `{"sensor_uuid":"${equipment}-temp","sensor_nome":"Temperatura","sensor_tipo":"temperature",` +
        `"sensor_unidade":"°C","valor":${(-22 + wave / 2500).toFixed(2)},"sensor_datahora_coleta":"${time}",` +
        `"sensor_bateria_pct":${random % 101},"sensor_sinal_rssi":${-40 - (random % 53)}}`
    case 1:
      return `{"sensor_uuid":"${equipment}-hum","sensor_nome":"Umidade","sensor_tipo":"humidity","sensor_unidade":"%",` +
        `"valor":null,"sensor_telemetria":"${(40 + wave / 500).toFixed(1)}","sensor_datahora_coleta":"${time}"}`
    case 2:
      return `{"sensor_uuid":"${equipment}-door","sensor_nome":"Porta","tipo":"door",` +
        `"sensor_telemetria":"${random % 7 === 0 ? "open" : "closed"}","sensor_datahora_coleta":"${time}"}`
    default:
      return `{"sensor_uuid":"${equipment}-power","sensor_nome":"Consumo","sensor_tipo":"power","sensor_unidade":"W",` +
        `"sensor_telemetria":${(120 + wave / 100).toFixed(2)},"status":"ok","sensor_datahora_coleta":"${time}"}`
  }
}

/**
 * The payload's JSON, one equipment item a chunk (~190 kB). Items go round the equipments; each item carries the
 * next readings of its equipment's sensors, so the readings of a sensor are evenly spaced and never repeat.
 */
export function* payloadChunks(spec: PayloadSpec): Generator<Buffer> {
  const items = Math.ceil(spec.readings / READINGS_PER_ITEM)
  const equipments = Math.min(EQUIPMENTS, items)
  const perSensor = Math.ceil(spec.readings / (equipments * SENSORS))
  const step = Math.max(1, Math.floor(spec.span / perSensor))
  const start = spec.end - perSensor * step
  let left = spec.readings
  for (let i = 0; i < items; i++) {
    const e = i % equipments
    const equipment = `${spec.prefix}-${uuid(e)}`
    const round = Math.floor(i / equipments) * (READINGS_PER_ITEM / SENSORS)
    const count = Math.min(READINGS_PER_ITEM, left)
    left -= count
    const parts: Array<string> = []
    for (let j = 0; j < count; j++) {
      const n = round + Math.floor(j / SENSORS)
      // Each sensor samples a few seconds after the last, as clocks drift.
      const id = n * SENSORS * equipments + e * SENSORS + (j % SENSORS)
      parts.push(reading(equipment, j % SENSORS, id, naive(start + n * step + (mix(id) % 5000))))
    }
    const item = `{"equip_uuid":"${equipment}","equip_nome":"Freezer ${e}","equip_local":"Loja ${e % 17}",` +
      `"equip_status":"ativo","equip_intervalo_coleta":"60","equip_sirene_ativa":"SIM","equip_sirete_tempo":120,` +
      `"sensor":[${parts.join(",")}]}`
    yield Buffer.from(`${i === 0 ? "[" : ","}${item}${i === items - 1 ? "]" : ""}`)
  }
}

/** The payload as a byte stream, generated as it is read. */
export const payloadStream = (spec: PayloadSpec): Stream.Stream<Uint8Array> =>
  Stream.suspend(() => Stream.fromIterable(payloadChunks(spec)))

/**
 * The payload gzip-compressed (zlib's default level 6, as clients send it), as a Node stream; `facts` tells the
 * JSON's size and SHA-256 once the stream ended.
 */
export const gzippedPayload = (spec: PayloadSpec) => {
  const hash = createHash("sha256")
  let bytes = 0
  function* counted() {
    for (const chunk of payloadChunks(spec)) {
      bytes += chunk.length
      hash.update(chunk)
      yield chunk
    }
  }
  return {
    stream: Readable.from(counted()).pipe(createGzip({ level: 6 })),
    facts: () => ({ bytes, sha256: hash.digest("hex") })
  }
}

/** The payload in one buffer (for the ingest benchmark's 10 MB bodies). */
export const payloadBuffer = (spec: PayloadSpec): Buffer => Buffer.concat(Array.from(payloadChunks(spec)))

/** Readings that make a payload of about `bytes` bytes of JSON. */
export const readingsFor = (bytes: number): number => {
  const sample = payloadBuffer({ readings: READINGS_PER_ITEM, prefix: "size-probe", end: Date.now(), span: 86_400_000 })
  return Math.round((bytes / sample.length) * READINGS_PER_ITEM)
}
