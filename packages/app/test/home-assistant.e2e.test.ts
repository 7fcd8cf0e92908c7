import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Accounts } from "@telemetry/ingest/auth/Accounts"
import * as SqlAccounts from "@telemetry/ingest/auth/SqlAccounts"
import { bearer, readerToken } from "@telemetry/ingest/testing/auth"
import { send } from "@telemetry/ingest/testing/client"
import * as S3Server from "@telemetry/testbed/S3Server"
import { Context, Duration, Effect, Layer } from "effect"
import { runCli } from "./support/cli.js"
import { type HaItem, type HaReading, makeHaClient, pythonIsoformat } from "@telemetry/testbed/HomeAssistantClient"
import * as LostAnswers from "./support/lostAnswers.js"
import { started, startedIngest, startWorker } from "./support/process.js"
import { embeddedStack, eventually, freePort } from "./support/stack.js"
import { pgClient, runningStandIns, standIns } from "./support/standIns.js"

// Issue 12: the Easy Smart Monitor integration, as it behaves (support/homeAssistant.ts), against the pipeline.
// A home in Berlin records readings through the night the clocks go back (2026-10-25, 03:00 CEST → 02:00 CET), in
// three cycles: the answer to the first is lost on the way back (the server has the readings, the client does not
// know), storage is down for the second, the third resends everything; then a heartbeat.

const TENANT = "casa-berlin"
const DEVICE = { username: "ha-berlin", password: "ha-berlin-password", timeZone: "Europe/Berlin" }

/** Berlin's UTC offsets, in hours, before and after the clocks went back. */
const CEST = 2
const CET = 1
const HOUR = 3_600_000

/** What the pipeline should store for a reading, worked out here from its wall-clock time and the zone's offset. */
interface Expected {
  readonly equipment: string
  readonly sensor: string
  /** UTC, to the microsecond, without a zone: as `to_char(… AT TIME ZONE 'UTC', …US)` prints it. */
  readonly time: string
  readonly value: number | null
  readonly status: string | null
  readonly metadata: Record<string, unknown> | null
}

const utcOf = (local: string, offsetHours: number) => {
  const [seconds, fraction = ""] = local.split(".")
  const instant = new Date(Date.parse(`${seconds}Z`) - offsetHours * HOUR).toISOString().slice(0, 19)
  return `${instant}.${fraction.padEnd(6, "0")}`
}

interface Signal {
  readonly battery?: number
  readonly lqi?: number
  readonly rssi?: number
  readonly batteryVoltage?: number
  readonly voltage?: number
  readonly current?: number
  readonly power?: number
  /** A field the integration may add in a later version. */
  readonly novo?: string | number | null
}

const FREEZER = {
  equip_uuid: "9d1e514c-freezer",
  equip_nome: "Freezer Principal",
  equip_local: "Cozinha",
  equip_status: "ATIVO",
  equip_intervalo_coleta: 60,
  equip_sirene_ativa: "NÃO",
  equip_sirete_tempo: 120
}
const FRIDGE = {
  equip_uuid: "4b7c2e10-geladeira",
  equip_nome: "Geladeira da Copa",
  equip_local: "Copa",
  equip_status: "ATIVO",
  equip_intervalo_coleta: 120,
  equip_sirene_ativa: "SIM",
  equip_sirete_tempo: 90
}

const attributes = (
  uuid: string,
  name: string,
  type: string,
  unit: string | null,
  [manufacturer, model, firmware, hardwareId, viaHub]: readonly [string, string, string, string, boolean]
) => ({
  sensor_uuid: uuid,
  sensor_nome: name,
  sensor_status: "ATIVO",
  sensor_tipo: type,
  sensor_unidade: unit,
  sensor_fabricante: manufacturer,
  sensor_modelo: model,
  sensor_firmware: firmware,
  sensor_id_hardware: hardwareId,
  sensor_via_hub: viaHub
})

