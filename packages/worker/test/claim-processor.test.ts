import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { ClaimRejected, LoadError, Maintenance, ObjectStore, StorageError, TelemetryStore } from "@telemetry/domain"
import * as ClaimAttempts from "@telemetry/infra/db/ClaimAttempts"
import * as RevokedClaims from "@telemetry/infra/db/RevokedClaims"
import * as MemoryObjectStore from "@telemetry/infra/storage/MemoryObjectStore"
import { haEquipmentRow, haPayload } from "@telemetry/domain/testing"
import { dataOf, inMemoryStore } from "@telemetry/infra/testing"
import { Clock, ConfigProvider, Deferred, Effect, Fiber, Layer, Stream, TestClock, TestServices } from "effect"
import { randomUUID } from "node:crypto"
import * as ClaimProcessor from "../src/ClaimProcessor.js"
import { capturingLogs, type LogLine, refusedAs, stash } from "./support/claims.js"

const TestLayer = inMemoryStore(2).pipe(Layer.provideMerge(MemoryObjectStore.layer()))

/** The processor with the default configuration (or `config`), whatever the environment running the tests says. */
const makeProcessor = ClaimProcessor.make.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map())))
const processorWith = (config: Record<string, string>) =>
  ClaimProcessor.make.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(config)))))

/** Runs `effect` collecting what it logs. */
const withLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const logs: Array<LogLine> = []
    const result = yield* capturingLogs(logs)(effect)
    return { result, logs }
  })

const rowsOf = (equipUuid: string) =>
  dataOf(equipUuid).pipe(
      Effect.map((rows) =>
        rows.map((r) => [new Date(r.time).toISOString(), r.sensor, r.value, r.status, r.metadata] as const)
      )
    )

const ledgerOf = (claimId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ object_key: string; tenant_id: string; request_id: string | null; items: number | null; readings: number | null }>`
      SELECT object_key, tenant_id, request_id, items, readings FROM claim_ledger WHERE claim_id = ${claimId}`)

const countWhereEquipment = (equipUuids: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ data: number; equipments: number }>`SELECT
      (SELECT count(*)::int FROM telemetry_data t JOIN equipments e ON e.id = t.equipment_id
        WHERE e.uuid IN ${sql.in(equipUuids)}) AS data,
      (SELECT count(*)::int FROM equipments WHERE uuid IN ${sql.in(equipUuids)}) AS equipments`).pipe(
      Effect.map((rows) => rows[0]!)
    )

/**
 * Two equipments, the first as the Home Assistant client sends it but with a naive time (read in the claim's zone,
 * UTC), one in UTC and one with an offset; 5 readings, more than one COPY batch.
 */
const payload = (prefix: string) => [
  ...haPayload(`${prefix}-freezer`, ["2026-11-20T10:15:00", "2026-11-20T10:45:30Z", "2026-11-20T10:20:00-03:00"]),
  {
    equip_uuid: `${prefix}-fridge`,
    equip_nome: "Fridge",
    equip_status: "inativo",
    sensor: [
      { sensor_uuid: `${prefix}-fridge-temp`, valor: 4, sensor_datahora_coleta: "2026-11-20T11:00:00.250Z" },
      { sensor_uuid: `${prefix}-fridge-temp`, valor: 4.5, status: "ok", sensor_datahora_coleta: "2026-11-20T11:01:00Z" }
    ]
  }
]

