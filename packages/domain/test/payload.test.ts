import { describe, expect, it } from "@effect/vitest"
import { gzipSync } from "node:zlib"
import { Chunk, Effect, Either, FastCheck as fc, Schema, Stream } from "effect"
import { InvalidPayload, PayloadTooLarge } from "../src/errors.js"
import { limitBytes } from "../src/payload/bytes.js"
import { makeNormalizer } from "../src/payload/normalize.js"
import { EquipmentItem, SensorReading } from "../src/payload/Payload.js"
import { countPayload, decodePayload } from "../src/payload/PayloadDecoder.js"
import type { TelemetryItem } from "../src/payload/Telemetry.js"
import { makeTimestampParser } from "../src/payload/timestamps.js"
import { chunksOf, concat, piecesOf, utf8 } from "./support/bytes.js"

const RECEIVED_AT = Date.parse("2026-05-01T12:00:00.000Z")
/** Epoch microseconds as ISO-8601 with six fractional digits. */
const isoMicros = (us: number): string =>
  new Date(Math.floor(us / 1000)).toISOString().replace(/Z$/, `${String(us % 1000).padStart(3, "0")}Z`)

// ---------------------------------------------------------------------------------------------------------------
// normalize
// ---------------------------------------------------------------------------------------------------------------

/** Items of a payload received at RECEIVED_AT; each call a payload of its own. */
const payloadReader = () => makeNormalizer({ timeZone: "UTC", receivedAt: RECEIVED_AT })
const normalize = (input: unknown, index: number) => payloadReader()(input, index)

/** An equipment item with one minimal reading, with `fields` overriding or adding top-level fields. */
const equipment = (fields: Record<string, unknown> = {}): Record<string, unknown> => ({
  equip_uuid: "eq-1",
  sensor: [{ sensor_uuid: "s-1" }],
  ...fields
})
/** An equipment item with the given readings. */
const withReadings = (...readings: Array<Record<string, unknown>>) => equipment({ sensor: readings })

const ok = (input: unknown, index = 0): TelemetryItem => {
  const result = normalize(input, index)
  if (Either.isLeft(result)) throw new Error(`expected success, got ${result.left.message}`)
  return result.right
}
const fail = (input: unknown, index = 0): InvalidPayload => {
  const result = normalize(input, index)
  if (Either.isRight(result)) throw new Error(`expected InvalidPayload, got ${JSON.stringify(result.right)}`)
  expect(result.left._tag).toBe("InvalidPayload")
  return result.left
}
const firstReading = (input: unknown) => {
  const reading = ok(input).readings[0]
  if (reading === undefined) throw new Error("no reading")
  return reading
}

