import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import {
  type ClaimCheck,
  type Equipment,
  LedgerError,
  LoadError,
  type LoadOutcome,
  mergeLatest,
  type Sensor,
  type TelemetryItem,
  TelemetryStore,
  type ReadingDays
} from "@telemetry/domain"
import { Chunk, Config, Data, Duration, Effect, identity, Layer, Sink, Stream } from "effect"
import { BulkCopy, copyField, copyTimestamp } from "./BulkCopy.js"
import * as ClaimAttempts from "./ClaimAttempts.js"
import * as DatabaseErrors from "./DatabaseErrors.js"
import * as Transaction from "./Transaction.js"

export interface SqlTelemetryStoreOptions {
  /** Readings per COPY chunk. */
  readonly batchReadings: number
  /**
   * Commit a claim of more than one batch batch by batch, instead of in one transaction: for a database with one
   * session (the embedded one), which every other statement waits for while a transaction holds it. The payload
   * is decoded through once first, so that one failing part-way writes nothing. Assumes one load of a claim at a
   * time (the in-process queue's), which the ledger's row lock no longer ensures across commits.
   */
  readonly commitEachBatch?: boolean | undefined
  /**
   * How long another session's load of the same claim may wait on its worker (idle in its transaction, or in a
   * COPY waiting for rows) before a new delivery ends that session and loads the claim itself (default 1 minute).
   * Not with `commitEachBatch`, whose one session loads one claim at a time.
   */
  readonly takeOverAfter?: Duration.DurationInput | undefined
  /**
   * Equipments and sensors a tenant may have (0: no limit). A claim that would take its tenant past either is
   * refused by the database (dead-lettered as unloadable; replayable once the limit is raised): a tenant naming ever
   * new equipments would otherwise grow without bound what every query of its own scans, and the database all share.
   */
  readonly maxEquipmentsPerTenant?: number | undefined
  readonly maxSensorsPerTenant?: number | undefined
}

/** A load would take its tenant past one of its limits: loading it again will not help until the limit is raised. */
class TenantLimitReached extends Data.TaggedError("TenantLimitReached")<{
  readonly tenantId: string
  readonly what: "equipments" | "sensors"
  readonly count: number
  readonly limit: number
  readonly variable: string
}> {
  override get message() {
    return `tenant "${this.tenantId}" would have ${this.count} ${this.what}, over its limit of ${this.limit} ` +
      `(${this.variable}): its load is refused (on the embedded database, after the batches it committed before this ` +
      "one); raise the limit and replay the claim to load it"
  }
}

/** The advisory locks of claims being loaded: this first key, then the first 32 bits of the claim id. */
const CLAIM_LOCKS = 0x54454c45

// The ids come first in a row, as fixed-width placeholders filled in once known (see EncodedItem).
const COLUMNS = ["equipment_id", "sensor_id", "time", "value", "status", "metadata"] as const
/** Digits of an id placeholder: an int4 has at most 10, and PostgreSQL reads leading zeros. */
const ID_WIDTH = 10
const PLACEHOLDERS = `${"0".repeat(ID_WIDTH)}\t${"0".repeat(ID_WIDTH)}\t`
const NEWLINE = 0x0a
const DAY_MICROS = 86_400_000_000

const sortedDays = (days: ReadonlySet<number>): ReadingDays => Array.from(days).sort((a, b) => a - b)
/** A temporary table of this session through which readings that may be stored already reach telemetry_data. */
const STAGING = "telemetry_staging"

/**
 * An item's readings as COPY rows, made as soon as the item is decoded, whose ids are still placeholders: the
 * equipment and sensor ids are known only once the batch's upserts ran. The rows wait for their batch's COPY in
 * a Buffer, outside the JS heap: held as objects, every reading of a waiting batch would be copied by each young
 * generation collection until promoted, and then left for a full collection (several µs a reading, measured).
 */
interface EncodedItem {
  readonly equipment: Equipment
  /** A later part of a large item (see TelemetryItem). */
  readonly continued: boolean
  readonly sensors: ReadonlyArray<Sensor>
  readonly rows: Buffer
  /** Index in `sensors` of the sensor of each row. */
  readonly sensorOfRow: Uint32Array
  readonly expired: number
}