const SENSORS = {
  freezerTemp: attributes("79375570-freezer-temp", "Freezer Principal Temperatura", "temperature", "°C", [
    "LUMI", "lumi.weather", "0x0000001b", "00:15:8d:00:04:5a:1b:01", true
  ]),
  freezerDoor: attributes("79375571-freezer-door", "Freezer Principal Porta", "door", null, [
    "LUMI", "lumi.sensor_magnet.aq2", "0x0000000a", "00:15:8d:00:04:5a:1b:02", true
  ]),
  freezerPlug: attributes("79375572-freezer-plug", "Freezer Principal Tomada", "power", "W", [
    "TuYa", "TS011F", "1.0.5", "a4:c1:38:00:11:22:33:44", false
  ]),
  fridgeTemp: attributes("5e0a9b31-fridge-temp", "Geladeira Temperatura", "temperature", "°C", [
    "SONOFF", "SNZB-02", "0x00001005", "00:12:4b:00:25:9c:7e:10", true
  ]),
  fridgeHumidity: attributes("5e0a9b32-fridge-humidity", "Geladeira Umidade", "humidity", "%", [
    "SONOFF", "SNZB-02", "0x00001005", "00:12:4b:00:25:9c:7e:10", true
  ])
}
type SensorAttributes = (typeof SENSORS)[keyof typeof SENSORS]

/** A Berlin wall-clock time on the night of 2026-10-25: hour, minute, second, microsecond. */
type WallClock = readonly [number, number, number, number]

/**
 * Readings of an equipment as the integration sends them (every field, null where Home Assistant has nothing),
 * taken at a wall-clock time whose UTC offset is `offset`; and what should be stored of each.
 */
const readingsOf = (equipment: string) =>
(
  sensor: SensorAttributes,
  [hour, minute, second, micros]: WallClock,
  offset: number,
  state: string,
  signal: Signal
): { readonly sent: HaReading; readonly expected: Expected } => {
  const local = pythonIsoformat(2026, 10, 25, hour, minute, second, micros)
  const sent = {
    ...sensor,
    sensor_telemetria: state,
    sensor_datahora_coleta: local,
    sensor_bateria_pct: signal.battery ?? null,
    sensor_sinal_lqi: signal.lqi ?? null,
    sensor_sinal_rssi: signal.rssi ?? null,
    sensor_voltagem_bateria: signal.batteryVoltage ?? null,
    sensor_voltagem: signal.voltage ?? null,
    sensor_corrente: signal.current ?? null,
    sensor_potencia: signal.power ?? null,
    ...(signal.novo === undefined ? {} : { sensor_novo: signal.novo })
  }
  const metadata = Object.fromEntries(
    Object.entries({
      battery: signal.battery,
      lqi: signal.lqi,
      rssi: signal.rssi,
      battery_voltage: signal.batteryVoltage,
      voltage: signal.voltage,
      current: signal.current,
      power: signal.power,
      sensor_novo: signal.novo
    }).filter(([, v]) => v != null && !(typeof v === "number" && !Number.isFinite(v)))
  )
  const numeric = Number(state)
  return {
    sent,
    expected: {
      equipment,
      sensor: sensor.sensor_uuid,
      time: utcOf(local, offset),
      value: Number.isFinite(numeric) ? numeric : null,
      status: Number.isFinite(numeric) ? null : state,
      metadata: Object.keys(metadata).length === 0 ? null : metadata
    }
  }
}
type Taken = ReturnType<ReturnType<typeof readingsOf>>

const freezer = readingsOf(FREEZER.equip_uuid)
const fridge = readingsOf(FRIDGE.equip_uuid)

/** One cycle's new readings: the items the integration appends to its queue. */
interface Batch {
  readonly items: ReadonlyArray<HaItem>
  readonly expected: ReadonlyArray<Expected>
}