describe("normalize", () => {
  it("maps equip_status case-insensitively, anything else to active", () => {
    const cases: Array<[string | undefined, string]> = [
      ["ativo", "active"],
      ["ACTIVE", "active"],
      ["Inativo", "inactive"],
      ["inactive", "inactive"],
      ["bloqueado", "blocked"],
      ["blocked", "blocked"],
      ["manutencao", "active"],
      [undefined, "active"]
    ]
    for (const [status, expected] of cases) {
      const input = status === undefined ? equipment() : equipment({ equip_status: status })
      expect(ok(input).equipment.status, `equip_status ${status}`).toBe(expected)
    }
  })

  it("reads the whole equipment record, with defaults 60 and 120", () => {
    expect(ok(equipment({ equip_nome: "Freezer 1", equip_local: "Cozinha" })).equipment).toEqual({
      uuid: "eq-1",
      name: "Freezer 1",
      location: "Cozinha",
      status: "active",
      collectionInterval: 60,
      sirenActive: false,
      sirenTime: 120
    })
  })

  it("accepts equip_intervalo_coleta and equip_sirete_tempo as numbers or numeric strings", () => {
    expect(ok(equipment({ equip_intervalo_coleta: 30, equip_sirete_tempo: 45 })).equipment).toMatchObject({
      collectionInterval: 30,
      sirenTime: 45
    })
    expect(ok(equipment({ equip_intervalo_coleta: "30", equip_sirete_tempo: "90" })).equipment).toMatchObject({
      collectionInterval: 30,
      sirenTime: 90
    })
  })

  it("rejects a non-numeric equip_intervalo_coleta with its path", () => {
    const error = fail(equipment({ equip_intervalo_coleta: "thirty" }))
    expect(error.path).toBe("[0].equip_intervalo_coleta")
    expect(error.message).toMatch(/^\[0\]\.equip_intervalo_coleta: /)
    for (const notDecimal of ["0x1F", "Infinity", "", " "]) {
      expect(fail(equipment({ equip_intervalo_coleta: notDecimal })).path, notDecimal).toBe("[0].equip_intervalo_coleta")
    }
  })

  it("refuses intervals and siren times that are not a 4-byte number of seconds", () => {
    for (const seconds of [-1, 1e12, "2147483648", 2147483647.6]) {
      expect(fail(equipment({ equip_intervalo_coleta: seconds })).path, String(seconds)).toBe("[0].equip_intervalo_coleta")
      expect(fail(equipment({ equip_sirete_tempo: seconds })).path, String(seconds)).toBe("[0].equip_sirete_tempo")
    }
    expect(ok(equipment({ equip_intervalo_coleta: "2147483647", equip_sirete_tempo: 0 })).equipment)
      .toMatchObject({ collectionInterval: 2147483647, sirenTime: 0 })
  })

  it("turns the siren on for \"SIM\", \"sim\", \"true\" and true only", () => {
    for (const on of ["SIM", "sim", "true", "TRUE", true]) {
      expect(ok(equipment({ equip_sirene_ativa: on })).equipment.sirenActive, `${on}`).toBe(true)
    }
    for (const off of ["NAO", "nao", "false", false, null]) {
      expect(ok(equipment({ equip_sirene_ativa: off })).equipment.sirenActive, `${off}`).toBe(false)
    }
    expect(ok(equipment()).equipment.sirenActive).toBe(false)
  })

  it("treats nulls like absent fields", () => {
    const item = ok({
      equip_uuid: "eq-1",
      equip_nome: null,
      equip_local: null,
      equip_status: null,
      equip_intervalo_coleta: null,
      equip_sirene_ativa: null,
      equip_sirete_tempo: null,
      sensor: [{
        sensor_uuid: "s-1",
        sensor_nome: null,
        sensor_tipo: null,
        tipo: null,
        valor: null,
        sensor_telemetria: null,
        status: null,
        sensor_datahora_coleta: null,
        timestamp: null,
        sensor_bateria_pct: null,
        sensor_via_hub: null
      }]
    })
    expect(item.equipment).toEqual({
      uuid: "eq-1",
      name: null,
      location: null,
      status: "active",
      collectionInterval: 60,
      sirenActive: false,
      sirenTime: 120
    })
    expect(item.readings).toEqual([{ sensorUuid: "s-1", timeMicros: RECEIVED_AT * 1000, value: null, status: null, metadata: null }])
    expect(item.sensors[0]?.type).toBeNull()
  })

  it("ignores unknown fields", () => {
    const item = ok({
      equip_uuid: "eq-1",
      firmware_do_hub: "2.1",
      extra: { nested: [1, 2] },
      sensor: [{ sensor_uuid: "s-1", valor: 4, campo_novo: "x" }]
    })
    expect(item.equipment.uuid).toBe("eq-1")
    expect(item.readings[0]?.value).toBe(4)
    expect(item.equipment).not.toHaveProperty("extra")
  })

  it("reads the sensor attributes of a reading", () => {
    const item = ok(withReadings({
      sensor_uuid: "s-1",
      sensor_nome: "Temperatura",
      sensor_tipo: "temperature",
      sensor_unidade: "°C",
      sensor_status: "online",
      sensor_fabricante: "Sonoff",
      sensor_modelo: "SNZB-02",
      sensor_firmware: "1.0.3",
      sensor_id_hardware: "0x00124b",
      sensor_via_hub: true,
      valor: 4.5
    }))
    expect(item.sensors).toEqual([{
      uuid: "s-1",
      name: "Temperatura",
      type: "temperature",
      unit: "°C",
      status: "online",
      manufacturer: "Sonoff",
      model: "SNZB-02",
      firmware: "1.0.3",
      hardwareId: "0x00124b",
      viaHub: "true"
    }])
  })

  it("falls back from sensor_tipo to tipo, else null (stored later as unknown)", () => {
    expect(ok(withReadings({ sensor_uuid: "s", sensor_tipo: "door", tipo: "other" })).sensors[0]?.type).toBe("door")
    expect(ok(withReadings({ sensor_uuid: "s", tipo: "door" })).sensors[0]?.type).toBe("door")
    expect(ok(withReadings({ sensor_uuid: "s", sensor_tipo: null, tipo: "door" })).sensors[0]?.type).toBe("door")
    expect(ok(withReadings({ sensor_uuid: "s" })).sensors[0]?.type).toBeNull()
  })

  it("gives valor precedence over sensor_telemetria", () => {
    expect(firstReading(withReadings({ sensor_uuid: "s", valor: 3.25, sensor_telemetria: "7" }))).toMatchObject({
      value: 3.25,
      status: null
    })
    expect(firstReading(withReadings({ sensor_uuid: "s", valor: 0, sensor_telemetria: 9 })).value).toBe(0)
  })

  it("takes a numeric sensor_telemetria (number or string) as the value when valor is null or absent", () => {
    expect(firstReading(withReadings({ sensor_uuid: "s", valor: null, sensor_telemetria: "-18.5" }))).toMatchObject({
      value: -18.5,
      status: null
    })
    expect(firstReading(withReadings({ sensor_uuid: "s", sensor_telemetria: 21 })).value).toBe(21)
  })

  it("takes a non-numeric sensor_telemetria as the reading status", () => {
    expect(firstReading(withReadings({ sensor_uuid: "s", sensor_telemetria: "open" }))).toMatchObject({
      value: null,
      status: "open"
    })
    expect(firstReading(withReadings({ sensor_uuid: "s", sensor_telemetria: "" }))).toMatchObject({
      value: null,
      status: ""
    })
    // Only decimal strings are numbers: hex is a status like any other word.
    expect(firstReading(withReadings({ sensor_uuid: "s", sensor_telemetria: "0x1F" }))).toMatchObject({
      value: null,
      status: "0x1F"
    })
    // So is a decimal string past the values' range (±1e100), rather than a refusal of the whole batch.
    for (const text of ["1e400", "-1e101"]) {
      expect(firstReading(withReadings({ sensor_uuid: "s", sensor_telemetria: text }))).toMatchObject({ value: null, status: text })
    }
  })

  it("lets an explicit status win over a non-numeric sensor_telemetria", () => {
    expect(firstReading(withReadings({ sensor_uuid: "s", status: "closed", sensor_telemetria: "open" })))
      .toMatchObject({ value: null, status: "closed" })
    expect(firstReading(withReadings({ sensor_uuid: "s", status: "ok", valor: 2 })))
      .toMatchObject({ value: 2, status: "ok" })
  })

  it("builds the metadata JSON from battery, rssi, lqi and voltage", () => {
    const metadata = firstReading(withReadings({
      sensor_uuid: "s",
      sensor_bateria_pct: 87,
      sensor_sinal_rssi: -71,
      sensor_sinal_lqi: 120,
      sensor_voltagem_bateria: 2.9
    })).metadata
    expect(JSON.parse(metadata ?? "null")).toEqual({ battery: 87, rssi: -71, lqi: 120, battery_voltage: 2.9 })
    expect(firstReading(withReadings({ sensor_uuid: "s", sensor_sinal_rssi: -50 })).metadata).toBe("{\"rssi\":-50}")
    expect(firstReading(withReadings({ sensor_uuid: "s", valor: 1 })).metadata).toBeNull()
  })

  it("keeps voltage, current, power and unknown sensor_* fields in the metadata, as the Home Assistant client sends them", () => {
    const metadata = firstReading(withReadings({
      sensor_uuid: "s",
      sensor_telemetria: "230.4",
      sensor_bateria_pct: null,
      sensor_voltagem_bateria: null,
      sensor_voltagem: 230.4,
      sensor_corrente: 0.52,
      sensor_potencia: 119.8,
      sensor_fabricante: "LUMI",
      sensor_nova_medida: "x",
      sensor_extra: { nested: [1, true] },
      sensor_nulo: null,
      campo_novo: 1
    })).metadata
    expect(JSON.parse(metadata ?? "null")).toEqual({
      voltage: 230.4,
      current: 0.52,
      power: 119.8,
      sensor_nova_medida: "x",
      sensor_extra: { nested: [1, true] }
    })
  })

  it("refuses uuids over 128 and texts over 256 characters, with their path", () => {
    expect(ok(equipment({ equip_uuid: "e".repeat(128), sensor: [{ sensor_uuid: "s".repeat(128), sensor_nome: "n".repeat(256) }] }))
      .readings).toHaveLength(1)
    expect(fail(equipment({ equip_uuid: "e".repeat(129) })).path).toBe("[0].equip_uuid")
    expect(fail(withReadings({ sensor_uuid: "s".repeat(129) })).path).toBe("[0].sensor[0].sensor_uuid")
    for (const field of ["sensor_nome", "sensor_tipo", "sensor_unidade", "sensor_status", "sensor_telemetria", "status", "sensor_modelo"]) {
      const refused = fail(withReadings({ sensor_uuid: "s", [field]: "x".repeat(257) }))
      expect(refused.path, field).toBe(`[0].sensor[0].${field}`)
      if (field !== "sensor_telemetria") expect(refused.message, field).toContain("at most 256 characters")
    }
    expect(fail(equipment({ equip_local: "l".repeat(257) })).path).toBe("[0].equip_local")
    // Characters as people count them: an emoji is one, though JavaScript counts two UTF-16 units.
    const emoji = "😀"
    const counted = ok(equipment({
      equip_uuid: emoji.repeat(128),
      equip_nome: `${emoji.repeat(255)}n`,
      sensor: [{ sensor_uuid: `s${emoji.repeat(127)}`, sensor_nome: emoji.repeat(256) }]
    }))
    expect([counted.equipment.uuid, counted.readings[0]?.sensorUuid]).toEqual([emoji.repeat(128), `s${emoji.repeat(127)}`])
    expect(fail(equipment({ equip_uuid: emoji.repeat(129) })).path).toBe("[0].equip_uuid")
    expect(fail(withReadings({ sensor_uuid: "s", sensor_nome: `${emoji.repeat(256)}n` })).message).toContain("at most 256 characters")
    // A leading byte order mark would not read back from the embedded database; inside a text it does.
    expect(fail(equipment({ equip_uuid: "\ufeffeq" })).path).toBe("[0].equip_uuid")
    expect(fail(withReadings({ sensor_uuid: "s", status: "\ufeffok" })).path).toBe("[0].sensor[0].status")
    expect(ok(withReadings({ sensor_uuid: "s", status: "o\ufeffk" })).readings[0]?.status).toBe("o\ufeffk")
  })

  it("uses sensor_datahora_coleta, then timestamp, then the receive time", () => {
    const item = ok(withReadings(
      { sensor_uuid: "a", sensor_datahora_coleta: "2026-04-30T10:00:00Z", timestamp: "2026-01-01T00:00:00Z" },
      { sensor_uuid: "b", timestamp: "2026-04-30T11:00:00Z" },
      { sensor_uuid: "c" }
    ))
    expect(item.readings.map((r) => isoMicros(r.timeMicros))).toEqual([
      "2026-04-30T10:00:00.000000Z",
      "2026-04-30T11:00:00.000000Z",
      isoMicros(RECEIVED_AT * 1000)
    ])
  })

  it("gives readings without a time the receive time, each a microsecond after the one before, across items", () => {
    const reader = payloadReader()
    const times = (item: unknown, index: number) => {
      const read = reader(item, index)
      if (Either.isLeft(read)) throw new Error(read.left.message)
      return read.right.readings.map((r) => r.timeMicros - RECEIVED_AT * 1000)
    }
    expect(times(withReadings({ sensor_uuid: "s", valor: 1 }, { sensor_uuid: "s", valor: 2 }, { sensor_uuid: "t", timestamp: "2026-04-30T11:00:00Z" }), 0))
      .toEqual([0, 1, Date.parse("2026-04-30T11:00:00Z") * 1000 - RECEIVED_AT * 1000])
    expect(times(withReadings({ sensor_uuid: "s", valor: 3 }), 1)).toEqual([2])
  })

  it("reads naive reading times in the configured time zone", () => {
    const saoPaulo = makeNormalizer({ timeZone: "America/Sao_Paulo", receivedAt: RECEIVED_AT })
    const result = saoPaulo(withReadings({ sensor_uuid: "s", sensor_datahora_coleta: "2026-04-30T10:00:00" }), 0)
    expect(Either.map(result, (item) => item.readings.map((r) => isoMicros(r.timeMicros)))).toEqual(
      Either.right(["2026-04-30T13:00:00.000000Z"])
    )
  })

  it("merges the attributes of a sensor seen in several readings (latest non-null wins)", () => {
    const item = ok(withReadings(
      { sensor_uuid: "t", sensor_nome: "Temp", sensor_tipo: "temperature", sensor_modelo: "v1", valor: 1 },
      { sensor_uuid: "d", tipo: "door", sensor_telemetria: "open" },
      { sensor_uuid: "t", sensor_unidade: "°C", sensor_modelo: "v2", sensor_nome: null, valor: 2 },
      { sensor_uuid: "t", sensor_firmware: "1.2", valor: 3 }
    ))
    expect(item.readings.map((r) => [r.sensorUuid, r.value])).toEqual([["t", 1], ["d", null], ["t", 2], ["t", 3]])
    expect(item.sensors).toHaveLength(2)
    expect(item.sensors.find((s) => s.uuid === "t")).toEqual({
      uuid: "t",
      name: "Temp",
      type: "temperature",
      unit: "°C",
      status: null,
      manufacturer: null,
      model: "v2",
      firmware: "1.2",
      hardwareId: null,
      viaHub: null
    })
    expect(item.sensors.find((s) => s.uuid === "d")?.type).toBe("door")
  })

  it("rejects a missing or empty equip_uuid", () => {
    const missing = fail({ sensor: [{ sensor_uuid: "s" }] })
    expect(missing.path).toBe("[0].equip_uuid")
    expect(missing.message).toBe("[0].equip_uuid: is missing")
    expect(fail(equipment({ equip_uuid: "" })).path).toBe("[0].equip_uuid")
    expect(fail(equipment({ equip_uuid: null })).path).toBe("[0].equip_uuid")
  })

  it("rejects an equip_uuid or sensor_uuid of whitespace alone", () => {
    for (const blank of [" ", "   ", "\t\n", "\u00a0", "\u3000 "]) {
      const equipmentError = fail(equipment({ equip_uuid: blank }))
      expect(equipmentError.message, JSON.stringify(blank)).toBe("[0].equip_uuid: must not be blank (whitespace only)")
      expect(fail(withReadings({ sensor_uuid: blank })).path).toBe("[0].sensor[0].sensor_uuid")
    }
    // Whitespace within or around an identity is the client's to choose.
    expect(ok(equipment({ equip_uuid: " freezer 1" })).equipment.uuid).toBe(" freezer 1")
    expect(firstReading(withReadings({ sensor_uuid: "\u00a0t1" })).sensorUuid).toBe("\u00a0t1")
  })

  it("rejects a missing, empty or non-array sensor", () => {
    const empty = fail(equipment({ sensor: [] }))
    expect(empty.path).toBe("[0].sensor")
    expect(empty.message).toBe("[0].sensor: must hold at least one reading")
    expect(fail({ equip_uuid: "eq-1" }).path).toBe("[0].sensor")
    expect(fail(equipment({ sensor: { sensor_uuid: "s" } })).path).toBe("[0].sensor")
  })

  it("rejects a reading without sensor_uuid, with the index of the item it was given", () => {
    const input = withReadings({ sensor_uuid: "s-0" }, { valor: 1 })
    const error = fail(input)
    expect(error.path).toBe("[0].sensor[1].sensor_uuid")
    expect(error.message).toBe("[0].sensor[1].sensor_uuid: is missing")
    expect(fail(input, 3).path).toBe("[3].sensor[1].sensor_uuid")
    expect(fail(withReadings({ sensor_uuid: "" })).path).toBe("[0].sensor[0].sensor_uuid")
  })

  it("rejects wrongly typed fields with their paths", () => {
    const cases: Array<[unknown, string]> = [
      [withReadings({ sensor_uuid: "s", valor: "abc" }), "[0].sensor[0].valor"],
      [withReadings({ sensor_uuid: "s", valor: Infinity }), "[0].sensor[0].valor"],
      [withReadings({ sensor_uuid: "s", valor: 1e200 }), "[0].sensor[0].valor"],
      [withReadings({ sensor_uuid: "s", sensor_telemetria: true }), "[0].sensor[0].sensor_telemetria"],
      [withReadings({ sensor_uuid: "s", sensor_bateria_pct: "87" }), "[0].sensor[0].sensor_bateria_pct"],
      [withReadings({ sensor_uuid: 42 }), "[0].sensor[0].sensor_uuid"],
      [withReadings({ sensor_uuid: "s" }, "not a reading" as never), "[0].sensor[1]"],
      [equipment({ equip_nome: 7 }), "[0].equip_nome"],
      [equipment({ equip_sirene_ativa: 1 }), "[0].equip_sirene_ativa"],
      [null, "[0]"],
      [[equipment()], "[0]"]
    ]
    for (const [input, path] of cases) {
      const error = fail(input)
      expect(error.path, JSON.stringify(input)).toBe(path)
      expect(error.message.startsWith(`${path}: `), error.message).toBe(true)
    }
  })

  it("words its refusals for the field, not the schema: an item or reading that is no object, a value of neither kind", () => {
    expect(fail(null).message).toBe("[0]: must be an object (an equipment item)")
    expect(fail(equipment({ sensor: [1] })).message).toBe("[0].sensor[0]: must be an object (a reading)")
    expect(fail(equipment({ sensor: { sensor_uuid: "s" } })).message).toBe("[0].sensor: must be an array of readings")
    expect(fail(withReadings({ sensor_uuid: "s", sensor_telemetria: "x".repeat(300) })).message).toBe(
      "[0].sensor[0].sensor_telemetria: must be a number within ±1e+100, or a text of at most 256 characters not starting with U+FEFF"
    )
    expect(fail(withReadings({ sensor_uuid: "s", sensor_via_hub: 3 })).message).toBe(
      "[0].sensor[0].sensor_via_hub: must be true, false or a text of at most 256 characters"
    )
  })

  it("reports the offending timestamp field with its path", () => {
    const error = fail(withReadings({ sensor_uuid: "s", sensor_datahora_coleta: "yesterday" }), 2)
    expect(error.path).toBe("[2].sensor[0].sensor_datahora_coleta")
    expect(error.message).toMatch(/^\[2\]\.sensor\[0\]\.sensor_datahora_coleta: is not an ISO-8601 date-time/)
    const fallback = fail(withReadings({ sensor_uuid: "a" }, { sensor_uuid: "s", timestamp: "2026-02-30T10:00:00" }))
    expect(fallback.path).toBe("[0].sensor[1].timestamp")
  })

  it("refuses a reading more than a day after the payload was received, with its path", () => {
    const dayAfter = RECEIVED_AT + 86_400_000
    expect(firstReading(withReadings({ sensor_uuid: "s", sensor_datahora_coleta: new Date(dayAfter).toISOString() })).timeMicros)
      .toBe(dayAfter * 1000)
    const late = new Date(dayAfter + 1).toISOString()
    const error = fail(withReadings({ sensor_uuid: "s" }, { sensor_uuid: "s", timestamp: late }), 1)
    expect(error.path).toBe("[1].sensor[1].timestamp")
    expect(error.message).toBe(`[1].sensor[1].timestamp: is more than a day after the payload was received (a clock gone wrong?): "${late}"`)
  })

  it("refuses a payload whose readings fall on more than 400 UTC days, at the reading of the 401st day, across its items", () => {
    const onDays = (from: number, count: number) =>
      withReadings(...Array.from({ length: count }, (_, d) => ({
        sensor_uuid: "s",
        // Two readings a day, and the receive time's day among them.
        sensor_datahora_coleta: new Date(RECEIVED_AT - (from + Math.floor(d / 2)) * 86_400_000 - (d % 2) * 1000).toISOString()
      })))
    expect(Either.isRight(payloadReader()(onDays(0, 800), 0))).toBe(true)
    const reader = payloadReader()
    expect(Either.isRight(reader(onDays(0, 600), 0))).toBe(true)
    const more = reader(onDays(300, 201), 1)
    expect(Either.isLeft(more) && more.left.path).toBe("[1].sensor[200].sensor_datahora_coleta")
    expect(Either.isLeft(more) && more.left.message).toMatch(/fall on more than 400 days \(UTC\); send them in several payloads$/)
  })

  it("accepts exactly what the EquipmentItem schema accepts, and reads it alike (random items)", () => {
    // The reference: the schema decodes, then the normalizer reads what it decoded (always a valid item).
    const decodeItem = Schema.decodeUnknownEither(EquipmentItem, { errors: "first" })
    const reference = (input: unknown) =>
      Either.match(decodeItem(input), { onLeft: () => "invalid", onRight: (decoded) => normalize(decoded, 0) })
    let seed = 7
    const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000)
    const pick = <A>(xs: ReadonlyArray<A>): A => xs[Math.floor(random() * xs.length)]!
    const values = [undefined, null, "", "x", "open", "30", " 1e3 ", "-18.5", "0x1F", "Infinity", "1e400", 0, -1.5,
      1e100, -1e100, 1e101, Infinity, NaN, true, false, [], {}, "2026-04-30T10:00:00", "SIM"]
    // Mostly values the field takes, so that most items are valid and the few bad fields stand out.
    const fitting = (fields: Schema.Struct.Fields) =>
      Object.fromEntries(Object.entries(fields).map(([name, field]) => {
        const decode = Schema.decodeUnknownEither(Schema.Struct({ [name]: field }) as unknown as Schema.Schema<unknown>)
        return [name, values.filter((value) => Either.isRight(decode({ [name]: value })))]
      }))
    const fieldsOf = (fields: Schema.Struct.Fields, required: string) => {
      const pools = fitting(fields)
      return () => {
        const out: Record<string, unknown> = { [required]: "id" }
        for (const name of Object.keys(fields)) {
          if (name !== required && name !== "sensor" && random() < 0.3) out[name] = pick(pools[name]!)
        }
        return out
      }
    }
    const readingOf = fieldsOf(SensorReading.fields, "sensor_uuid")
    const equipmentOf = fieldsOf(EquipmentItem.fields, "equip_uuid")
    const readingNames = Object.keys(SensorReading.fields)
    const equipmentNames = Object.keys(EquipmentItem.fields)
    let valid = 0
    for (let round = 0; round < 5000; round++) {
      // A valid item, then in most of them one field, anywhere, set to any value (or deleted).
      const readings: Array<unknown> = Array.from({ length: 1 + Math.floor(random() * 3) }, readingOf)
      const item: Record<string, unknown> = { ...equipmentOf(), sensor: readings }
      const r = random()
      if (r < 0.3) item[pick(equipmentNames)] = pick(values)
      else if (r < 0.35) readings[Math.floor(random() * readings.length)] = pick(values)
      else if (r < 0.8) (readings[Math.floor(random() * readings.length)] as Record<string, unknown>)[pick(readingNames)] = pick(values)
      const expected = reference(item)
      const actual = normalize(item, 0)
      if (expected === "invalid") {
        expect(Either.isLeft(actual), JSON.stringify(item)).toBe(true)
      } else {
        expect(actual, JSON.stringify(item)).toEqual(expected)
        valid++
      }
    }
    expect(valid).toBeGreaterThan(1000)
  })
})

