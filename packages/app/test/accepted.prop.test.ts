import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, layer, type Vitest } from "@effect/vitest"
import type { ClaimQueue } from "@telemetry/domain"
import { deviceToken } from "@telemetry/ingest/testing/auth"
import * as PostgresDatabase from "@telemetry/testbed/PostgresDatabase"
import { Effect, FastCheck as fc, Layer } from "effect"
import { gzipSync } from "node:zlib"
import { type Accepted, acceptedPayload, json, type Row } from "./support/acceptedPayloads.js"
import { ZONE } from "./support/storable.js"
import { embedded, goodPayloadLoads, settled, Target } from "./support/targets.js"
import { postBytes } from "./support/uploads.js"

// Issue 11: payloads that ingest accepts — adversarial strings, extreme numbers and dates, one reading to thousands,
// duplicates — are loaded, every reading exactly once with what was sent, and the worker never gets stuck: on
// embedded TimescaleDB and on PostgreSQL 15. Each run posts a batch of payloads at once, then a sentinel payload.

const SEED = Number(process.env["PROP_SEED"] ?? 20261203)
const RUNS = Number(process.env["PROP_RUNS"] ?? 10)

const ENV = { DEFAULT_TIMEZONE: ZONE }

/** -0 is stored as 0: the same number. */
const number = (n: number | null) => (n === 0 ? 0 : n)

/** The rows expected and not stored, and those stored and not expected (a few of each): what a failure shows. */
const differences = <A extends object>(stored: ReadonlyArray<A>, expected: ReadonlyArray<A>) => {
  const text = (rows: ReadonlyArray<A>) => rows.map((r) => JSON.stringify(r))
  const have = new Set(text(stored))
  const want = new Set(text(expected))
  return {
    missing: [...want].filter((r) => !have.has(r)).slice(0, 5).map((r) => JSON.parse(r)),
    unexpected: [...have].filter((r) => !want.has(r)).slice(0, 5).map((r) => JSON.parse(r))
  }
}

/** A row as the test compares it: numbers as they compare, metadata as JSON reads back. */
const comparable = (row: Row): Row => ({
  ...row,
  value: number(row.value),
  metadata: row.metadata === null ? null : json(typeof row.metadata === "string" ? JSON.parse(row.metadata) : row.metadata)
})

/** What the database holds of `tenant`. */
const stored = (tenant: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<Row>`SELECT e.uuid AS equipment, s.uuid AS sensor,
        (extract(epoch FROM t.time) * 1000000)::bigint::text AS micros, t.value, t.status, t.metadata
      FROM telemetry_data t JOIN equipments e ON e.id = t.equipment_id JOIN sensors s ON s.id = t.sensor_id
      WHERE e.tenant_id = ${tenant}`
    const equipments = yield* sql<{ uuid: string; name: string | null; location: string | null }>`SELECT uuid, name, location
      FROM equipments WHERE tenant_id = ${tenant}`
    const sensors = yield* sql<{ equipment: string; uuid: string; name: string | null; type: string | null; unit: string | null }>`
      SELECT e.uuid AS equipment, s.uuid, s.name, s.type, s.unit
      FROM sensors s JOIN equipments e ON e.id = s.equipment_id WHERE e.tenant_id = ${tenant}`
    return { rows, equipments, sensors }
  })

let tenants = 0

/** Posts `accepted` as a tenant of its own: 202, counted as sent. */
const post = (base: string, accepted: Accepted) =>
  Effect.gen(function*() {
    const tenant = `prop-${++tenants}`
    const body = JSON.stringify(accepted.payload)
    const reply = yield* postBytes(
      base,
      accepted.gzipped ? gzipSync(body) : body,
      deviceToken(tenant, "device"),
      accepted.gzipped ? { "content-encoding": "gzip" } : {}
    )
    // A refusal is either a payload the generator should not have made, or ingest refusing what it must take.
    expect(reply, `refused: ${JSON.stringify(reply.json)}`).toMatchObject({
      status: 202,
      // Ingest counts every reading; the worker leaves out the expired ones.
      json: { received: accepted.expected.items, readings: accepted.expected.readings + accepted.expected.expired }
    })
    return { tenant, claimId: reply.json.claim_id as string, accepted }
  })

/** Every reading of the payload stored once (the first of each sensor and instant), with what was sent. */
const loadedExactly = ({ accepted: { expected }, claimId, tenant }: Effect.Effect.Success<ReturnType<typeof post>>) =>
  Effect.gen(function*() {
    const outcome = yield* settled(claimId)
    // The issue allows a dead letter in place of a load; for a payload ingest accepted as storable it means that
    // ingest and the database disagree, and the readings are lost: reported as a failure.
    expect(outcome, `claim of ${tenant}: ${JSON.stringify(outcome)}`).toEqual({
      loaded: { readings: expected.readings, duplicates: expected.readings - expected.rows.length, expired: expected.expired }
    })
    const { equipments, rows, sensors } = yield* stored(tenant)
    // What differs is named in the message: fast-check's report of a failed property abbreviates the values.
    const readings = differences(rows.map(comparable), expected.rows.map(comparable))
    expect(readings, `readings of ${tenant}: ${JSON.stringify(readings)}`).toEqual({ missing: [], unexpected: [] })
    const identities = {
      equipments: differences(equipments, expected.equipments),
      sensors: differences(sensors, expected.sensors)
    }
    expect(identities, `equipments and sensors of ${tenant}: ${JSON.stringify(identities)}`).toEqual({
      equipments: { missing: [], unexpected: [] },
      sensors: { missing: [], unexpected: [] }
    })
  })

let batches = 0

const property = (it: Vitest.MethodsNonLive<SqlClient.SqlClient | ClaimQueue | Target, true>) =>
  it.effect.prop(
    "every accepted payload is loaded, each reading once as sent, and the worker goes on",
    [fc.array(acceptedPayload, { minLength: 1, maxLength: 4 })],
    ([batch]) =>
      Effect.gen(function*() {
        const { base } = yield* Target
        const posted = yield* Effect.forEach(batch, (accepted) => post(base, accepted), { concurrency: "unbounded" })
        yield* Effect.forEach(posted, loadedExactly, { discard: true })
        yield* goodPayloadLoads(`batch ${++batches}`)
      }),
    // A failing run is reported as it is rather than shrunk: each shrinking step would post and load again.
    { timeout: 300_000, fastCheck: { numRuns: RUNS, seed: SEED, endOnFailure: true } }
  )

describe("accepted payloads on embedded TimescaleDB (PGlite)", () => {
  layer(embedded(ENV), { timeout: 120_000, excludeTestServices: true })(property)
})

describe("accepted payloads on PostgreSQL 15", () => {
  const onPostgres = Layer.unwrapEffect(
    Effect.map(PostgresDatabase.PostgresDatabase, (database) => embedded({ ...ENV, DATABASE_URL: database.url }))
  ).pipe(Layer.provide(PostgresDatabase.layer))
  layer(onPostgres, { timeout: 120_000, excludeTestServices: true })(property)
})