const batch = (freezerHeader: typeof FREEZER, freezerReadings: ReadonlyArray<Taken>, fridgeReadings: ReadonlyArray<Taken>): Batch => ({
  items: [
    { ...freezerHeader, sensor: freezerReadings.map((r) => r.sent) },
    { ...FRIDGE, sensor: fridgeReadings.map((r) => r.sent) }
  ],
  expected: [...freezerReadings, ...fridgeReadings].map((r) => r.expected)
})

// Before and through the change: 01:59:59.999999 and 02:59:59.5 are summer time; 02:30:00.25 was shown twice (summer,
// then winter time) and is read as the first of the two; 03:00:00.000001 and 03:15 (whole seconds: Python prints no
// fraction) are winter time.
const CYCLE_1 = batch(FREEZER, [
  freezer(SENSORS.freezerTemp, [1, 59, 59, 999_999], CEST, "-18.50", {
    battery: 87, rssi: -61, batteryVoltage: 3.005, novo: "calibrado"
  }),
  freezer(SENSORS.freezerTemp, [2, 30, 0, 250_000], CEST, "-18.25", { battery: 87, rssi: -60, batteryVoltage: 3.005 }),
  freezer(SENSORS.freezerTemp, [3, 0, 0, 1], CET, "-18.00", { battery: 86, rssi: -62, batteryVoltage: 3 }),
  freezer(SENSORS.freezerDoor, [2, 30, 0, 250_000], CEST, "off", { battery: 100, lqi: 255 }),
  freezer(SENSORS.freezerPlug, [2, 59, 59, 500_000], CEST, "85.3", { lqi: 120, voltage: 229.8, current: 0.37, power: 85.3 })
], [
  fridge(SENSORS.fridgeTemp, [3, 15, 0, 0], CET, "4.25", { battery: 64, lqi: 98, batteryVoltage: 2.9, novo: 12.5 }),
  fridge(SENSORS.fridgeHumidity, [1, 0, 0, 100], CEST, "61.0", { battery: 64, lqi: 98 })
])

const CYCLE_2 = batch(FREEZER, [
  freezer(SENSORS.freezerTemp, [3, 17, 5, 123_456], CET, "-17.75", { battery: 86, rssi: -61, batteryVoltage: 3 }),
  freezer(SENSORS.freezerDoor, [3, 17, 30, 654_321], CET, "on", { battery: 100, lqi: 250, novo: "porta aberta" }),
  freezer(SENSORS.freezerPlug, [3, 17, 31, 0], CET, "112.0", { lqi: 118, voltage: 231.2, current: 0.49, power: 112 }),
  // An attribute of "nan" or "inf", which its Python sends as NaN or Infinity (no JSON): stored as no value.
  freezer(SENSORS.freezerPlug, [3, 17, 36, 0], CET, "112.5", { lqi: 118, voltage: Number.NaN, current: 0.5, power: Infinity })
], [
  fridge(SENSORS.fridgeTemp, [3, 17, 40, 999_999], CET, "4.50", { battery: 64, lqi: 97, batteryVoltage: 2.9 })
])

// The freezer was moved (its header fields change: the latest win) and the fridge's thermometer got new firmware.
const MOVED_FREEZER = { ...FREEZER, equip_local: "Despensa", equip_intervalo_coleta: 30 }
const UPDATED_FRIDGE_TEMP = { ...SENSORS.fridgeTemp, sensor_firmware: "0x00001006" }
const CYCLE_3 = batch(MOVED_FREEZER, [
  freezer(SENSORS.freezerTemp, [3, 19, 5, 5], CET, "-18.00", { battery: 86, rssi: -59, batteryVoltage: 3 }),
  freezer(SENSORS.freezerDoor, [3, 19, 6, 700_760], CET, "off", { battery: 100, lqi: 251 }),
  freezer(SENSORS.freezerPlug, [3, 19, 7, 1], CET, "84.9", { lqi: 119, voltage: 230.1, current: 0.37, power: 84.9 })
], [
  fridge(UPDATED_FRIDGE_TEMP, [3, 19, 40, 0], CET, "4.40", { battery: 63, lqi: 97, batteryVoltage: 2.9 }),
  fridge(SENSORS.fridgeHumidity, [3, 19, 41, 120_000], CET, "60.5", { battery: 63, lqi: 97, novo: null })
])