// ---------------------------------------------------------------------------------------------------------------
// timestamps
// ---------------------------------------------------------------------------------------------------------------

const parseIn = (timeZone: string) => {
  const parse = makeTimestampParser(timeZone)
  return (text: string): string => {
    const result = parse(text)
    if (Either.isLeft(result)) throw new Error(`${text}: ${result.left}`)
    return isoMicros(result.right)
  }
}
const utc = parseIn("UTC")

describe("timestamps", () => {
  it("reads Z and offsets as instants", () => {
    expect(utc("2026-04-30T10:15:30Z")).toBe("2026-04-30T10:15:30.000000Z")
    expect(utc("2026-04-30T10:15:30z")).toBe("2026-04-30T10:15:30.000000Z")
    // RFC 3339 allows a lowercase separator too.
    expect(utc("2026-04-30t10:15:30z")).toBe("2026-04-30T10:15:30.000000Z")
    expect(utc("2026-04-30t10:15:30")).toBe("2026-04-30T10:15:30.000000Z")
    expect(utc("2026-04-30T10:15:30+02:00")).toBe("2026-04-30T08:15:30.000000Z")
    expect(utc("2026-04-30T10:15:30-0300")).toBe("2026-04-30T13:15:30.000000Z")
    expect(utc("2026-04-30T10:15:30+05:30")).toBe("2026-04-30T04:45:30.000000Z")
    expect(utc("2026-04-30T23:00:00-03:00")).toBe("2026-05-01T02:00:00.000000Z")
  })

  it("rejects offsets that are not offsets", () => {
    for (const text of ["2026-04-30T10:15:30+99:99", "2026-04-30T10:15:30+24:00", "2026-04-30T10:15:30-0360"]) {
      expect(makeTimestampParser("UTC")(text), text).toEqual(Either.left(expect.stringContaining("invalid UTC offset")))
    }
  })

  it("ignores the zone setting for times with Z or an offset", () => {
    expect(parseIn("Europe/Berlin")("2026-04-30T10:00:00Z")).toBe("2026-04-30T10:00:00.000000Z")
    expect(parseIn("America/Sao_Paulo")("2026-04-30T10:00:00+01:00")).toBe("2026-04-30T09:00:00.000000Z")
  })

  it("reads fractional seconds to the microsecond", () => {
    expect(utc("2026-04-30T10:15:30.123000Z")).toBe("2026-04-30T10:15:30.123000Z")
    expect(utc("2026-04-30T10:15:30.5Z")).toBe("2026-04-30T10:15:30.500000Z")
    expect(utc("2026-04-30T10:15:30.987654321+01:00")).toBe("2026-04-30T09:15:30.987654Z")
    expect(utc("2026-12-03T00:15:19.700760")).toBe("2026-12-03T00:15:19.700760Z")
    expect(utc("2026-04-30T10:15:30,25Z")).toBe("2026-04-30T10:15:30.250000Z")
  })

  it("reads naive times in UTC, with a space separator or without seconds", () => {
    expect(utc("2026-04-30T10:15:30")).toBe("2026-04-30T10:15:30.000000Z")
    expect(utc("2026-04-30 10:15:30")).toBe("2026-04-30T10:15:30.000000Z")
    expect(utc("2026-04-30T10:15")).toBe("2026-04-30T10:15:00.000000Z")
  })

  it("reads naive times in America/Sao_Paulo as UTC-3 all year", () => {
    const saoPaulo = parseIn("America/Sao_Paulo")
    expect(saoPaulo("2026-01-15T23:30:00")).toBe("2026-01-16T02:30:00.000000Z")
    expect(saoPaulo("2026-07-15T08:00:00.250")).toBe("2026-07-15T11:00:00.250000Z")
  })

  it("reads a naive time in the DST gap as if the clocks had not changed yet, and one in the repeated hour as its first instant", () => {
    const newYork = parseIn("America/New_York")
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT; 02:30 never shows on a clock there.
    expect(newYork("2026-03-08T01:59:59")).toBe("2026-03-08T06:59:59.000000Z")
    expect(newYork("2026-03-08T02:30:00")).toBe("2026-03-08T07:30:00.000000Z") // = 03:30 EDT
    expect(newYork("2026-03-08T03:00:00")).toBe("2026-03-08T07:00:00.000000Z")
    // 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 shows twice, first in EDT.
    expect(newYork("2026-11-01T00:59:59")).toBe("2026-11-01T04:59:59.000000Z")
    expect(newYork("2026-11-01T01:30:00.250000")).toBe("2026-11-01T05:30:00.250000Z")
    expect(newYork("2026-11-01T02:00:00")).toBe("2026-11-01T07:00:00.000000Z")
    // A half-hour shift (Lord Howe Island: 02:00 → 02:30 on 2026-10-04).
    expect(parseIn("Australia/Lord_Howe")("2026-10-04T02:15:00")).toBe("2026-10-03T15:45:00.000000Z")
  })

  it("reads naive times in Europe/Berlin across the DST changes", () => {
    const berlin = parseIn("Europe/Berlin")
    expect(berlin("2026-01-15T12:00:00")).toBe("2026-01-15T11:00:00.000000Z")
    expect(berlin("2026-03-29T01:30:00")).toBe("2026-03-29T00:30:00.000000Z") // CET, +01:00
    expect(berlin("2026-03-29T03:30:00")).toBe("2026-03-29T01:30:00.000000Z") // CEST, +02:00
    expect(berlin("2026-07-01T12:00:00")).toBe("2026-07-01T10:00:00.000000Z")
    expect(berlin("2026-10-25T01:30:00")).toBe("2026-10-24T23:30:00.000000Z") // still CEST
    expect(berlin("2026-10-25T03:30:00")).toBe("2026-10-25T02:30:00.000000Z") // CET again
  })

  it("reads a naive time to the second as it reads the same time with a fraction (the two ways of reading one)", () => {
    const start = Date.UTC(2026, 0, 1)
    for (const zone of ["UTC", "America/New_York", "Australia/Lord_Howe"]) {
      const parser = makeTimestampParser(zone)
      // The reason of a refusal, without the text it quotes.
      const parse = (text: string) => Either.mapLeft(parser(text), (reason) => reason.split(":")[0])
      // Every 7 919 s for a year: DST changes of both zones included, every day of every month.
      for (let t = start; t < start + 366 * 86_400_000; t += 7_919_000) {
        const text = new Date(t).toISOString().slice(0, 19)
        expect(parse(text), text).toEqual(parse(`${text}.000`))
        expect(parse(text.replace("T", " ")), text).toEqual(parse(`${text}.000`))
      }
      for (const text of ["2026-02-29T10:00:00", "2028-02-29T10:00:00", "2100-02-29T10:00:00", "2026-04-31T00:00:00",
        "2026-00-10T00:00:00", "2026-12-00T00:00:00", "2026-04-30T24:00:00", "2026-04-30T10:60:00",
        "2026-04-30T10:00:60", "1969-12-31T23:00:00", "0075-01-01T00:00:00"]) {
        expect(parse(text), text).toEqual(parse(`${text}.000`))
      }
    }
  })

  it("rejects an unknown time zone when the parser is made", () => {
    expect(() => makeTimestampParser("Mars/Olympus_Mons")).toThrow(/unknown time zone/)
  })

  it("rejects invalid dates and times", () => {
    const parse = makeTimestampParser("UTC")
    for (const text of ["2026-02-30T10:00:00Z", "2026-02-29T10:00:00", "2026-13-01T00:00:00Z", "2026-04-30T25:00:00"]) {
      expect(parse(text), text).toEqual(Either.left(expect.stringContaining("is not a valid date-time")))
    }
    for (const text of ["yesterday", "", "30/04/2026 10:00", "2026-04-30T10:00:00+2"]) {
      expect(parse(text), text).toEqual(Either.left(expect.stringContaining("is not an ISO-8601 date-time")))
    }
  })

  it("rejects years before 1970 and from 2100 on", () => {
    const parse = makeTimestampParser("UTC")
    expect(Either.isRight(parse("1970-01-01T00:00:00Z"))).toBe(true)
    expect(Either.isRight(parse("2099-12-31T23:59:59.999000Z"))).toBe(true)
    for (const text of ["1969-12-31T23:59:59Z", "1970-01-01T00:30:00+01:00", "2100-01-01T00:00:00Z", "2100-06-01T00:00:00"]) {
      expect(parse(text), text).toEqual(Either.left(expect.stringContaining("is out of range")))
    }
  })

  it("rejects years 0000-0099 rather than reading them as 1900-1999", () => {
    // Date.UTC maps years 0-99 to 1900-1999: "0075" must not become 1975.
    const parse = makeTimestampParser("UTC")
    expect(parse("0075-01-01T00:00:00Z")).toEqual(Either.left(expect.stringContaining("is out of range")))
  })

  it("reports bad times in readings with the field's path", () => {
    for (const text of ["2026-02-30T10:00:00", "2026-04-30T25:00:00", "yesterday", "1969-06-01T00:00:00Z", "2100-01-01T00:00:00Z"]) {
      expect(fail(withReadings({ sensor_uuid: "s", sensor_datahora_coleta: text })).path, text)
        .toBe("[0].sensor[0].sensor_datahora_coleta")
      expect(fail(withReadings({ sensor_uuid: "s", timestamp: text })).path, text).toBe("[0].sensor[0].timestamp")
    }
  })
})