const encode = (item: TelemetryItem): EncodedItem => {
  const sensorIndex = new Map(item.sensors.map((sensor, k) => [sensor.uuid, k]))
  const sensorOfRow = new Uint32Array(item.readings.length)
  let rows = ""
  for (let k = 0; k < item.readings.length; k++) {
    const r = item.readings[k]!
    const sensor = sensorIndex.get(r.sensorUuid)
    if (sensor === undefined) throw new Error(`reading of sensor ${r.sensorUuid}, which is not among its item's sensors`)
    sensorOfRow[k] = sensor
    rows += `${PLACEHOLDERS}${copyTimestamp(r.timeMicros)}\t${r.value ?? "\\N"}\t${copyField(r.status)}\t${copyField(r.metadata)}\n`
  }
  return {
    equipment: item.equipment,
    continued: item.continued === true,
    sensors: item.sensors,
    rows: Buffer.from(rows),
    sensorOfRow,
    expired: item.expired ?? 0
  }
}

const idBytes = (id: number) => Buffer.from(String(id).padStart(ID_WIDTH, "0"))

/** An item's ids as COPY fields: its equipment's, and its sensors' in the order of `EncodedItem.sensors`. */
interface ItemIds {
  readonly equipment: Buffer
  readonly sensors: ReadonlyArray<Buffer>
}

/** The rows of `items` with their ids filled in, an item at a time, as the COPY reads them. */
function* copyRows(items: Chunk.Chunk<EncodedItem>, ids: ReadonlyArray<ItemIds>): Generator<Uint8Array> {
  let k = 0
  for (const item of items) {
    const { equipment, sensors } = ids[k++]!
    const { rows, sensorOfRow } = item
    let at = 0
    for (let r = 0; r < sensorOfRow.length; r++) {
      rows.set(equipment, at)
      rows.set(sensors[sensorOfRow[r]!]!, at + ID_WIDTH + 1)
      // A newline inside a field is escaped (\n), so the next byte 0x0a ends the row.
      at = rows.indexOf(NEWLINE, at + PLACEHOLDERS.length) + 1
    }
    yield rows
  }
}

/** SQLSTATE 23505: a row the unique reading index already holds. */
const isUniqueViolation = (e: SqlError) => (e.cause as { readonly code?: unknown } | undefined)?.code === "23505"

/** One description per key, merged in order; sorted so concurrent loads lock rows in the same order. */
const distinctBy = <A extends object>(
  values: Iterable<A>,
  key: (a: A) => string,
  merge: (before: A | undefined, after: A) => A = mergeLatest
): Array<A> => {
  const byKey = new Map<string, A>()
  for (const value of values) byKey.set(key(value), merge(byKey.get(key(value)), value))
  return Array.from(byKey.entries()).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, value]) => value)
}

type Totals = Omit<Extract<LoadOutcome, { _tag: "Loaded" }>, "_tag" | "days" | "earliest">

const NO_TOTALS: Totals = { items: 0, readings: 0, duplicates: 0, expired: 0 }

const addTotals = (a: Totals, b: Totals): Totals => ({
  items: a.items + b.items,
  readings: a.readings + b.readings,
  duplicates: a.duplicates + b.duplicates,
  expired: a.expired + b.expired
})

/** An equipment's or sensor's id, and the description this load last wrote for it. */
interface Written {
  readonly id: number
  readonly description: string
}

/** Entries kept per load: past this many, a payload naming ever new equipments or sensors starts over. */
const MAX_WRITTEN = 10_000

/** The ids of upserted rows by key, and how many of them are new. */
interface Upserted {
  readonly ids: ReadonlyMap<string, number>
  readonly inserted: number
}

/**
 * The ids of `values` by key, upserting only those whose description is not the one this load wrote last: the
 * upsert would leave those as they are and only answer their ids. A large payload names the same equipments and
 * sensors batch after batch, so most of its batches then need no round trip before their COPY.
 */
const upsertChanged = <A>(
  written: Map<string, Written>,
  values: ReadonlyArray<A>,
  key: (a: A) => string,
  description: (a: A) => object,
  upsert: (values: ReadonlyArray<A>) => Effect.Effect<Upserted, SqlError>
) =>
  Effect.gen(function*() {
    if (written.size > MAX_WRITTEN) written.clear()
    const descriptions = values.map((value) => JSON.stringify(description(value)))
    const changed = values.filter((value, k) => written.get(key(value))?.description !== descriptions[k])
    let inserted = 0
    if (changed.length > 0) {
      const upserted = yield* upsert(changed)
      inserted = upserted.inserted
      values.forEach((value, k) => {
        const id = upserted.ids.get(key(value))
        if (id !== undefined) written.set(key(value), { id, description: descriptions[k]! })
      })
    }
    // Those the database answered no id for are left out: the caller refuses to load their rows.
    const ids = new Map(values.flatMap((value) => {
      const id = written.get(key(value))?.id
      return id === undefined ? [] : [[key(value), id] as const]
    }))
    return { ids, inserted } satisfies Upserted
  })