const ALL = [...CYCLE_1.expected, ...CYCLE_2.expected, ...CYCLE_3.expected]

/**
 * Naive times in UTC unless an account says otherwise, so that only the device account can put them right; quick
 * retries of storage inside ingest; raw readings of 2026-10 kept whatever the date of the run.
 */
const SETTINGS = { DEFAULT_TIMEZONE: "UTC", S3_RETRIES: "1", S3_RETRY_DELAY: "50 millis", RAW_RETENTION: "3650 days" }

/** What the scenario needs of a deployment. */
interface Bed {
  /** Where the pipeline serves HTTP. */
  readonly base: string
  readonly s3: S3Server.RunningS3Server
  /** Rows of a query on the pipeline's database. */
  readonly rows: <A extends object>(query: string) => Effect.Effect<ReadonlyArray<A>>
  /** Creates the device account of the home, in `DEVICE.timeZone`. */
  readonly addDevice: Effect.Effect<void>
}

const byKey = <A>(key: (a: A) => string) => (rows: ReadonlyArray<A>): Array<A> =>
  [...rows].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
const byReading = byKey((r: { readonly equipment: string; readonly sensor: string; readonly time: string }) =>
  `${r.equipment} ${r.sensor} ${r.time}`
)
const byUuid = byKey((r: { readonly uuid: string }) => r.uuid)
const storedFor = (equipment: string) => ALL.filter((e) => e.equipment === equipment)

const sensorRow = (equipment: string, a: SensorAttributes) => ({
  uuid: a.sensor_uuid,
  equipment,
  name: a.sensor_nome,
  type: a.sensor_tipo,
  unit: a.sensor_unidade,
  status: a.sensor_status,
  manufacturer: a.sensor_fabricante,
  model: a.sensor_modelo,
  firmware: a.sensor_firmware,
  hardware_id: a.sensor_id_hardware,
  via_hub: String(a.sensor_via_hub)
})

interface RawRow {
  readonly time: string
  readonly sensor_uuid: string
  readonly value: number | null
  readonly status: string | null
  readonly metadata: Record<string, unknown> | null
}

const storageUp = (base: string) =>
  Effect.map(Effect.promise(() => send(`${base}/api/v1/health/detailed`)), (answer) => answer.json?.checks?.storage?.status === "up")