describe("ClaimProcessor on a memory object store and embedded TimescaleDB", () => {
  it.layer(TestLayer, { timeout: 120_000 })("one in-memory database", (it) => {
    it.effect("loads a stored claim's readings, and loads them exactly once when the claim comes again", () =>
      Effect.gen(function*() {
        const process = yield* makeProcessor
        const sql = yield* SqlClient.SqlClient
        const p = `p-${randomUUID()}`
        const { claim } = yield* stash(payload(p))
        expect(claim.metadata).toMatchObject({ tenantId: "default", itemsCount: 2, totalSensors: 5, deviceId: "device-1" })

        const first = yield* withLogs(process(claim))
        expect(first.result).toBeUndefined()
        expect(first.logs).toContainEqual({ level: "INFO", message: `claim ${claim.claim_id}: loaded 5 readings of 2 items` })

        const freezer = [
          ["2026-11-20T10:15:00.000Z", `${p}-freezer-temp`, -18.5, null, { battery: 87, rssi: -61 }],
          ["2026-11-20T10:45:30.000Z", `${p}-freezer-temp`, -17.25, null, null],
          ["2026-11-20T13:20:00.000Z", `${p}-freezer-door`, null, "open", null]
        ]
        const fridge = [
          ["2026-11-20T11:00:00.250Z", `${p}-fridge-temp`, 4, null, null],
          ["2026-11-20T11:01:00.000Z", `${p}-fridge-temp`, 4.5, "ok", null]
        ]
        expect(yield* rowsOf(`${p}-freezer`)).toEqual(freezer)
        expect(yield* rowsOf(`${p}-fridge`)).toEqual(fridge)

        expect(yield* sql`SELECT uuid, name, location, status, collection_interval, siren_active, siren_time
          FROM equipments WHERE uuid IN (${`${p}-freezer`}, ${`${p}-fridge`}) ORDER BY uuid`).toEqual([
          { uuid: `${p}-freezer`, ...haEquipmentRow },
          {
            uuid: `${p}-fridge`,
            name: "Fridge",
            location: null,
            status: "inactive",
            collection_interval: 60,
            siren_active: false,
            siren_time: 120
          }
        ])
        expect(yield* sql`SELECT s.uuid, s.name, s.type, s.unit, s.manufacturer FROM sensors s
          JOIN equipments e ON e.id = s.equipment_id WHERE e.uuid IN (${`${p}-freezer`}, ${`${p}-fridge`})
          ORDER BY s.uuid`).toEqual([
          { uuid: `${p}-freezer-door`, name: "Door", type: "door", unit: null, manufacturer: null },
          { uuid: `${p}-freezer-temp`, name: "Temperature", type: "temperature", unit: "°C", manufacturer: "Acme" },
          { uuid: `${p}-fridge-temp`, name: null, type: "unknown", unit: null, manufacturer: null }
        ])
        const ledger = [{
          object_key: claim.claim_check,
          tenant_id: "default",
          request_id: claim.metadata.requestId,
          items: 2,
          readings: 5
        }]
        expect(yield* ledgerOf(claim.claim_id)).toEqual(ledger)

        // Delivered again (a redelivery after a crash before the ack): nothing more is loaded.
        const second = yield* withLogs(process(claim))
        expect(second.logs).toContainEqual({ level: "INFO", message: `claim ${claim.claim_id}: already loaded, skipped` })
        expect(yield* rowsOf(`${p}-freezer`)).toEqual(freezer)
        expect(yield* rowsOf(`${p}-fridge`)).toEqual(fridge)
        expect(yield* ledgerOf(claim.claim_id)).toEqual(ledger)
      }))

    it.effect("a loaded claim notes its readings' late days for refresh, and again when delivered again: its first delivery may have stopped before", () =>
      Effect.gen(function*() {
        const maintenance = yield* Maintenance.Maintenance
        const noted: Array<unknown> = []
        const process = yield* makeProcessor.pipe(Effect.provideService(
          Maintenance.Maintenance,
          Maintenance.Maintenance.of({
            ...maintenance,
            noteLate: (days) => Effect.zipRight(Effect.sync(() => noted.push(days)), maintenance.noteLate(days))
          })
        ))
        // Readings of ten days ago, older than the policies' windows, whatever the date the test runs on.
        const day = Math.floor(Date.now() / 86_400_000) - 10
        const at = (minutes: number) => new Date(day * 86_400_000 + 10 * 3_600_000 + minutes * 60_000).toISOString()
        const { claim } = yield* stash(haPayload(`again-${randomUUID()}`, [at(0), at(10), at(20)]), { receivedAt: new Date() })
        yield* process(claim)
        yield* process(claim)
        const days = [day]
        expect(noted).toEqual([days, days])
        // Refreshed by the maintenance's next poll, once.
        expect(yield* maintenance.refreshNoted).toEqual(days)
        expect(yield* maintenance.refreshNoted).toEqual([])
        // On the real clock: which days are late depends on it.
      }).pipe(Effect.withClock(Clock.make())))

    it.effect("the same claim processed concurrently is loaded once", () =>
      Effect.gen(function*() {
        const process = yield* makeProcessor
        const p = `c-${randomUUID()}`
        const { claim } = yield* stash(payload(p))
        yield* Effect.all([process(claim), process(claim), process(claim)], { concurrency: "unbounded" })
        expect(yield* countWhereEquipment([`${p}-freezer`, `${p}-fridge`])).toEqual({ data: 5, equipments: 2 })
        expect(yield* ledgerOf(claim.claim_id)).toMatchObject([{ items: 2, readings: 5 }])
      }))

    it.effect("an invalid payload loads nothing, leaves no ledger row, and is rejected at once", () =>
      Effect.gen(function*() {
        const process = yield* makeProcessor
        const p = `bad-${randomUUID()}`
        const [good] = payload(p)
        // The first item is valid (and has more readings than a batch); the second misses a sensor_uuid.
        const { claim } = yield* stash([
          good,
          {
            equip_uuid: `${p}-other`,
            sensor: [{ sensor_uuid: `${p}-x`, valor: 1 }, { valor: 2, sensor_datahora_coleta: "2026-11-20T10:00:00Z" }]
          }
        ])
        const { logs, result } = yield* withLogs(Effect.flip(process(claim)))
        expect(result).toBeInstanceOf(ClaimRejected)
        expect(result).toMatchObject({ reason: "invalid_payload", attempts: 1 })
        expect(result.message).toContain("[1].sensor[1].sensor_uuid")
        const errors = logs.filter((l) => l.level === "ERROR")
        expect(errors).toHaveLength(1)
        expect(errors[0]!.message).toContain(`claim ${claim.claim_id}: invalid payload, dead-lettered`)
        expect(errors[0]!.message).toContain("[1].sensor[1].sensor_uuid")

        expect(yield* ledgerOf(claim.claim_id)).toEqual([])
        expect(yield* countWhereEquipment([`${p}-freezer`, `${p}-other`])).toEqual({ data: 0, equipments: 0 })
        // The object stays in storage for inspection.
        const storage = yield* ObjectStore
        expect((yield* storage.head(claim.claim_check)).key).toBe(claim.claim_check)
      }))

    it.effect("a stored object that is not gzip, or not a JSON array, loads nothing and is rejected", () =>
      Effect.gen(function*() {
        const process = yield* makeProcessor
        const notGzip = yield* stash([], { raw: Buffer.from("[{\"equip_uuid\":\"plain\"}]") })
        const notArray = yield* stash({ equip_uuid: "object", sensor: [] })
        const empty = yield* stash([])
        for (const { claim } of [notGzip, notArray, empty]) {
          const { logs, result } = yield* withLogs(Effect.flip(process(claim)))
          expect(result).toMatchObject({ _tag: "ClaimRejected", reason: "invalid_payload" })
          expect(logs.filter((l) => l.level === "ERROR").map((l) => l.message)).toEqual([
            expect.stringContaining(`claim ${claim.claim_id}: invalid payload, dead-lettered`)
          ])
          expect(yield* ledgerOf(claim.claim_id)).toEqual([])
        }
      }))

    it.effect("a claim whose object is missing loads nothing and is rejected as such", () =>
      Effect.gen(function*() {
        const process = yield* makeProcessor
        const storage = yield* ObjectStore
        const { claim } = yield* stash(payload(`gone-${randomUUID()}`))
        yield* storage.delete(claim.claim_check)
        const { logs, result } = yield* withLogs(Effect.flip(process(claim)))
        expect(yield* ledgerOf(claim.claim_id)).toEqual([])
        // Reported as what it is, not as a payload problem.
        expect(result).toMatchObject({ _tag: "ClaimRejected", reason: "object_not_found", attempts: 1 })
        expect(logs.filter((l) => l.level === "ERROR").map((l) => l.message)).toEqual([
          `claim ${claim.claim_id}: payload not found, dead-lettered: object ${claim.claim_check} does not exist`
        ])
      }))

    // What ingest does when Kafka did not acknowledge in time, or storage failed as the object was committed:
    // revoke the claim, then delete its object — which fails while storage is down.
    for (const object of ["deleted", "left in storage"] as const) {
      it.effect(`a claim whose request was refused after its object was stored (${object}) is settled unloaded`, () =>
        Effect.gen(function*() {
          const process = yield* makeProcessor
          const storage = yield* ObjectStore
          const p = `revoked-${randomUUID()}`
          const { claim } = yield* stash(payload(p))
          yield* RevokedClaims.revoke(claim.claim_id)
          if (object === "deleted") yield* storage.delete(claim.claim_check)
          const { logs } = yield* withLogs(process(claim))
          expect(yield* ledgerOf(claim.claim_id)).toEqual([])
          expect(yield* rowsOf(`${p}-freezer`)).toEqual([])
          expect(logs.filter((l) => l.level === "ERROR")).toEqual([])
          expect(logs.map((l) => l.message)).toContain(`claim ${claim.claim_id}: its request was refused, nothing to load`)
        }))
    }

    for (const when of ["before any byte", "part-way"] as const) {
      it.effect(`a storage failure ${when} while reading the object is retried, and the claim is then loaded`, () =>
        Effect.gen(function*() {
          const storage = yield* ObjectStore
          const p = `flaky-${randomUUID()}`
          const { claim } = yield* stash(payload(p))
          let attempts = 0
          const flaky = ObjectStore.of({
            ...storage,
            // Each run of the stream is a new read of the object; the first one breaks.
            get: (key) =>
              Stream.suspend(() => {
                attempts++
                if (attempts > 1) return storage.get(key)
                const failure = Stream.fail(new StorageError({ operation: "get", key, message: "connection reset" }))
                return when === "before any byte"
                  ? failure
                  : Stream.concat(Stream.map(storage.get(key), (bytes) => bytes.subarray(0, 20)), failure)
              })
          })
          const process = yield* makeProcessor.pipe(Effect.provideService(ObjectStore, flaky))
          // On the live clock: the processor backs off (200 ms and more) before it tries again.
          const { logs } = yield* TestServices.provideLive(withLogs(process(claim)))
          expect(logs.filter((l) => l.level === "ERROR").map((l) => l.message)).toEqual([])
          expect(logs.filter((l) => l.level === "WARN").map((l) => l.message)).toEqual([
            `claim ${claim.claim_id}: connection reset; retrying (attempt 1 of 6)`
          ])
          expect(attempts).toBe(2)
          expect(yield* ledgerOf(claim.claim_id)).toMatchObject([{ items: 2, readings: 5 }])
          expect(yield* countWhereEquipment([`${p}-freezer`, `${p}-fridge`])).toEqual({ data: 5, equipments: 2 })
        }))
    }

    /** Storage that does not answer at all (down), as its check sees it. */
    const refused = Effect.fail(new StorageError({ operation: "head", key: "", message: "connect ECONNREFUSED" }))
    /** Storage whose reads of `key` always break; `down`: and that does not answer at all. */
    const brokenFor = (storage: ObjectStore["Type"], key: string, down: boolean) => {
      const broken = new StorageError({ operation: "get", key, message: "internal error (500)" })
      return ObjectStore.of({
        ...storage,
        get: (k) => (k === key ? Stream.fail(broken) : storage.get(k)),
        check: down ? refused : storage.check
      })
    }
    const fewRetries = { WORKER_RETRY_ATTEMPTS: "3", WORKER_RETRY_MAX_DELAY: "20 millis" }

    it.effect("a claim that keeps failing while storage and database answer is rejected once its retries are spent", () =>
      Effect.gen(function*() {
        const storage = yield* ObjectStore
        const { claim } = yield* stash(payload(`poison-${randomUUID()}`))
        const process = yield* processorWith(fewRetries).pipe(
          Effect.provideService(ObjectStore, brokenFor(storage, claim.claim_check, false))
        )
        const { logs, result } = yield* TestServices.provideLive(withLogs(Effect.flip(process(claim))))
        expect(result).toMatchObject({ _tag: "ClaimRejected", reason: "retries_exhausted", attempts: 3, message: "internal error (500)" })
        expect(logs.filter((l) => l.level === "WARN").map((l) => l.message)).toEqual([
          `claim ${claim.claim_id}: internal error (500); retrying (attempt 1 of 3)`,
          `claim ${claim.claim_id}: internal error (500); retrying (attempt 2 of 3)`,
          `claim ${claim.claim_id}: internal error (500); giving up (attempt 3 of 3)`
        ])
        expect(yield* ledgerOf(claim.claim_id)).toEqual([])
      }))

    it.effect("a claim that keeps failing while storage is down is not rejected: it fails, to come again", () =>
      Effect.gen(function*() {
        const storage = yield* ObjectStore
        const { claim } = yield* stash(payload(`outage-${randomUUID()}`))
        const process = yield* processorWith(fewRetries).pipe(
          Effect.provideService(ObjectStore, brokenFor(storage, claim.claim_check, true))
        )
        const { logs, result } = yield* TestServices.provideLive(withLogs(Effect.flip(process(claim))))
        expect(result).toMatchObject({ _tag: "StorageError", message: "internal error (500)" })
        expect(logs.filter((l) => l.level === "ERROR").map((l) => l.message)).toEqual([
          `claim ${claim.claim_id}: internal error (500); storage is down (connect ECONNREFUSED): leaving the claim queued for later`
        ])
      }))

    it.effect("readings without a time take the claim's timestamp (when the payload was received)", () =>
      Effect.gen(function*() {
        const process = yield* makeProcessor
        const p = `notime-${randomUUID()}`
        const receivedAt = new Date("2025-07-08T09:10:11.123Z")
        const { claim } = yield* stash([
          {
            equip_uuid: `${p}-eq`,
            sensor: [
              { sensor_uuid: `${p}-a`, valor: 1 },
              { sensor_uuid: `${p}-b`, sensor_telemetria: 2, sensor_datahora_coleta: null },
              { sensor_uuid: `${p}-c`, valor: 3, timestamp: "2025-07-08T08:00:00Z" }, // the fallback field
              { sensor_uuid: `${p}-d`, valor: 4, sensor_datahora_coleta: "2025-07-08T07:00:00" } // naive: UTC
            ]
          }
        ], { receivedAt })
        expect(claim.timestamp).toBe(receivedAt.toISOString())
        yield* process(claim)
        expect(yield* rowsOf(`${p}-eq`)).toEqual([
          ["2025-07-08T07:00:00.000Z", `${p}-d`, 4, null, null],
          ["2025-07-08T08:00:00.000Z", `${p}-c`, 3, null, null],
          ["2025-07-08T09:10:11.123Z", `${p}-a`, 1, null, null],
          ["2025-07-08T09:10:11.123Z", `${p}-b`, 2, null, null]
        ])
        expect(yield* ledgerOf(claim.claim_id)).toMatchObject([{ items: 1, readings: 4 }])
      }))

    it.effect("readings older than RAW_RETENTION when the payload was received are counted, not stored; their sensors are", () =>
      Effect.gen(function*() {
        const process = yield* processorWith({ RAW_RETENTION: "10 days" })
        const sql = yield* SqlClient.SqlClient
        const p = `expired-${randomUUID()}`
        const receivedAt = new Date("2026-11-20T14:00:00.000Z")
        const { claim } = yield* stash([
          {
            equip_uuid: `${p}-eq`,
            sensor: [
              { sensor_uuid: `${p}-a`, valor: 1, sensor_datahora_coleta: "2026-11-10T14:00:00Z" }, // 10 days: kept
              { sensor_uuid: `${p}-a`, valor: 2, sensor_datahora_coleta: "2026-11-10T13:59:59.999999Z" },
              { sensor_uuid: `${p}-b`, sensor_nome: "Old", valor: 3, sensor_datahora_coleta: "1971-01-01T00:00:00Z" }
            ]
          }
        ], { receivedAt })
        const { logs } = yield* TestServices.provideLive(withLogs(process(claim)))
        expect(yield* rowsOf(`${p}-eq`)).toEqual([["2026-11-10T14:00:00.000Z", `${p}-a`, 1, null, null]])
        expect(yield* sql`SELECT readings, duplicates, expired FROM claim_ledger WHERE claim_id = ${claim.claim_id}`)
          .toEqual([{ readings: 1, duplicates: 0, expired: 2 }])
        expect(yield* sql`SELECT s.uuid, s.name FROM sensors s JOIN equipments e ON e.id = s.equipment_id
          WHERE e.uuid = ${`${p}-eq`} ORDER BY s.uuid`).toEqual([{ uuid: `${p}-a`, name: null }, { uuid: `${p}-b`, name: "Old" }])
        expect(logs.map((l) => l.message)).toContain(
          `claim ${claim.claim_id}: loaded 1 readings of 1 items; 2 were older than RAW_RETENTION (10d) and were not stored`
        )
      }))

    it.effect("the claim's tenant is the tenant of the loaded equipments", () =>
      Effect.gen(function*() {
        const process = yield* makeProcessor
        const sql = yield* SqlClient.SqlClient
        const p = `tenant-${randomUUID()}`
        const { claim } = yield* stash(payload(p), { tenantId: "acme" })
        yield* process(claim)
        expect(yield* sql`SELECT tenant_id FROM equipments WHERE uuid = ${`${p}-freezer`}`).toEqual([{ tenant_id: "acme" }])
        expect(yield* ledgerOf(claim.claim_id)).toMatchObject([{ tenant_id: "acme", items: 2, readings: 5 }])
      }))

    /** The deliveries counted for a claim and the last error kept, or none. */
    const attemptsOf = (claimId: string) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ attempts: number; last_error: string | null }>`SELECT attempts, last_error FROM claim_attempts
          WHERE claim_id = ${claimId}`)

    /** The store, with the loads of `claimId` failing as `fail` says (given the load's number, from 1), if it does. */
    const storeFailing = (claimId: string, fail: (load: number) => Effect.Effect<never, LoadError> | undefined) =>
      Effect.map(TelemetryStore, (store) => {
        let loads = 0
        return TelemetryStore.of({
          ...store,
          load: (claim, items) => {
            if (claim.claim_id !== claimId) return store.load(claim, items)
            return Effect.suspend(() => fail(++loads) ?? store.load(claim, items))
          }
        })
      })

    /** An error of the server's answer, as node-postgres gives it (`code` the SQLSTATE), and a load failing with it. */
    const serverAnswer = (message: string, code: string, severity: string) => Object.assign(new Error(message), { code, severity })
    const loadFailing = (claimId: string, message: string, cause: Error) =>
      Effect.fail(new LoadError({ claimId, message, transient: true, cause }))

    it.effect("a claim the database refuses for its data (NUL, out of range) is dead-lettered at once, not retried", () =>
      Effect.gen(function*() {
        const process = yield* makeProcessor
        const p = `refused-${randomUUID()}`
        const payloads = [
          [{ equip_uuid: `${p}-nul`, equip_nome: "a\u0000b", sensor: [{ sensor_uuid: `${p}-s`, valor: 1 }] }],
          [{ equip_uuid: `${p}-range`, equip_intervalo_coleta: 1e12, sensor: [{ sensor_uuid: `${p}-s`, valor: 1 }] }]
        ]
        for (const body of payloads) {
          const { claim } = yield* stash(body)
          const { logs, result } = yield* withLogs(Effect.flip(process(claim)))
          const reason = yield* refusedAs(body)
          expect(result).toMatchObject({ _tag: "ClaimRejected", reason, attempts: 1 })
          // A refusal by the database names its SQLSTATE (22021 invalid byte sequence, 22003 out of range).
          if (reason === "unloadable") expect(result.message).toMatch(/\(SQLSTATE 22\d{3}\)$/)
          expect(logs.filter((l) => l.level === "WARN")).toEqual([])
          expect(yield* ledgerOf(claim.claim_id)).toEqual([])
          expect(yield* attemptsOf(claim.claim_id)).toEqual([])
        }
        expect(yield* countWhereEquipment([`${p}-nul`, `${p}-range`])).toEqual({ data: 0, equipments: 0 })
      }))

    it.effect("a load refused for good (a tenant's limit) is dead-lettered unloadable at once, its log line telling why", () =>
      Effect.gen(function*() {
        const { claim } = yield* stash(payload(`limit-${randomUUID()}`))
        const message = 'tenant "t" would have 3 equipments, over its limit of 2 (MAX_EQUIPMENTS_PER_TENANT): its load is refused'
        const store = yield* storeFailing(claim.claim_id, () =>
          Effect.fail(new LoadError({ claimId: claim.claim_id, message, transient: false })))
        const process = yield* processorWith(fewRetries).pipe(Effect.provideService(TelemetryStore, store))
        const { logs, result } = yield* withLogs(Effect.flip(process(claim)))
        expect(result).toMatchObject({ _tag: "ClaimRejected", reason: "unloadable", message, attempts: 1 })
        // Not "refused by the database", which it was not.
        expect(logs.filter((l) => l.level !== "INFO" && l.level !== "DEBUG").map((l) => [l.level, l.message])).toEqual([
          ["ERROR", `claim ${claim.claim_id}: not loadable, dead-lettered: ${message}`]
        ])
        expect(yield* ledgerOf(claim.claim_id)).toEqual([])
      }))

    it.effect("a transient database error (a serialization failure) is retried, and the claim then loads", () =>
      Effect.gen(function*() {
        const p = `serial-${randomUUID()}`
        const { claim } = yield* stash(payload(p))
        const serialization = serverAnswer("could not serialize access due to concurrent update", "40001", "ERROR")
        const store = yield* storeFailing(claim.claim_id, (load) =>
          load === 1 ? loadFailing(claim.claim_id, serialization.message, serialization) : undefined)
        const process = yield* processorWith(fewRetries).pipe(Effect.provideService(TelemetryStore, store))
        const { logs } = yield* TestServices.provideLive(withLogs(process(claim)))
        expect(logs.filter((l) => l.level === "WARN").map((l) => l.message)).toEqual([
          `claim ${claim.claim_id}: could not serialize access due to concurrent update (SQLSTATE 40001); retrying (attempt 1 of 3)`
        ])
        expect(yield* ledgerOf(claim.claim_id)).toMatchObject([{ items: 2, readings: 5 }])
        expect(yield* attemptsOf(claim.claim_id)).toEqual([])
      }))

    it.effect("a load held by a dependency that does not answer says so each minute, until it ends", () =>
      Effect.gen(function*() {
        const { claim } = yield* stash(payload(`held-${randomUUID()}`))
        const loading = yield* Deferred.make<void>()
        const answered = yield* Deferred.make<void>()
        const store = yield* TelemetryStore
        const held = TelemetryStore.of({
          ...store,
          load: (c, items) =>
            Deferred.succeed(loading, undefined).pipe(
              Effect.zipRight(Deferred.await(answered)),
              Effect.zipRight(store.load(c, items))
            )
        })
        const process = yield* makeProcessor.pipe(Effect.provideService(TelemetryStore, held))
        const logs: Array<LogLine> = []
        const fiber = yield* Effect.fork(capturingLogs(logs)(process(claim)))
        yield* Deferred.await(loading)
        const warned = () => logs.filter((l) => l.level === "WARN").map((l) => l.message)
        yield* TestClock.adjust("59 seconds")
        expect(warned()).toEqual([])
        yield* TestClock.adjust("62 seconds")
        const notice = (after: string) =>
          `claim ${claim.claim_id}: not loaded yet after ${after}; its load is waiting for storage or the database (or is a large one)`
        expect(warned()).toEqual([notice("1m"), notice("2m")])
        // Answered at last: loaded, and nothing more said about it.
        yield* Deferred.succeed(answered, undefined)
        yield* Fiber.join(fiber)
        yield* TestClock.adjust("5 minutes")
        expect(warned()).toHaveLength(2)
        expect(yield* ledgerOf(claim.claim_id)).toMatchObject([{ items: 2, readings: 5 }])
      }))

    it.effect("a load whose session the server ended under a statement (57P01) stays queued, however often: not the claim's fault", () =>
      Effect.gen(function*() {
        const p = `terminated-${randomUUID()}`
        const { claim } = yield* stash(payload(p))
        // What node-postgres gives a statement awaiting its answer when an operator or a failover ends its session.
        const terminated = serverAnswer("terminating connection due to administrator command", "57P01", "FATAL")
        const store = yield* storeFailing(claim.claim_id, (load) =>
          load <= 3 ? loadFailing(claim.claim_id, "Failed to execute statement", terminated) : undefined)
        const process = yield* processorWith(fewRetries).pipe(Effect.provideService(TelemetryStore, store))
        const { logs, result } = yield* TestServices.provideLive(withLogs(Effect.flip(process(claim))))
        expect(result).toMatchObject({ _tag: "LoadError", transient: true })
        expect(logs.filter((l) => l.level === "ERROR").map((l) => l.message)).toEqual([
          `claim ${claim.claim_id}: Failed to execute statement: terminating connection due to administrator command (SQLSTATE 57P01); ` +
          "the database ended the session itself: leaving the claim queued for later"
        ])
        expect(yield* ledgerOf(claim.claim_id)).toEqual([])
        // Its next delivery, the session left alone, loads it.
        yield* TestServices.provideLive(process(claim))
        expect(yield* ledgerOf(claim.claim_id)).toMatchObject([{ items: 2, readings: 5 }])
      }))

    it.effect("a load the database cannot write for a full disk (53100) stays queued, not dead-lettered: an outage, not the claim's fault", () =>
      Effect.gen(function*() {
        const { claim } = yield* stash(payload(`disk-full-${randomUUID()}`))
        const full = serverAnswer("could not extend file \"base/5/16384\": No space left on device", "53100", "ERROR")
        const store = yield* storeFailing(claim.claim_id, (load) =>
          load <= 3 ? loadFailing(claim.claim_id, "COPY into telemetry_data failed", full) : undefined)
        const process = yield* processorWith(fewRetries).pipe(Effect.provideService(TelemetryStore, store))
        const { logs, result } = yield* TestServices.provideLive(withLogs(Effect.flip(process(claim))))
        expect(result).toMatchObject({ _tag: "LoadError", transient: true })
        expect(logs.filter((l) => l.level === "ERROR").map((l) => l.message)).toEqual([
          `claim ${claim.claim_id}: COPY into telemetry_data failed: could not extend file "base/5/16384": No space left on device ` +
          "(SQLSTATE 53100); the database's disk is full: leaving the claim queued for later"
        ])
        // Space freed, its next delivery loads it.
        yield* TestServices.provideLive(process(claim))
        expect(yield* ledgerOf(claim.claim_id)).toMatchObject([{ items: 2, readings: 5 }])
      }))

    it.effect("a load whose session is lost without an answer stays queued, its delivery counted: the WORKER_MAX_DELIVERIES-th dead-letters it", () =>
      Effect.gen(function*() {
        // What node-postgres gives a load whose session was ended while it sent a COPY's rows, or between statements:
        // no SQLSTATE, as when the payload crashed the server.
        const lost = new Error("Client has encountered a connection error and is not queryable")
        const explained = "Failed to execute statement: Client has encountered a connection error and is not queryable"
        const config = { ...fewRetries, WORKER_MAX_DELIVERIES: "3" }

        const { claim } = yield* stash(payload(`lost-${randomUUID()}`))
        const process = yield* processorWith(config).pipe(
          Effect.provideService(TelemetryStore, yield* storeFailing(claim.claim_id, () => loadFailing(claim.claim_id, "Failed to execute statement", lost)))
        )
        for (const delivery of [1, 2]) {
          const { logs, result } = yield* TestServices.provideLive(withLogs(Effect.flip(process(claim))))
          expect(result).toMatchObject({ _tag: "LoadError", transient: true })
          expect(logs.filter((l) => l.level === "ERROR").map((l) => l.message)).toEqual([
            `claim ${claim.claim_id}: ${explained}; the session was lost without the database's answer ` +
            `(delivery ${delivery} of WORKER_MAX_DELIVERIES, 3, counted): leaving the claim queued for later`
          ])
          expect(yield* attemptsOf(claim.claim_id)).toEqual([{ attempts: delivery, last_error: explained }])
        }
        const last = yield* TestServices.provideLive(Effect.flip(process(claim)))
        expect(last).toMatchObject({
          _tag: "ClaimRejected",
          reason: "retries_exhausted",
          attempts: 3,
          message: `${explained} (the session lost without an answer in delivery 3 of WORKER_MAX_DELIVERIES, 3)`
        })
        expect(yield* ledgerOf(claim.claim_id)).toEqual([])
        expect(yield* attemptsOf(claim.claim_id)).toEqual([])

        // Lost on every try of its first delivery only: the next one loads it, and its count goes.
        const p = `lost-once-${randomUUID()}`
        const { claim: second } = yield* stash(payload(p))
        const once = yield* processorWith(config).pipe(
          Effect.provideService(TelemetryStore, yield* storeFailing(second.claim_id, (load) =>
            load <= 3 ? loadFailing(second.claim_id, "Failed to execute statement", lost) : undefined))
        )
        yield* TestServices.provideLive(Effect.flip(once(second)))
        expect(yield* attemptsOf(second.claim_id)).toEqual([{ attempts: 1, last_error: explained }])
        yield* TestServices.provideLive(once(second))
        expect(yield* countWhereEquipment([`${p}-freezer`, `${p}-fridge`])).toEqual({ data: 5, equipments: 2 })
        expect(yield* attemptsOf(second.claim_id)).toEqual([])

        // Lost while storage is down: an outage, given back.
        const storage = yield* ObjectStore
        const { claim: third } = yield* stash(payload(`lost-outage-${randomUUID()}`))
        const outage = yield* processorWith(config).pipe(
          Effect.provideService(TelemetryStore, yield* storeFailing(third.claim_id, () => loadFailing(third.claim_id, "Failed to execute statement", lost))),
          Effect.provideService(ObjectStore, brokenFor(storage, "no such key", true))
        )
        yield* TestServices.provideLive(Effect.flip(outage(third)))
        expect(yield* attemptsOf(third.claim_id)).toEqual([{ attempts: 0, last_error: explained }])
      }))

    it.effect("a defect of the loader is not retried: the claim is dead-lettered as loader_defect", () =>
      Effect.gen(function*() {
        const { claim } = yield* stash(payload(`defect-${randomUUID()}`))
        const store = yield* storeFailing(claim.claim_id, () =>
          Effect.die(new TypeError("Cannot read properties of undefined (reading 'id')")))
        const process = yield* processorWith(fewRetries).pipe(Effect.provideService(TelemetryStore, store))
        const { logs, result } = yield* TestServices.provideLive(withLogs(Effect.flip(process(claim))))
        expect(result).toMatchObject({
          _tag: "ClaimRejected",
          reason: "loader_defect",
          attempts: 1,
          message: "TypeError: Cannot read properties of undefined (reading 'id')"
        })
        expect(logs.filter((l) => l.level === "ERROR").map((l) => l.message)).toEqual([
          `claim ${claim.claim_id}: the loader failed`,
          `claim ${claim.claim_id}: loader defect, dead-lettered: TypeError: Cannot read properties of undefined (reading 'id')`
        ])
        expect(yield* attemptsOf(claim.claim_id)).toEqual([])
      }))

    it.effect("a defect while storage is down is not blamed on the claim: it fails, to come again, and its delivery is given back", () =>
      Effect.gen(function*() {
        const storage = yield* ObjectStore
        const { claim } = yield* stash(payload(`defect-down-${randomUUID()}`))
        const store = yield* storeFailing(claim.claim_id, () => Effect.die(new TypeError("socket gone")))
        const process = yield* processorWith(fewRetries).pipe(
          Effect.provideService(TelemetryStore, store),
          Effect.provideService(ObjectStore, brokenFor(storage, claim.claim_check, true))
        )
        const result = yield* TestServices.provideLive(Effect.flip(process(claim)))
        expect(result).toMatchObject({ _tag: "LoadError", message: "TypeError: socket gone" })
        expect(yield* attemptsOf(claim.claim_id)).toEqual([{ attempts: 0, last_error: "TypeError: socket gone" }])
      }))

    it.effect("a delivery given back while the database is down is given back with the claim's next delivery: an outage is not a crash", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const storage = yield* ObjectStore
        const p = `outages-${randomUUID()}`
        const { claim } = yield* stash(payload(p))
        // Storage down for the first delivery, and the database gone with it before the delivery ends: its give-back
        // (the one update that lowers a count) fails.
        yield* sql`CREATE FUNCTION refuse_give_back() RETURNS trigger LANGUAGE plpgsql
          AS $$ BEGIN RAISE EXCEPTION 'connection terminated unexpectedly'; END $$`
        yield* sql`CREATE TRIGGER refuse_give_back BEFORE UPDATE ON claim_attempts FOR EACH ROW
          WHEN (NEW.attempts < OLD.attempts) EXECUTE FUNCTION refuse_give_back()`
        let down = true
        const flaky = ObjectStore.of({
          ...storage,
          get: (k) =>
            down && k === claim.claim_check
              ? Stream.fail(new StorageError({ operation: "get", key: k, message: "internal error (500)" }))
              : storage.get(k),
          check: Effect.suspend(() => (down ? refused : storage.check))
        })
        const process = yield* processorWith({ ...fewRetries, WORKER_RETRY_ATTEMPTS: "1", WORKER_MAX_DELIVERIES: "1" }).pipe(
          Effect.provideService(ObjectStore, flaky)
        )
        const first = yield* TestServices.provideLive(withLogs(Effect.flip(process(claim))))
        expect(first.result).toMatchObject({ _tag: "StorageError" })
        expect(first.logs.filter((l) => l.level === "WARN").map((l) => l.message)).toContainEqual(
          expect.stringContaining(`claim ${claim.claim_id}: its delivery count was not given back (`)
        )
        yield* sql`DROP TRIGGER refuse_give_back ON claim_attempts`
        yield* sql`DROP FUNCTION refuse_give_back`
        down = false
        // Counted as a delivery that never ended, as a crash's would be.
        expect(yield* attemptsOf(claim.claim_id)).toEqual([{ attempts: 1, last_error: null }])

        // Within WORKER_MAX_DELIVERIES (1) only because the first is given back now.
        yield* process(claim)
        expect(yield* ledgerOf(claim.claim_id)).toMatchObject([{ items: 2, readings: 5 }])
        expect(yield* countWhereEquipment([`${p}-freezer`, `${p}-fridge`])).toEqual({ data: 5, equipments: 2 })
        expect(yield* attemptsOf(claim.claim_id)).toEqual([])
      }))

    it.effect("deliveries that never ended are counted: past WORKER_MAX_DELIVERIES the claim is dead-lettered unloaded", () =>
      Effect.gen(function*() {
        const p = `crashed-${randomUUID()}`
        const { claim } = yield* stash(payload(p))
        // Two deliveries began loading and their process died (nothing ended them).
        yield* ClaimAttempts.begin(claim.claim_id)
        yield* ClaimAttempts.begin(claim.claim_id)
        const process = yield* processorWith({ WORKER_MAX_DELIVERIES: "2" })
        const { logs, result } = yield* withLogs(Effect.flip(process(claim)))
        expect(result).toMatchObject({ _tag: "ClaimRejected", reason: "too_many_attempts", attempts: 2 })
        expect(result.message).toContain("delivered 3 times, 2 of them never ended or lost their session, more than WORKER_MAX_DELIVERIES (2)")
        expect(logs.filter((l) => l.level === "ERROR").map((l) => l.message)).toEqual([
          expect.stringContaining(`claim ${claim.claim_id}: too many deliveries, dead-lettered unloaded`)
        ])
        expect(yield* ledgerOf(claim.claim_id)).toEqual([])
        expect(yield* countWhereEquipment([`${p}-freezer`, `${p}-fridge`])).toEqual({ data: 0, equipments: 0 })
        expect(yield* attemptsOf(claim.claim_id)).toEqual([])
      }))

    it.effect("a delivery that never ended counts once; within the limit the claim loads, and its count is removed", () =>
      Effect.gen(function*() {
        const { claim } = yield* stash(payload(`survivor-${randomUUID()}`))
        yield* ClaimAttempts.begin(claim.claim_id)
        expect(yield* attemptsOf(claim.claim_id)).toEqual([{ attempts: 1, last_error: null }])
        yield* (yield* processorWith({ WORKER_MAX_DELIVERIES: "2" }))(claim)
        expect(yield* ledgerOf(claim.claim_id)).toMatchObject([{ items: 2, readings: 5 }])
        expect(yield* attemptsOf(claim.claim_id)).toEqual([])
      }))
  })
})