// ---------------------------------------------------------------------------------------------------------------
// PayloadDecoder
// ---------------------------------------------------------------------------------------------------------------

const limits = { maxItems: 100, maxItemBytes: 4096, maxDepth: 8, maxStringBytes: 1024 }
const decoderOptions = { timeZone: "UTC", receivedAt: RECEIVED_AT, ...limits }

/** `text` as a stream of chunks of `size` bytes (by default one chunk). */
const bytesOf = (text: string, size = Infinity): Stream.Stream<Uint8Array> => Stream.fromIterable(piecesOf(utf8(text), size))
const decode = (text: string, options: Partial<typeof decoderOptions> = {}, chunkSize = Infinity) =>
  bytesOf(text, chunkSize).pipe(decodePayload({ ...decoderOptions, ...options }), Stream.runCollect, Effect.map(Chunk.toArray))
const decodeError = (text: string, options: Partial<typeof decoderOptions> = {}) => Effect.flip(decode(text, options))

const payload = JSON.stringify([
  {
    equip_uuid: "freezer-1",
    equip_nome: "Freezer São Paulo",
    equip_status: "ATIVO",
    equip_intervalo_coleta: "30",
    equip_sirene_ativa: "SIM",
    sensor: [
      { sensor_uuid: "t1", sensor_tipo: "temperature", sensor_unidade: "°C", valor: -18.5, sensor_datahora_coleta: "2026-04-30T10:00:00" },
      { sensor_uuid: "d1", tipo: "door", sensor_telemetria: "open", sensor_datahora_coleta: "2026-04-30T10:00:05Z" }
    ]
  },
  {
    equip_uuid: "freezer-2",
    equip_status: "bloqueado",
    sensor: [{ sensor_uuid: "t2", sensor_telemetria: "4.25", sensor_bateria_pct: 90, texto: "\"],[{\\" }]
  },
  { equip_uuid: "freezer-3", sensor: [{ sensor_uuid: "t3", valor: null }] }
], null, 1)