const scenario = (bed: Bed) =>
  Effect.gen(function*() {
    yield* bed.addDevice
    const server = new URL(bed.base)
    const link = yield* LostAnswers.make({ host: server.hostname, port: Number(server.port) }, "/api/v1/telemetry/bulk")
    const client = makeHaClient({
      base: link.base,
      username: DEVICE.username,
      password: DEVICE.password,
      retryDelay: Duration.millis(100)
    })
    const ledger = bed.rows<{ items: number; readings: number; duplicates: number | null }>(
      `SELECT items, readings, duplicates FROM claim_ledger WHERE tenant_id = '${TENANT}' ORDER BY loaded_at`
    )

    // Cycle 1: the server takes the readings and answers 200, but the answers never reach the client, which
    // keeps its queue. Its retries send the same body, answered with the first claim: one claim is loaded.
    CYCLE_1.items.forEach((item) => client.record(item))
    link.lose(true)
    const first = yield* client.cycle
    link.lose(false)
    expect(first).toMatchObject({ logins: [200], sends: Array(5).fill("network error"), acknowledged: false })
    expect(link.lost()).toEqual(Array(5).fill(200))
    expect(client.queued()).toBe(CYCLE_1.expected.length)
    yield* eventually(ledger, (rows) => rows.length === 1, Duration.seconds(120))

    // Cycle 2: storage is down; every attempt is refused, the queue grows.
    yield* Effect.promise(() => bed.s3.down())
    CYCLE_2.items.forEach((item) => client.record(item))
    const second = yield* client.cycle
    expect(second).toMatchObject({ logins: [], sends: Array(5).fill(503), acknowledged: false })
    expect(client.queued()).toBe(CYCLE_1.expected.length + CYCLE_2.expected.length)
    yield* Effect.promise(() => bed.s3.up())
    yield* eventually(storageUp(bed.base), (up) => up)

    // Cycle 3: everything again, with the new readings appended; success the integration recognises.
    CYCLE_3.items.forEach((item) => client.record(item))
    const third = yield* client.cycle
    expect(third).toMatchObject({ logins: [], sends: [200], acknowledged: true })
    expect(client.queued()).toBe(0)
    // Then only the heartbeat: a login.
    expect(yield* client.cycle).toMatchObject({ logins: [200], sends: [], acknowledged: false })

    // Claims load in order (one queue, one device), so once the last is in the ledger every one is.
    yield* eventually(ledger, (rows) => rows.some((r) => r.readings === ALL.length), Duration.seconds(120))
    expect(yield* ledger).toEqual([
      { items: 2, readings: CYCLE_1.expected.length, duplicates: 0 },
      { items: 2, readings: ALL.length, duplicates: CYCLE_1.expected.length }
    ])

    const stored = yield* bed.rows<Expected>(`SELECT e.uuid AS equipment, s.uuid AS sensor,
        to_char(t.time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS time, t.value, t.status, t.metadata
      FROM telemetry_data t JOIN equipments e ON e.id = t.equipment_id JOIN sensors s ON s.id = t.sensor_id
      WHERE e.tenant_id = '${TENANT}'`)
    expect(byReading(stored)).toEqual(byReading(ALL))
    const counts = yield* bed.rows<{ equipment: string; readings: number; distinct_readings: number }>(`SELECT
        e.uuid AS equipment, count(*)::int AS readings, count(DISTINCT (t.sensor_id, t.time))::int AS distinct_readings
      FROM telemetry_data t JOIN equipments e ON e.id = t.equipment_id
      WHERE e.tenant_id = '${TENANT}' GROUP BY e.uuid`)
    expect(byKey((r: { equipment: string }) => r.equipment)(counts)).toEqual([FRIDGE, FREEZER].map(({ equip_uuid }) => ({
      equipment: equip_uuid,
      readings: storedFor(equip_uuid).length,
      distinct_readings: storedFor(equip_uuid).length
    })))

    const sensors = yield* bed.rows<ReturnType<typeof sensorRow>>(`SELECT s.uuid, e.uuid AS equipment, s.name, s.type,
        s.unit, s.status, s.manufacturer, s.model, s.firmware, s.hardware_id, s.via_hub
      FROM sensors s JOIN equipments e ON e.id = s.equipment_id WHERE e.tenant_id = '${TENANT}'`)
    expect(byUuid(sensors)).toEqual(byUuid([
      sensorRow(FREEZER.equip_uuid, SENSORS.freezerTemp),
      sensorRow(FREEZER.equip_uuid, SENSORS.freezerDoor),
      sensorRow(FREEZER.equip_uuid, SENSORS.freezerPlug),
      sensorRow(FRIDGE.equip_uuid, UPDATED_FRIDGE_TEMP),
      sensorRow(FRIDGE.equip_uuid, SENSORS.fridgeHumidity)
    ]))
    const equipments = yield* bed.rows<{ uuid: string }>(`SELECT uuid, name, location, status, collection_interval,
        siren_active, siren_time FROM equipments WHERE tenant_id = '${TENANT}'`)
    expect(byUuid(equipments)).toEqual([
      {
        uuid: FRIDGE.equip_uuid,
        name: "Geladeira da Copa",
        location: "Copa",
        status: "active",
        collection_interval: 120,
        siren_active: true,
        siren_time: 90
      },
      {
        uuid: FREEZER.equip_uuid,
        name: "Freezer Principal",
        location: "Despensa",
        status: "active",
        collection_interval: 30,
        siren_active: false,
        siren_time: 120
      }
    ])

    // The raw history serves them as stored, times in UTC to the microsecond.
    for (const equipment of [FREEZER.equip_uuid, FRIDGE.equip_uuid]) {
      const answer = yield* Effect.promise(() =>
        send(
          `${bed.base}/api/v1/analytics/equipment/${equipment}/history?period=raw` +
            "&start_date=2026-10-24T00:00:00Z&end_date=2026-10-26T00:00:00Z",
          { headers: bearer(readerToken(TENANT)) }
        )
      )
      expect(answer.status).toBe(200)
      const served = (answer.json.data as ReadonlyArray<RawRow>).map((r) => ({
        equipment,
        sensor: r.sensor_uuid,
        time: r.time,
        value: r.value,
        status: r.status,
        metadata: r.metadata
      }))
      expect(byReading(served)).toEqual(byReading(storedFor(equipment).map((e) => ({ ...e, time: `${e.time}Z` }))))
    }
  })