/** The statements of an upsert of some rows, each answering ids under the rows' keys. */
interface UpsertStatements {
  /** Inserts the rows not stored yet, answering theirs. */
  readonly insert: Effect.Effect<ReadonlyArray<{ readonly id: number; readonly key: string }>, SqlError>
  /** Updates the stored rows whose attributes changed. */
  readonly update: Effect.Effect<unknown, SqlError>
  readonly select: Effect.Effect<ReadonlyArray<{ readonly id: number; readonly key: string }>, SqlError>
}

/**
 * The ids of `values` by key, new ones inserted and stored ones updated: the update and the read run only for the
 * rows the INSERT did not answer, so a payload of new equipments or sensors needs one statement for them.
 */
const upsertBy = <A>(
  values: ReadonlyArray<A>,
  key: (a: A) => string,
  statements: (values: ReadonlyArray<A>) => UpsertStatements
) =>
  Effect.gen(function*() {
    const ids = new Map((yield* statements(values).insert).map((row) => [row.key, row.id]))
    const inserted = ids.size
    const stored = values.filter((value) => !ids.has(key(value)))
    if (stored.length > 0) {
      const { select, update } = statements(stored)
      yield* update
      for (const row of yield* select) ids.set(row.key, row.id)
    }
    return { ids, inserted } satisfies Upserted
  })

const sensorKey = (s: { readonly equipmentId: number; readonly sensor: Sensor }) => `${s.equipmentId}:${s.sensor.uuid}`

/** The UTC days of a claim's readings, and the time of its earliest (ms), noted as its items pass. */
interface Seen {
  readonly days: Set<number>
  earliestMicros: number
}

const seen = (): Seen => ({ days: new Set(), earliestMicros: Infinity })
const earliestOf = (s: Seen) => (s.earliestMicros === Infinity ? null : Math.floor(s.earliestMicros / 1000))

/** `items`, noting the days and the earliest time of their readings in `seen` as they pass. */
const noting = <E, R>(items: Stream.Stream<TelemetryItem, E, R>, seen: Seen) =>
  Stream.map(items, (item) => {
    let lastDay = NaN
    for (const r of item.readings) {
      const day = Math.floor(r.timeMicros / DAY_MICROS)
      if (day !== lastDay) seen.days.add(lastDay = day)
      if (r.timeMicros < seen.earliestMicros) seen.earliestMicros = r.timeMicros
    }
    return item
  })

/** The days and earliest time of the readings of `items`, read through without loading them. */
const seenIn = <E, R>(items: Stream.Stream<TelemetryItem, E, R>) =>
  Effect.suspend(() => {
    const s = seen()
    return Effect.as(Stream.runDrain(noting(items, s)), s)
  })

/**
 * `items` without their first `readings` readings, expired ones included: the items of the batches an earlier
 * delivery committed (a batch holds whole items, and a payload decodes to the same items every time). Counting the
 * expired ones too, every item counts at least one (an item's `sensor` is not empty).
 */
const skipReadings = <E, R>(items: Stream.Stream<TelemetryItem, E, R>, readings: number) =>
  readings === 0 ? items : Stream.suspend(() => {
    let skipped = 0
    return Stream.dropWhile(items, (item) => {
      const count = item.readings.length + (item.expired ?? 0)
      if (skipped + count > readings) return false
      skipped += count
      return true
    })
  })