describe("PayloadDecoder", () => {
  it.effect("decodes a multi-item payload split into small chunks", () =>
    Effect.gen(function*() {
      for (const size of [1, 3, 7, 64, Infinity]) {
        const items = yield* decode(payload, { timeZone: "America/Sao_Paulo" }, size)
        expect(items.map((i) => i.equipment.uuid), `chunk size ${size}`).toEqual(["freezer-1", "freezer-2", "freezer-3"])
        const [first, second, third] = items
        expect(first?.equipment).toEqual({
          uuid: "freezer-1",
          name: "Freezer São Paulo",
          location: null,
          status: "active",
          collectionInterval: 30,
          sirenActive: true,
          sirenTime: 120
        })
        expect(first?.readings.map((r) => [r.sensorUuid, isoMicros(r.timeMicros), r.value, r.status])).toEqual([
          ["t1", "2026-04-30T13:00:00.000000Z", -18.5, null],
          ["d1", "2026-04-30T10:00:05.000000Z", null, "open"]
        ])
        expect(first?.sensors.map((s) => [s.uuid, s.type, s.unit])).toEqual([["t1", "temperature", "°C"], ["d1", "door", null]])
        expect(second?.equipment.status).toBe("blocked")
        expect(second?.readings).toEqual([
          { sensorUuid: "t2", timeMicros: RECEIVED_AT * 1000, value: 4.25, status: null, metadata: "{\"battery\":90}" }
        ])
        // The payload's second reading without a time: a microsecond after the first.
        expect(third?.readings).toEqual([{ sensorUuid: "t3", timeMicros: RECEIVED_AT * 1000 + 1, value: null, status: null, metadata: null }])
      }
    }))

  it.effect("rejects an empty array", () =>
    Effect.gen(function*() {
      const error = yield* decodeError(" [ ] ")
      expect(error._tag).toBe("InvalidPayload")
      expect(error.message).toMatch(/at least one/)
    }))

  it.effect("rejects a body that is not an array", () =>
    Effect.gen(function*() {
      for (const body of ["{}", "{\"equip_uuid\":\"e\"}", "\"text\"", ""]) {
        const error = yield* decodeError(body)
        expect(error._tag, body).toBe("InvalidPayload")
        expect(error.message, body).toBe("body must be a JSON array of equipment items")
      }
    }))

  it.effect("tells a gzip body sent without its Content-Encoding", () =>
    Effect.gen(function*() {
      const gzipped = gzipSync(utf8(payload))
      const error = yield* Effect.flip(
        Stream.make(gzipped).pipe(decodePayload(decoderOptions), Stream.runDrain)
      )
      expect(error._tag).toBe("InvalidPayload")
      expect(error.message).toBe(
        "body must be a JSON array of equipment items; it is gzip data: send it with Content-Encoding: gzip"
      )
      // Only a body's first byte tells it: the same byte after whitespace is an ordinary non-array.
      expect((yield* decodeError(" \u001f")).message).toBe("body must be a JSON array of equipment items")
    }))

  it.effect("rejects malformed JSON with the item's path", () =>
    Effect.gen(function*() {
      const good = JSON.stringify(equipment())
      const error = yield* decodeError(`[${good}, ${good}, {"equip_uuid": }]`)
      expect(error._tag).toBe("InvalidPayload")
      expect(error).toMatchObject({ path: "[2]" })
      expect(error.message).toMatch(/^malformed JSON in item \[2\]/)
      expect(yield* decodeError(`[${good} ${good}]`)).toMatchObject({ _tag: "InvalidPayload", path: "[1]" })
    }))

  it.effect("rejects a truncated body", () =>
    Effect.gen(function*() {
      const good = JSON.stringify(equipment())
      for (const body of [`[${good}`, `[${good},`, `[{"equip_uuid":"e","sensor":[`, "["]) {
        const error = yield* decodeError(body)
        expect(error._tag, body).toBe("InvalidPayload")
        expect(error.message, body).toMatch(/^body ends before the JSON array is closed/)
      }
    }))

  it.effect("reports an invalid item with its index in the payload", () =>
    Effect.gen(function*() {
      const body = JSON.stringify([equipment(), equipment(), withReadings({ sensor_uuid: "s" }, { valor: 1 })])
      const error = yield* decodeError(body)
      expect(error).toMatchObject({ _tag: "InvalidPayload", path: "[2].sensor[1].sensor_uuid" })
    }))

  it.effect("accepts maxItems items and rejects more", () =>
    Effect.gen(function*() {
      const three = JSON.stringify([equipment(), equipment(), equipment()])
      expect(yield* decode(three, { maxItems: 3 })).toHaveLength(3)
      const error = yield* decodeError(three, { maxItems: 2 })
      expect(error._tag).toBe("PayloadTooLarge")
      expect(error).toMatchObject({ limit: 2 })
      expect(error.message).toBe("more than 2 equipment items")
    }))

  it.effect("rejects an item over maxItemBytes", () =>
    Effect.gen(function*() {
      const small = JSON.stringify(equipment())
      const big = JSON.stringify(equipment({ equip_nome: "x".repeat(200) }))
      expect(yield* decode(`[${small}]`, { maxItemBytes: small.length })).toHaveLength(1)
      const error = yield* decodeError(`[${small},${big}]`, { maxItemBytes: 200 })
      expect(error._tag).toBe("PayloadTooLarge")
      expect(error).toMatchObject({ limit: 200 })
      expect(error.message).toBe("item [1] is larger than 200 bytes")
    }))

  it.effect("rejects nesting deeper than maxDepth", () =>
    Effect.gen(function*() {
      // array (1) > item (2) > sensor (3) > reading (4) > extra (5) > (6)
      const body = JSON.stringify([withReadings({ sensor_uuid: "s", extra: { deeper: [1] } })])
      expect(yield* decode(body, { maxDepth: 6 })).toHaveLength(1)
      const error = yield* decodeError(body, { maxDepth: 5 })
      expect(error).toMatchObject({ _tag: "InvalidPayload", path: "[0]" })
      expect(error.message).toBe("item [0] is nested deeper than 5 levels")
    }))

  it.effect("rejects a key or a value longer than maxStringBytes with the item's path", () =>
    Effect.gen(function*() {
      const fits = JSON.stringify([equipment({ equip_nome: "x".repeat(64) })])
      expect(yield* decode(fits, { maxStringBytes: 64 })).toHaveLength(1)
      for (const long of [equipment({ equip_nome: "x".repeat(65) }), withReadings({ sensor_uuid: "s", ["k".repeat(65)]: 1 })]) {
        const error = yield* decodeError(JSON.stringify([equipment(), equipment(), long]), { maxStringBytes: 64 })
        expect(error).toMatchObject({ _tag: "InvalidPayload", path: "[2]" })
        expect(error.message).toBe("item [2] has a string longer than 64 bytes")
      }
    }))

  it.effect("rejects number literals that overflow to Infinity", () =>
    Effect.gen(function*() {
      const error = yield* decodeError("[{\"equip_uuid\":\"e\",\"sensor\":[{\"sensor_uuid\":\"s\",\"valor\":1e400}]}]")
      expect(error).toMatchObject({ _tag: "InvalidPayload", path: "[0].sensor[0].valor" })
      const telemetry = yield* decodeError("[{\"equip_uuid\":\"e\",\"sensor\":[{\"sensor_uuid\":\"s\",\"sensor_telemetria\":-1e400}]}]")
      expect(telemetry).toMatchObject({ _tag: "InvalidPayload", path: "[0].sensor[0].sensor_telemetria" })
    }))

  /** Bodies of items of `sizes` readings (one of them, when `large` says, over 1 MiB: read in parts), some faulty. */
  const faultyBodies = (large: boolean) => {
    const item = (i: number, readings: number) =>
      JSON.stringify({
        equip_uuid: `eq-${i}`,
        equip_nome: "Freezer",
        sensor: Array.from({ length: readings }, (_, k) => ({
          sensor_uuid: `s-${k}`,
          valor: k,
          sensor_datahora_coleta: new Date(RECEIVED_AT + k * 1000).toISOString()
        }))
      })
    // What decoding an item finds (a value, its text), and what scanning finds (nesting, a string's size, syntax
    // between items). A chunk may complete items before one its scan refuses: those are decoded first.
    const faults: ReadonlyArray<(t: string) => string> = [
      (t) => t.replace(`"valor":0,`, `"valor":"x",`),
      (t) => t.replace(`"equip_nome":"Freezer"`, `"equip_nome":"Fre\\u0000ezer"`),
      (t) => t.replace(/\}$/, "]"),
      (t) => t.replace(/\}$/, `,"x":${"[".repeat(20)}${"]".repeat(20)}}`),
      (t) => t.replace(`"Freezer"`, `"${"x".repeat(5000)}"`),
      (t) => `${t} x`
    ]
    return fc.record({
      sizes: fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 8 }),
      large: large ? fc.option(fc.nat(7), { freq: 3 }) : fc.constant(null),
      faults: fc.array(fc.tuple(fc.nat(7), fc.nat(faults.length - 1)), { maxLength: 3 }),
      // Bodies with a large item in chunks of 1 KiB and more: a megabyte byte by byte takes a while.
      chunk: large ? fc.integer({ min: 1024, max: 64 * 1024 }) : fc.integer({ min: 1, max: 4096 })
    }).map((b) => {
      const items = b.sizes.map((n, i) => item(i, b.large === i ? 13_000 : n))
      for (const [at, fault] of b.faults) if (at < items.length) items[at] = faults[fault]!(items[at]!)
      return { text: `[${items.join(",")}]`, chunk: b.chunk }
    })
  }
  const options = { maxStringBytes: 4096, maxItemBytes: 4 * 1024 * 1024 }
  /** What a reader answers: its refusal, or the items (parts of large ones not counted) and readings it read. */
  const answer = <A extends { readonly continued?: boolean }>(
    reading: Stream.Stream<A, InvalidPayload | PayloadTooLarge>,
    readings: (a: A) => number
  ) =>
    Effect.runPromise(reading.pipe(
      Stream.runFold({ items: 0, readings: 0 }, (n, a) => ({
        items: n.items + (a.continued ? 0 : 1),
        readings: n.readings + readings(a)
      })),
      Effect.match({ onFailure: (e) => ({ ...e }), onSuccess: (counts) => counts })
    ))
  const decoded = (text: string, chunk: number) =>
    answer(bytesOf(text, chunk).pipe(decodePayload({ ...decoderOptions, ...options })), (item) => item.readings.length)

  it("refuses the first faulty item, however the body comes in chunks", async () => {
    await fc.assert(
      fc.asyncProperty(faultyBodies(false), async ({ chunk, text }) => {
        expect(await decoded(text, chunk)).toEqual(await decoded(text, Infinity))
      }),
      { numRuns: 400, seed: 20261204 }
    )
  })

  it("counts a body's items and readings as decoding reads them, and refuses it alike (countPayload)", async () => {
    await fc.assert(
      fc.asyncProperty(faultyBodies(true), async ({ chunk, text }) => {
        const counted = await answer(bytesOf(text, chunk).pipe(countPayload({ ...decoderOptions, ...options })), (c) => c.readings)
        expect(counted).toEqual(await decoded(text, chunk))
      }),
      { numRuns: 200, seed: 20261204 }
    )
  })

  it.effect("reads NaN, Infinity and -Infinity, as Python's json.dumps writes them, as null; in strings they stay", () =>
    Effect.gen(function*() {
      const reading = (k: number, valor: string) =>
        `{"sensor_uuid":"s${k}","sensor_nome":"NaN -Infinity \\"NaN\\"","valor":${valor},"sensor_telemetria":"1.5",` +
        `"sensor_bateria_pct":NaN,"sensor_potencia":Infinity,"sensor_voltagem":-Infinity,"sensor_corrente":2}`
      const text = `[{"equip_uuid":"nan","sensor":[${reading(0, "NaN")},${reading(1, "-Infinity")}]}]`
      for (const size of [1, 5, Infinity]) {
        const [item] = yield* decode(text, {}, size)
        expect(item?.readings.map((r) => [r.value, r.metadata])).toEqual([[1.5, "{\"current\":2}"], [1.5, "{\"current\":2}"]])
        expect(item?.sensors[0]?.name).toBe("NaN -Infinity \"NaN\"")
      }
      // Read in parts (over 1 MiB) too.
      const many = Array.from({ length: 6000 }, (_, k) => reading(k % 3, k === 5000 ? "NaN" : String(k))).join(",")
      const large = yield* decode(`[{"equip_uuid":"nan","sensor":[${many}]}]`, { maxItemBytes: 64 * 1024 * 1024 }, 64 * 1024)
      expect(large.flatMap((i) => i.readings).map((r) => r.value)[5000]).toBe(1.5)
      // Anything else still refused, with JSON.parse's own words.
      for (const valor of ["NaNa", "1Infinity", "nan", "+Infinity"]) {
        const error = yield* decodeError(`[{"equip_uuid":"x","sensor":[{"sensor_uuid":"s","valor":${valor}}]}]`)
        expect(error, valor).toMatchObject({ _tag: "InvalidPayload", path: "[0]" })
        expect(error.message, valor).not.toContain("null")
      }
    }))

  it.effect("keeps the source stream's error", () =>
    Effect.gen(function*() {
      const source = Stream.concat(bytesOf("[{\"equip_uuid\":"), Stream.fail("connection reset" as const))
      const error = yield* source.pipe(decodePayload(decoderOptions), Stream.runCollect, Effect.flip)
      expect(error).toBe("connection reset")
    }))

  describe("a large item (over 1 MiB) is read in parts", () => {
    const large = { maxItemBytes: 64 * 1024 * 1024 }
    const readings = (n: number) =>
      Array.from({ length: n }, (_, k) => ({
        sensor_uuid: `s${k % 4}`,
        sensor_nome: `sensor ${k % 4}`,
        valor: k,
        sensor_datahora_coleta: new Date(RECEIVED_AT + k * 1000).toISOString()
      }))
    const many = readings(20_000)

    it.effect("with every reading once, in order, its equipment whole in the last part, counted as one item", () =>
      Effect.gen(function*() {
        const text = JSON.stringify([
          { equip_uuid: "small", sensor: readings(2) },
          { equip_uuid: "big", equip_nome: "Big", sensor: many, equip_status: "inativo" },
          { equip_uuid: "after", sensor: readings(1) }
        ])
        const items = yield* decode(text, large, 64 * 1024)
        const big = items.filter((i) => i.equipment.uuid === "big")
        expect(big.length).toBeGreaterThan(1)
        expect(big.map((i) => i.continued === true)).toEqual(big.map((_, k) => k > 0))
        expect(big.flatMap((i) => i.readings.map((r) => r.value))).toEqual(many.map((r) => r.valor))
        expect(big.at(-1)?.equipment).toMatchObject({ name: "Big", status: "inactive" })
        expect(big.every((i) => i.sensors.length === 4)).toBe(true)
        expect(items.filter((i) => !i.continued).map((i) => i.equipment.uuid)).toEqual(["small", "big", "after"])
      }))

    it.effect("a member the item does not define is ignored alike, small or large, even one that no text could store", () =>
      Effect.gen(function*() {
        const unknown = { note: "a\u0000b", "\ud800": 1 }
        for (const sensor of [readings(3), many]) {
          const items = yield* decode(JSON.stringify([{ equip_uuid: "u", ...unknown, sensor }]), large, 64 * 1024)
          expect(items.reduce((n, i) => n + i.readings.length, 0)).toBe(sensor.length)
          // In a member it defines, both refuse it.
          expect(yield* decodeError(JSON.stringify([{ equip_uuid: "u", equip_nome: "a\u0000b", sensor }]), large))
            .toMatchObject({ _tag: "InvalidPayload", path: "[0].equip_nome" })
        }
      }))

    it.effect("also when the equipment is named after up to 1 MiB of its readings; more do not wait for it (413)", () =>
      Effect.gen(function*() {
        // Under 1 MiB of readings before it, in an item over 1 MiB (read in parts).
        const some = many.slice(0, Math.floor(many.length * 0.4))
        const padding = Array.from({ length: 400 }, () => "p".repeat(1000))
        const items = yield* decode(JSON.stringify([{ sensor: some, equip_uuid: "late", equip_nome: "Late", padding }]), large, 50_000)
        expect(items.length).toBeGreaterThan(1)
        expect(items.every((i) => i.equipment.uuid === "late" && i.equipment.name === "Late")).toBe(true)
        expect(items.reduce((n, i) => n + i.readings.length, 0)).toBe(some.length)
        // Their parsed objects take several times their bytes, for each upload at once: bounded by 1 MiB of JSON.
        expect(yield* decodeError(JSON.stringify([{ sensor: many, equip_uuid: "late" }]), large)).toMatchObject({
          _tag: "PayloadTooLarge",
          message: "item [0] has more than 1048576 bytes of readings before its equip_uuid (a large item names its equip_uuid before its sensor list)"
        })
      }))

    it.effect("of any size when it names its equipment first; what it holds at once is bounded", () =>
      Effect.gen(function*() {
        // Under the ~2.2 MB of `many`: a Home Assistant queue grown past the bound must still load.
        const bound = { maxItemBytes: 1_100_000 }
        const first = yield* decode(JSON.stringify([{ equip_uuid: "first", sensor: many }]), bound, 64 * 1024)
        expect(first.flatMap((i) => i.readings.map((r) => r.value))).toEqual(many.map((r) => r.valor))
        // Named after them, its readings wait for it: bounded (by 1 MiB, under the bound).
        expect(yield* decodeError(JSON.stringify([{ sensor: many, equip_uuid: "late" }]), bound)).toMatchObject({
          _tag: "PayloadTooLarge",
          message: "item [0] has more than 1048576 bytes of readings before its equip_uuid (a large item names its equip_uuid before its sensor list)"
        })
        // One reading, or the equipment fields (a kept name repeated), larger than the bound.
        const wide = Object.fromEntries(Array.from({ length: 1200 }, (_, k) => [`f${k}`, "w".repeat(1000)]))
        const names = Array.from({ length: 1200 }, () => `"equip_nome":"${"n".repeat(1000)}"`).join(",")
        for (
          const text of [
            JSON.stringify([{ equip_uuid: "wide", sensor: [...many, { sensor_uuid: "w", ...wide }] }]),
            `[{"equip_uuid":"names",${names},"sensor":${JSON.stringify(many)}}]`
          ]
        ) {
          expect(yield* decodeError(text, bound)).toMatchObject({
            _tag: "PayloadTooLarge",
            message: "item [0] has equipment fields or a reading larger than 1100000 bytes"
          })
        }
      }))

    it.effect("an invalid reading deep inside is reported with its own path", () =>
      Effect.gen(function*() {
        const bad = readings(20_000).map((r, k) => k === 15_000 ? { ...r, valor: "x" } : r)
        expect(yield* decodeError(JSON.stringify([{ equip_uuid: "bad", sensor: bad }]), large)).toMatchObject({
          _tag: "InvalidPayload",
          path: "[0].sensor[15000].valor"
        })
        const nul = readings(20_000).map((r, k) => k === 17_000 ? { ...r, sensor_nome: "a\u0000" } : r)
        expect(yield* decodeError(JSON.stringify([{ equip_uuid: "nul", sensor: nul }]), large)).toMatchObject({
          _tag: "InvalidPayload",
          path: "[0].sensor[17000].sensor_nome"
        })
      }))

    it.effect("a sensor that is not an array, cut short or with an empty reading is refused", () =>
      Effect.gen(function*() {
        const padding = Array.from({ length: 40 }, () => "z".repeat(40_000))
        for (
          const text of [
            JSON.stringify([{ equip_uuid: "x", padding, sensor: 5 }]),
            `[{"equip_uuid":"x","sensor":${JSON.stringify(many).slice(0, -1)}}]`,
            `[{"equip_uuid":"x","sensor":[,${JSON.stringify(many).slice(1)}}]`
          ]
        ) {
          expect(yield* decodeError(text, large)).toMatchObject({ _tag: "InvalidPayload", path: "[0]" })
        }
      }))

    it.effect("an item naming equip_uuid or sensor twice is refused, small or large, however its bytes come", () =>
      Effect.gen(function*() {
        const small = JSON.stringify(readings(3))
        const big = JSON.stringify(readings(12_000))
        const under = JSON.stringify(readings(8_000))
        const pad = JSON.stringify(Array.from({ length: 400 }, () => "p".repeat(1000)))
        const other = `{"equip_uuid":"other","sensor":${JSON.stringify(readings(1))}}`
        // The second name early (seen before the item is read in parts), late, escaped, or in the second item.
        const bodies = (sensor: string) => [
          [`[{"equip_uuid":"FIRST","sensor":${sensor},"equip_uuid":"SECOND"}]`, "[0].equip_uuid"],
          [`[{"equip_uuid":"FIRST", "equip_uuid" :"SECOND","sensor":${sensor}}]`, "[0].equip_uuid"],
          // Readings before equip_uuid wait for it up to 1 MiB: the large item is made so by a field before them.
          [`[{"pad":${sensor === big ? pad : "[]"},"sensor":${sensor === big ? under : sensor},"equip_uuid":"FIRST","equip_\u0075uid":"SECOND"}]`, "[0].equip_uuid"],
          [`[${other},{"equip_uuid":"x","sensor":${sensor},"equip_nome":"n","sensor":[]}]`, "[1].sensor"],
          [`[{"equip_uuid":"x","sensor":[],"sensor":${sensor}}]`, "[0].sensor"]
        ] as const
        for (const [sensor, chunkSizes] of [[small, [1, 3, 7, Infinity]], [big, [1000, 4093, 64 * 1024, Infinity]]] as const) {
          for (const [text, path] of bodies(sensor)) {
            for (const size of chunkSizes) {
              const error = yield* Effect.flip(decode(text, large, size))
              expect(error, `${path} in ${text.length} bytes, chunks of ${size}`).toEqual(
                new InvalidPayload({ message: `${path}: appears twice in the item`, path })
              )
            }
          }
        }
      }))

    it.effect("while the same names elsewhere — in a reading, a value, a nested object — are no repetition", () =>
      Effect.gen(function*() {
        const nested = `"equip_nome":"sensor","extra":{"equip_uuid":1,"sensor":[]},"more":["sensor","sensor"]`
        for (const n of [3, 12_000]) {
          const sensor = JSON.stringify(readings(n).map((r) => ({ ...r, sensor_equip_uuid: "r", equip_uuid: "r" })))
          const text = `[{"equip_uuid":"one",${nested},"sensor":${sensor},"extra2":{"sensor":1,"equip_uuid":2}}]`
          for (const size of [4093, Infinity]) {
            const items = yield* decode(text, large, size)
            expect(items.every((i) => i.equipment.uuid === "one" && i.equipment.name === "sensor")).toBe(true)
            expect(items.reduce((k, i) => k + i.readings.length, 0)).toBe(n)
          }
        }
      }))
  })
})

// ---------------------------------------------------------------------------------------------------------------
// limitBytes
// ---------------------------------------------------------------------------------------------------------------

describe("limitBytes", () => {
  it.effect("limitBytes passes exactly `limit` bytes", () =>
    Effect.gen(function*() {
      const out = yield* chunksOf(utf8("0123456789"), 3).pipe(limitBytes(10, "body"), Stream.runCollect)
      expect(new TextDecoder().decode(concat(out))).toBe("0123456789")
    }))

  it.effect("limitBytes fails with PayloadTooLarge once the limit is passed, not before", () =>
    Effect.gen(function*() {
      const results = yield* chunksOf(utf8("0123456789A"), 4).pipe(limitBytes(10, "body"), Stream.either, Stream.runCollect)
      const [first, second, third, ...rest] = Chunk.toArray(results)
      expect(rest).toEqual([])
      expect(first).toEqual(Either.right(utf8("0123")))
      expect(second).toEqual(Either.right(utf8("4567")))
      expect(third).toEqual(Either.left(new PayloadTooLarge({ message: "body is larger than 10 bytes", limit: 10 })))
    }))
})