describe("the Home Assistant integration, as it behaves, against the pipeline", () => {
  it.scopedLive("embedded stack (in-process queue, PGlite) with storage on s3rver", () =>
    Effect.gen(function*() {
      const s3 = yield* S3Server.S3Server
      const port = yield* Effect.promise(freePort)
      const stack = yield* Layer.build(embeddedStack(port, { ...s3.env, ...SETTINGS }))
      const sql = Context.get(stack, SqlClient.SqlClient)
      yield* scenario({
        base: `http://127.0.0.1:${port}`,
        s3,
        rows: <A extends object>(query: string) => Effect.orDie(sql.unsafe<A>(query)),
        addDevice: Effect.flatMap(Accounts, (accounts) => accounts.add({ kind: "device", tenantId: TENANT, ...DEVICE })).pipe(
          Effect.provide(SqlAccounts.layer),
          Effect.provideService(SqlClient.SqlClient, sql),
          Effect.asVoid,
          Effect.orDie
        )
      })
    }).pipe(Effect.scoped, Effect.provide(S3Server.layer)), { timeout: 180_000 })

  it.scopedLive("ingest and a worker as OS processes on mock Kafka, s3rver and PostgreSQL", () =>
    Effect.gen(function*() {
      const { database, env: standInsEnv, s3 } = yield* runningStandIns
      const db = yield* pgClient({ connectionString: database.url })
      const env = { ...standInsEnv, ...SETTINGS }
      const { base, ingest } = yield* startedIngest(env)
      const worker = yield* started(() => startWorker(env))

      yield* scenario({
        base,
        s3,
        rows: <A extends object>(query: string) => Effect.promise(() => db.query(query)).pipe(Effect.map((r) => r.rows as Array<A>)),
        // As a user does it: `pnpm device add`.
        addDevice: Effect.promise(() =>
          runCli("device", [
            "add",
            "--tenant",
            TENANT,
            "--username",
            DEVICE.username,
            "--password",
            DEVICE.password,
            "--timezone",
            DEVICE.timeZone
          ], database.env)
        ).pipe(Effect.flatMap((cli) => (cli.code === 0 ? Effect.void : Effect.dieMessage(`pnpm device add: ${cli.stderr}`))))
      }).pipe(
        // On a failure, what the processes printed says why.
        Effect.tapErrorCause(() =>
          Effect.sync(() =>
            console.error(`ingest printed:\n${ingest.output().slice(-4000)}\nworker printed:\n${worker.output().slice(-4000)}`)
          )
        )
      )
    }).pipe(Effect.scoped, Effect.provide(standIns({ "telemetry.raw": 3, "telemetry.dlq": 1 }))), { timeout: 240_000 })
})