export const make = (options: SqlTelemetryStoreOptions) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const transaction = Transaction.keepingFailure(sql)
    const bulk = yield* BulkCopy

    // New rows answer their ids from their INSERT; only rows that existed are then updated where they changed and
    // read. Unchanged rows are not touched (and so not locked), so concurrent loads for the same equipment do not
    // queue behind each other. The INSERTs skip the rows stored already before ON CONFLICT would: a row it refuses
    // has taken an id from the sequence all the same, and every claim naming its equipments and sensors again took
    // as many (at 100 000 sensors a minute, the int4 ids ran out within weeks).
    const upsertEquipments = (tenantId: string, equipments: ReadonlyArray<Equipment>) =>
      upsertBy(equipments, (e) => e.uuid, (rows) => {
        const cols = {
          uuid: rows.map((e) => e.uuid),
          name: rows.map((e) => e.name),
          location: rows.map((e) => e.location),
          status: rows.map((e) => e.status),
          interval: rows.map((e) => e.collectionInterval),
          siren: rows.map((e) => e.sirenActive),
          sirenTime: rows.map((e) => e.sirenTime)
        }
        const values = sql`unnest(${cols.uuid}::text[], ${cols.name}::text[], ${cols.location}::text[],
          ${cols.status}::text[], ${cols.interval}::int[], ${cols.siren}::bool[], ${cols.sirenTime}::int[])
          AS v (uuid, name, location, status, collection_interval, siren_active, siren_time)`
        return {
          insert: sql<{ id: number; key: string }>`INSERT INTO equipments (tenant_id, uuid, name, location, status,
              collection_interval, siren_active, siren_time)
            SELECT ${tenantId}, v.* FROM ${values}
            WHERE NOT EXISTS (SELECT 1 FROM equipments e WHERE e.tenant_id = ${tenantId} AND e.uuid = v.uuid)
            ON CONFLICT (tenant_id, uuid) DO NOTHING RETURNING id, uuid AS key`,
          update: sql`UPDATE equipments e SET name = coalesce(v.name, e.name), location = coalesce(v.location, e.location),
              status = v.status, collection_interval = v.collection_interval, siren_active = v.siren_active,
              siren_time = v.siren_time, updated_at = now()
            FROM ${values}
            WHERE e.tenant_id = ${tenantId} AND e.uuid = v.uuid
              AND (e.name, e.location, e.status, e.collection_interval, e.siren_active, e.siren_time)
                IS DISTINCT FROM (coalesce(v.name, e.name), coalesce(v.location, e.location), v.status,
                  v.collection_interval, v.siren_active, v.siren_time)`,
          select: sql<{ id: number; key: string }>`SELECT id, uuid AS key FROM equipments
            WHERE tenant_id = ${tenantId} AND uuid = ANY(${cols.uuid}::text[])`
        }
      })

    const upsertSensors = (sensors: ReadonlyArray<{ readonly equipmentId: number; readonly sensor: Sensor }>) =>
      upsertBy(sensors, sensorKey, (rows) => {
        const pick = <A>(f: (s: Sensor) => A) => rows.map((s) => f(s.sensor))
        const equipmentIds = rows.map((s) => s.equipmentId)
        const values = sql`unnest(${equipmentIds}::int[], ${pick((s) => s.uuid)}::text[], ${pick((s) => s.name)}::text[],
          ${pick((s) => s.type)}::text[], ${pick((s) => s.unit)}::text[], ${pick((s) => s.status)}::text[],
          ${pick((s) => s.manufacturer)}::text[], ${pick((s) => s.model)}::text[], ${pick((s) => s.firmware)}::text[],
          ${pick((s) => s.hardwareId)}::text[], ${pick((s) => s.viaHub)}::text[])
          AS v (equipment_id, uuid, name, type, unit, status, manufacturer, model, firmware, hardware_id, via_hub)`
        return {
          insert: sql<{ id: number; key: string }>`INSERT INTO sensors (equipment_id, uuid, name, type, unit, status,
              manufacturer, model, firmware, hardware_id, via_hub)
            SELECT v.equipment_id, v.uuid, v.name, coalesce(v.type, 'unknown'), v.unit, v.status, v.manufacturer, v.model,
              v.firmware, v.hardware_id, v.via_hub
            FROM ${values}
            WHERE NOT EXISTS (SELECT 1 FROM sensors s WHERE s.equipment_id = v.equipment_id AND s.uuid = v.uuid)
            ON CONFLICT (equipment_id, uuid) DO NOTHING RETURNING id, equipment_id || ':' || uuid AS key`,
          // Attributes a payload did not carry (null) keep their stored value.
          update: sql`UPDATE sensors s SET name = n.name, type = n.type, unit = n.unit, status = n.status,
              manufacturer = n.manufacturer, model = n.model, firmware = n.firmware, hardware_id = n.hardware_id,
              via_hub = n.via_hub, updated_at = now()
            FROM (SELECT s.id, coalesce(v.name, s.name) AS name, coalesce(v.type, s.type) AS type,
                    coalesce(v.unit, s.unit) AS unit, coalesce(v.status, s.status) AS status,
                    coalesce(v.manufacturer, s.manufacturer) AS manufacturer, coalesce(v.model, s.model) AS model,
                    coalesce(v.firmware, s.firmware) AS firmware, coalesce(v.hardware_id, s.hardware_id) AS hardware_id,
                    coalesce(v.via_hub, s.via_hub) AS via_hub
                  FROM sensors s JOIN ${values} ON s.equipment_id = v.equipment_id AND s.uuid = v.uuid) n
            WHERE s.id = n.id
              AND (s.name, s.type, s.unit, s.status, s.manufacturer, s.model, s.firmware, s.hardware_id, s.via_hub)
                IS DISTINCT FROM (n.name, n.type, n.unit, n.status, n.manufacturer, n.model, n.firmware, n.hardware_id, n.via_hub)`,
          select: sql<{ id: number; key: string }>`SELECT s.id, s.equipment_id || ':' || s.uuid AS key
            FROM sensors s JOIN ${values} ON s.equipment_id = v.equipment_id AND s.uuid = v.uuid`
        }
      })

    /** What a load wrote so far, by equipment uuid and by `equipment id:sensor uuid`. */
    interface LoadState {
      readonly tenantId: string
      readonly equipments: Map<string, Written>
      readonly sensors: Map<string, Written>
      /** The claim met readings already stored: its later batches go through the staging table at once. */
      overlapping: boolean
    }

    const columns = sql.unsafe(COLUMNS.join(", "))

    /**
     * Readings already stored (a resend, an overlapping claim) are skipped and the first stored value kept: the
     * rows go through a staging table, emptied at each commit, into an INSERT that skips what the unique reading
     * index holds. Answers how many were inserted.
     */
    const insertNew = (rows: Iterable<Uint8Array>) =>
      Effect.gen(function*() {
        // `seq` numbers the rows as copied: inserted in that order, the first of a reading repeated in the payload
        // wins, as it does in a COPY (a scan of the staging table need not return its rows in the order written).
        yield* sql`CREATE TEMP TABLE IF NOT EXISTS ${sql(STAGING)} (LIKE telemetry_data, seq bigserial) ON COMMIT DELETE ROWS`
        yield* bulk.copyText(STAGING, COLUMNS, rows)
        const [inserted] = yield* sql<{ n: number }>`WITH inserted AS (
            INSERT INTO telemetry_data (${columns}) SELECT ${columns} FROM ${sql(STAGING)} ORDER BY seq
            ON CONFLICT DO NOTHING RETURNING 1
          ) SELECT count(*)::int AS n FROM inserted`
        yield* sql`TRUNCATE ${sql(STAGING)}`
        return inserted?.n ?? 0
      })

    /**
     * A batch's rows, copied straight into telemetry_data — as fast as loading gets — in a savepoint; if one of
     * them is stored already (the unique index refuses the COPY), the savepoint is rolled back and the batch goes
     * through `insertNew`, and so do the claim's later batches.
     */
    const insertBatch = (load: LoadState, rows: () => Iterable<Uint8Array>, count: number) =>
      load.overlapping
        ? insertNew(rows())
        : transaction(bulk.copyText("telemetry_data", COLUMNS, rows())).pipe(
          Effect.as(count),
          Effect.catchIf(isUniqueViolation, () => {
            load.overlapping = true
            return insertNew(rows())
          })
        )

    const limits = [
      { what: "equipments", limit: options.maxEquipmentsPerTenant ?? 0, variable: "MAX_EQUIPMENTS_PER_TENANT" },
      { what: "sensors", limit: options.maxSensorsPerTenant ?? 0, variable: "MAX_SENSORS_PER_TENANT" }
    ] as const
    const withinLimits = (tenantId: string, counts: { readonly equipments: number; readonly sensors: number }) =>
      Effect.forEach(limits, ({ limit, variable, what }) =>
        limit > 0 && counts[what] > limit
          ? Effect.fail(new TenantLimitReached({ tenantId, what, count: counts[what], limit, variable }))
          : Effect.void, { discard: true })

    /**
     * Refuses a batch that would take its tenant past a limit before it writes anything: a refused load's rows,
     * rolled back, would still be written and left for the vacuum (which the embedded database never runs) — a
     * tenant at its limit sending ever new equipments grew the embedded database by ~1 GB a minute so. Only the
     * equipments and sensors this load has not written yet may be new; the database says which are.
     */
    const refuseOverLimits = (load: LoadState, items: Chunk.Chunk<EncodedItem>) =>
      Effect.gen(function*() {
        if (limits.every((l) => l.limit === 0)) return
        const unseen = new Map<string, Set<string>>()
        for (const item of items) {
          const id = load.equipments.get(item.equipment.uuid)?.id
          for (const sensor of item.sensors) {
            if (id !== undefined && load.sensors.has(`${id}:${sensor.uuid}`)) continue
            const sensors = unseen.get(item.equipment.uuid) ?? new Set()
            unseen.set(item.equipment.uuid, sensors.add(sensor.uuid))
          }
        }
        if (unseen.size === 0) return
        const pairs = Array.from(unseen, ([equipment, sensors]) => Array.from(sensors, (sensor) => [equipment, sensor] as const)).flat()
        const [after] = yield* sql<{ equipments: number; sensors: number }>`WITH v AS (
            SELECT * FROM unnest(${pairs.map(([e]) => e)}::text[], ${pairs.map(([, s]) => s)}::text[]) AS v (equipment, sensor)
          ), counted AS (SELECT equipments, sensors FROM tenant_entities WHERE tenant_id = ${load.tenantId})
          SELECT (coalesce((SELECT equipments FROM counted), 0) + (SELECT count(DISTINCT v.equipment) FROM v
              WHERE NOT EXISTS (SELECT 1 FROM equipments e WHERE e.tenant_id = ${load.tenantId} AND e.uuid = v.equipment)))::int
              AS equipments,
            (coalesce((SELECT sensors FROM counted), 0) + (SELECT count(*) FROM v
              WHERE NOT EXISTS (SELECT 1 FROM equipments e JOIN sensors s ON s.equipment_id = e.id
                WHERE e.tenant_id = ${load.tenantId} AND e.uuid = v.equipment AND s.uuid = v.sensor)))::int AS sensors`
        if (after !== undefined) yield* withinLimits(load.tenantId, after)
      })

    /**
     * Counts the equipments and sensors a batch added to its tenant's, failing if that takes it past a limit (counted
     * without limits too, so that one set later holds): loads adding to one tenant at the same time may each have
     * passed `refuseOverLimits`. The count's row stays locked until the commit, so they count one after another.
     */
    const countNew = (tenantId: string, equipments: number, sensors: number) =>
      Effect.gen(function*() {
        if (equipments === 0 && sensors === 0) return
        const [counts] = yield* sql<{ equipments: number; sensors: number }>`INSERT INTO tenant_entities
            (tenant_id, equipments, sensors) VALUES (${tenantId}, ${equipments}, ${sensors})
          ON CONFLICT (tenant_id) DO UPDATE SET equipments = tenant_entities.equipments + EXCLUDED.equipments,
            sensors = tenant_entities.sensors + EXCLUDED.sensors
          RETURNING equipments::int, sensors::int`
        if (counts !== undefined) yield* withinLimits(tenantId, counts)
      })

    const loadBatch = (
      load: LoadState,
      items: Chunk.Chunk<EncodedItem>
    ): Effect.Effect<Totals, SqlError | TenantLimitReached> =>
      Effect.gen(function*() {
        if (Chunk.isEmpty(items)) return NO_TOTALS
        yield* refuseOverLimits(load, items)
        const equipments = yield* upsertChanged(
          load.equipments,
          distinctBy(Chunk.map(items, (i) => i.equipment), (e) => e.uuid),
          (e) => e.uuid,
          (e) => e,
          (equipments) => upsertEquipments(load.tenantId, equipments)
        )
        const equipmentIds = equipments.ids
        const sensors = yield* upsertChanged(
          load.sensors,
          distinctBy(
            Chunk.flatMap(items, (item) => {
              const equipmentId = equipmentIds.get(item.equipment.uuid)!
              return Chunk.unsafeFromArray(item.sensors.map((sensor) => ({ equipmentId, sensor })))
            }),
            sensorKey,
            (before, after) => ({ ...after, sensor: mergeLatest(before?.sensor, after.sensor) })
          ),
          sensorKey,
          (s) => s.sensor,
          upsertSensors
        )
        yield* countNew(load.tenantId, equipments.inserted, sensors.inserted)
        const sensorIds = sensors.ids
        // The upserts answer the ids of the identities as the database stored them: one that came back under
        // no key would be an identity the database changed (unreachable since the codec refuses what it cannot
        // store as sent), which must not be loaded under another's id.
        const ids = yield* Effect.forEach(items, (item) => {
          const equipment = equipmentIds.get(item.equipment.uuid)
          const sensors = item.sensors.map((sensor) => sensorIds.get(`${equipment}:${sensor.uuid}`))
          return equipment === undefined || sensors.includes(undefined)
            ? Effect.dieMessage(`equipment ${JSON.stringify(item.equipment.uuid)} or one of its sensors has no id after its upsert`)
            : Effect.succeed<ItemIds>({ equipment: idBytes(equipment), sensors: sensors.map((id) => idBytes(id!)) })
        })
        let readings = 0
        let whole = 0
        let expired = 0
        for (const item of items) {
          if (!item.continued) whole++
          readings += item.sensorOfRow.length
          expired += item.expired
        }
        const duplicates = readings - (yield* insertBatch(load, () => copyRows(items, ids), readings))
        return { items: whole, readings, duplicates, expired }
      })

    const takeOverAfter = Duration.decode(options.takeOverAfter ?? Duration.minutes(1))
    /**
     * Holds the claim's advisory lock until the transaction ends; another delivery's load of the claim holds it
     * meanwhile. A load that goes on is waited for (its ledger row then says the claim is loaded). One whose session
     * has waited on its worker for `takeOverAfter` is ended: its worker is frozen, or cut off from the database
     * while the session lives on, and the locks of its rows would hold up this delivery until TCP gives the session
     * up (hours). Only sessions of this database user are looked at, which it may end.
     */
    const fenced = (claim: ClaimCheck) => {
      const key = Number.parseInt(claim.claim_id.slice(0, 8), 16)
      const locked = Effect.map(
        sql<{ got: boolean }>`SELECT pg_try_advisory_xact_lock(${CLAIM_LOCKS}::int, ${key | 0}::int) AS got`,
        ([row]) => row?.got === true
      )
      // Materialized, so that no session is ended before all the conditions are checked. The transaction's view
      // of the sessions is taken at its first look and kept (as is its now()), so each look clears it first.
      const endStuck = Effect.zipRight(sql`SELECT pg_stat_clear_snapshot()`, sql<{ pid: number }>`WITH stuck AS MATERIALIZED (
          SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.classid = ${CLAIM_LOCKS}::oid AND l.objid = ${key}::oid
            AND l.objsubid = 2 AND l.pid <> pg_backend_pid() AND a.usename = current_user
            AND (a.state LIKE 'idle in transaction%' OR (a.state = 'active' AND a.wait_event = 'ClientRead'))
            AND a.state_change < clock_timestamp() - make_interval(secs => ${Duration.toSeconds(takeOverAfter)})
        ) SELECT pid FROM stuck WHERE pg_terminate_backend(pid)`)
      return Effect.gen(function*() {
        while (!(yield* locked)) {
          const ended = yield* endStuck
          if (ended.length > 0) {
            yield* Effect.logWarning(
              `claim ${claim.claim_id}: ended database session ${ended.map((s) => s.pid).join(", ")}, whose load of the ` +
                `claim had waited on its worker for over ${Duration.format(takeOverAfter)}; this delivery loads it`
            )
          }
          yield* Effect.sleep(Duration.seconds(1))
        }
      })
    }

    /** The claim's ledger row, if no other holds it: a concurrent load of the same claim waits here, then finds it taken. */
    const claimLedger = (claim: ClaimCheck, partial: boolean) =>
      Effect.map(
        sql`INSERT INTO claim_ledger (claim_id, object_key, tenant_id, request_id, items, readings, duplicates, expired,
            partial)
          VALUES (${claim.claim_id}, ${claim.claim_check}, ${claim.metadata.tenantId}, ${claim.metadata.requestId},
            ${partial ? 0 : null}, ${partial ? 0 : null}, ${partial ? 0 : null}, ${partial ? 0 : null}, ${partial})
          ON CONFLICT (claim_id) DO NOTHING RETURNING claim_id`,
        (rows) => rows.length > 0
      )

    const newLoad = (claim: ClaimCheck): LoadState => ({
      tenantId: claim.metadata.tenantId,
      equipments: new Map(),
      sensors: new Map(),
      overlapping: false
    })

    /** A loaded claim, with the days of its readings its ledger row recorded. */
    const alreadyLoaded = (claim: ClaimCheck) =>
      Effect.map(
        sql<{ days: ReadonlyArray<number> | null }>`SELECT days FROM claim_ledger WHERE claim_id = ${claim.claim_id}`,
        ([row]) => ({ _tag: "AlreadyLoaded" as const, days: row?.days ?? [] })
      )

    /** The totals of loading `items` batch by batch, each batch's load passed through `each` (to commit it). */
    const loadBatches = <E, R>(
      load: LoadState,
      items: Stream.Stream<TelemetryItem, E, R>,
      each: (loading: Effect.Effect<Totals, SqlError | TenantLimitReached>) => Effect.Effect<Totals, SqlError | TenantLimitReached>
    ) =>
      items.pipe(
        Stream.map(encode),
        Stream.transduce(
          Sink.foldWeighted({
            initial: Chunk.empty<EncodedItem>(),
            maxCost: options.batchReadings,
            cost: (_, item) => item.sensorOfRow.length,
            body: (batch, item) => Chunk.append(batch, item)
          })
        ),
        // The next batch is read and validated while this one is copied, so this process and the database work
        // at the same time instead of taking turns.
        Stream.buffer({ capacity: 1 }),
        Stream.mapEffect((batch) =>
          each(loadBatch(load, batch).pipe(Effect.withSpan("TelemetryStore.loadBatch", { attributes: { "batch.items": batch.length } })))
        ),
        Stream.runFold(NO_TOTALS, addTotals)
      )

    const loadWhole = <E, R>(claim: ClaimCheck, items: Stream.Stream<TelemetryItem, E, R>) =>
      transaction(
        Effect.gen(function*() {
          yield* fenced(claim)
          if (!(yield* claimLedger(claim, false))) return yield* alreadyLoaded(claim)
          const readings = seen()
          const totals = yield* loadBatches(newLoad(claim), noting(items, readings), identity)
          const days = sortedDays(readings.days)
          yield* sql`UPDATE claim_ledger SET items = ${totals.items}, readings = ${totals.readings},
            duplicates = ${totals.duplicates}, expired = ${totals.expired}, days = ${days}::int[]
            WHERE claim_id = ${claim.claim_id}`
          return { _tag: "Loaded", ...totals, days, earliest: earliestOf(readings) } as const
        })
      )

    const loadInBatches = <E, R>(claim: ClaimCheck, items: Stream.Stream<TelemetryItem, E, R>) =>
      Effect.gen(function*() {
        const readings = yield* seenIn(items)
        const days = sortedDays(readings.days)
        // The readings committed by an earlier delivery that stopped part-way, which this one skips.
        const committed = yield* transaction(Effect.gen(function*() {
          if (yield* claimLedger(claim, true)) return 0
          const [row] = yield* sql<{ partial: boolean; readings: number }>`SELECT partial,
            readings + coalesce(expired, 0) AS readings FROM claim_ledger WHERE claim_id = ${claim.claim_id}`
          return row?.partial === true ? row.readings : null
        }))
        if (committed === null) return yield* alreadyLoaded(claim)
        yield* loadBatches(newLoad(claim), skipReadings(items, committed), (loading) =>
          transaction(Effect.tap(loading, (t) =>
            Effect.zipRight(
              sql`UPDATE claim_ledger SET items = items + ${t.items}, readings = readings + ${t.readings},
                duplicates = duplicates + ${t.duplicates}, expired = coalesce(expired, 0) + ${t.expired}
                WHERE claim_id = ${claim.claim_id}`,
              ClaimAttempts.progressed(claim.claim_id)
            ))).pipe(Effect.provideService(SqlClient.SqlClient, sql)))
        // The totals of every delivery's batches.
        const [totals] = yield* sql<Totals>`UPDATE claim_ledger
          SET partial = false, days = ${days}::int[] WHERE claim_id = ${claim.claim_id}
          RETURNING items, readings, duplicates, coalesce(expired, 0) AS expired`
        if (totals === undefined) return yield* Effect.dieMessage(`claim ${claim.claim_id}: its ledger row is gone`)
        return { _tag: "Loaded", ...totals, days, earliest: earliestOf(readings) } as const
      })

    return TelemetryStore.of({
      load: <E, R>(claim: ClaimCheck, items: Stream.Stream<TelemetryItem, E, R>) =>
        // A claim that fits in one batch is one transaction either way.
        (options.commitEachBatch === true && claim.metadata.totalSensors > options.batchReadings
          ? loadInBatches(claim, items)
          : loadWhole(claim, items)).pipe(
            Effect.catchIf(
              (e): e is SqlError | TenantLimitReached => e instanceof SqlError || e instanceof TenantLimitReached,
              (cause) =>
                Effect.fail(
                  new LoadError({
                    claimId: claim.claim_id,
                    message: cause.message,
                    transient: cause instanceof SqlError && DatabaseErrors.isTransient(cause),
                    cause
                  })
                )
            ),
            Effect.withSpan("TelemetryStore.load")
          ),
      loadedClaims: (claimIds) =>
        sql<{ claim_id: string }>`SELECT claim_id FROM claim_ledger
          WHERE claim_id = ANY(${claimIds}::uuid[]) AND NOT partial`.pipe(
          Effect.map((rows) => new Set(rows.map((r) => r.claim_id))),
          Effect.mapError((cause) => new LedgerError({ message: cause.message, cause }))
        )
    })
  })

export const layer = (options: SqlTelemetryStoreOptions) => Layer.effect(TelemetryStore, make(options))

/** `layer` with its options read from `config`. */
export const layerConfig = (config: Config.Config.Wrap<SqlTelemetryStoreOptions>) =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))
