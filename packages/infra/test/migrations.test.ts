import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import * as PostgresDatabase from "@telemetry/testbed/PostgresDatabase"
import { Duration, Effect, Exit, Layer, Logger } from "effect"
import { randomUUID } from "node:crypto"
import { appendFileSync, cpSync, readdirSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Migrator from "../src/db/Migrator.js"
import * as PgliteClient from "../src/db/PgliteClient.js"
import * as SqlMaintenance from "../src/db/SqlMaintenance.js"
import { databases, embedded, migrated, postgres, postgresAt, type TestDatabase } from "./support/databases.js"

const MIGRATIONS = fileURLToPath(new URL("../../../migrations", import.meta.url))
const MIGRATION_FILES = readdirSync(MIGRATIONS).filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f)).sort()

const sqlClient = SqlClient.SqlClient

/** Contract §3, plus sum and count for weighted averages; `active_minutes` is `active_hours` in the daily one. */
const aggregateColumns = (activity: string) => [
  ["bucket", "timestamp with time zone"],
  ["equipment_id", "integer"],
  ["sensor_id", "integer"],
  ["avg_value", "double precision"],
  ["max_value", "double precision"],
  ["min_value", "double precision"],
  ["sum_value", "double precision"],
  ["value_count", "bigint"],
  ["sample_count", "bigint"],
  [activity, "bigint"],
  ["stddev_value", "double precision"],
  ["median_value", "double precision"],
  ["p95_value", "double precision"],
  ["p99_value", "double precision"]
]

const columnsOf = (relation: string) =>
  Effect.flatMap(sqlClient, (sql) =>
    sql<{ column_name: string; data_type: string }>`SELECT column_name, data_type FROM information_schema.columns
      WHERE table_schema = 'public' AND table_name = ${relation} ORDER BY ordinal_position`).pipe(
      Effect.map((rows) => rows.map((r) => [r.column_name, r.data_type]))
    )

interface Policy {
  readonly job: string
  readonly schedule: string
  readonly start_offset: string | null
  readonly end_offset: string | null
  readonly drop_after: string | null
  readonly compress_after: string | null
}

/** The scheduled jobs, as TimescaleDB lists its policies or as telemetry_jobs holds ours, in one shape. */
const policies = (edition: TestDatabase["edition"]) =>
  Effect.flatMap(sqlClient, (sql) =>
    edition === "timescale"
      ? sql<Policy>`SELECT
            CASE proc_name WHEN 'policy_refresh_continuous_aggregate' THEN 'refresh '
              WHEN 'policy_retention' THEN 'retention ' WHEN 'policy_compression' THEN 'compression '
              ELSE proc_name || ' ' END || hypertable_name AS job,
            schedule_interval::text AS schedule,
            (config ->> 'start_offset')::interval::text AS start_offset,
            (config ->> 'end_offset')::interval::text AS end_offset,
            (config ->> 'drop_after')::interval::text AS drop_after,
            (config ->> 'compress_after')::interval::text AS compress_after
          FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL ORDER BY 1`
      : sql<Policy>`SELECT job_name AS job, schedule_interval::text AS schedule,
            (config ->> 'start_offset')::interval::text AS start_offset,
            (config ->> 'end_offset')::interval::text AS end_offset,
            (config ->> 'drop_after')::interval::text AS drop_after,
            NULL::text AS compress_after
          FROM telemetry_jobs ORDER BY 1`)

const none = { start_offset: null, end_offset: null, drop_after: null, compress_after: null }
const refreshPolicies = [
  { ...none, job: "refresh telemetry_daily", schedule: "02:00:00", start_offset: "7 days", end_offset: "1 day" },
  { ...none, job: "refresh telemetry_hourly", schedule: "00:30:00", start_offset: "3 days", end_offset: "01:00:00" }
]
const expectedPolicies = (edition: TestDatabase["edition"], dropAfter = "30 days"): ReadonlyArray<Policy> =>
  edition === "timescale"
    ? [
      { ...none, job: "compression telemetry_data", schedule: "12:00:00", compress_after: "7 days" },
      ...refreshPolicies,
      { ...none, job: "retention telemetry_data", schedule: "1 day", drop_after: dropAfter }
    ]
    : [...refreshPolicies, { ...none, job: "retention telemetry_data", schedule: "1 day", drop_after: dropAfter }]

describe.each(databases)("migrations on $name", (database) => {
  it.layer(migrated(database), { timeout: 120_000 })("one fresh database", (it) => {
    it.effect("running the migrations again applies nothing and does not fail", () =>
      Effect.gen(function*() {
        const sql = yield* sqlClient
        const before = yield* sql<{ version: string; name: string; checksum: string; applied_at: Date }>`
          SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version`
        expect(before.map((r) => r.name)).toEqual(MIGRATION_FILES)
        expect(before.map((r) => r.version)).toEqual(MIGRATION_FILES.map((f) => f.slice(0, 4)))
        expect(before.every((r) => /^[0-9a-f]{64}$/.test(r.checksum))).toBe(true)

        const logs: Array<string> = []
        const capture = Logger.make(({ message }) => {
          logs.push(Array.isArray(message) ? message.join(" ") : String(message))
        })
        yield* Migrator.migrate(MIGRATIONS).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
        expect(logs).toContain(`migrations: 0 applied, ${MIGRATION_FILES.length} already in place`)

        const after = yield* sql`SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version`
        expect(after).toEqual(before)
        // And a third time, concurrently with itself: the lock keeps it at one row per file.
        yield* Effect.all([Migrator.migrate(MIGRATIONS), Migrator.migrate(MIGRATIONS)], { concurrency: 2 })
        const [{ n }] = (yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM schema_migrations`) as [{ n: number }]
        expect(n).toBe(MIGRATION_FILES.length)
        expect(yield* policies(database.edition)).toEqual(expectedPolicies(database.edition))
      }))

    it.effect(`the schema is built for the edition '${database.edition}', with the tables of the contract`, () =>
      Effect.gen(function*() {
        const sql = yield* sqlClient
        expect(yield* sql`SELECT telemetry_timescaledb_edition() AS edition`).toEqual([{ edition: database.edition }])
        const tables = yield* sql<{ table_name: string }>`SELECT table_name FROM information_schema.tables
          WHERE table_schema = 'public' AND table_name IN ('equipments', 'sensors', 'telemetry_data', 'claim_ledger')
          ORDER BY table_name`
        expect(tables.map((t) => t.table_name)).toEqual(["claim_ledger", "equipments", "sensors", "telemetry_data"])
        expect(yield* columnsOf("telemetry_hourly")).toEqual(aggregateColumns("active_minutes"))
        expect(yield* columnsOf("telemetry_daily")).toEqual(aggregateColumns("active_hours"))

        if (database.edition === "timescale") {
          const [dim] = yield* sql<{ column_name: string; interval: string }>`
            SELECT column_name, time_interval::text AS interval FROM timescaledb_information.dimensions
            WHERE hypertable_name = 'telemetry_data'`
          expect(dim).toEqual({ column_name: "time", interval: "1 day" })
          const caggs = yield* sql<{ view_name: string; materialized_only: boolean }>`SELECT view_name,
              materialized_only FROM timescaledb_information.continuous_aggregates ORDER BY view_name`
          expect(caggs).toEqual([
            { view_name: "telemetry_daily", materialized_only: false },
            { view_name: "telemetry_hourly", materialized_only: false }
          ])
          const compression = yield* sql`SELECT attname, segmentby_column_index, orderby_column_index, orderby_asc
            FROM timescaledb_information.compression_settings WHERE hypertable_name = 'telemetry_data'
            ORDER BY attname`
          expect(compression).toEqual([
            { attname: "equipment_id", segmentby_column_index: 1, orderby_column_index: null, orderby_asc: null },
            { attname: "sensor_id", segmentby_column_index: 2, orderby_column_index: null, orderby_asc: null },
            { attname: "time", segmentby_column_index: null, orderby_column_index: 1, orderby_asc: false }
          ])
        } else {
          const kinds = yield* sql<{ relname: string; relkind: string }>`SELECT relname, relkind::text AS relkind
            FROM pg_class WHERE relnamespace = 'public'::regnamespace
              AND relname IN ('telemetry_data', 'telemetry_hourly', 'telemetry_daily') ORDER BY relname`
          expect(kinds).toEqual([
            { relname: "telemetry_daily", relkind: "v" },
            { relname: "telemetry_data", relkind: "r" },
            { relname: "telemetry_hourly", relkind: "v" }
          ])
        }
      }))

    it.effect("a missing migrations directory fails with MigrationError", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Migrator.migrate(join(tmpdir(), `no-such-dir-${randomUUID()}`)))
        expect(error._tag).toBe("MigrationError")
      }))
  })

  it.scoped("a migration changed after it was applied fails with MigrationError; a new one is applied", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.flatMap(FileSystem.FileSystem, (fs) =>
        fs.makeTempDirectoryScoped({ prefix: "telemetry-migrations-" }))
      cpSync(MIGRATIONS, dir, { recursive: true })
      const sql = yield* sqlClient
      yield* Migrator.migrate(dir)
      const count = Effect.map(sql<{ n: number }>`SELECT count(*)::int AS n FROM schema_migrations`, (rows) => rows[0]!.n)
      expect(yield* count).toBe(MIGRATION_FILES.length)

      // A new file is applied, once.
      writeFileSync(join(dir, "9999_extra.sql"), "CREATE TABLE migrator_extra (id int);\n")
      yield* Migrator.migrate(dir)
      yield* Migrator.migrate(dir)
      expect(yield* count).toBe(MIGRATION_FILES.length + 1)
      expect(yield* sql`SELECT count(*)::int AS n FROM migrator_extra`).toEqual([{ n: 0 }])

      // An applied file edited afterwards (even just a comment) is refused.
      const edited = MIGRATION_FILES[1]!
      appendFileSync(join(dir, edited), "\n-- edited after it was applied\n")
      const exit = yield* Effect.exit(Migrator.migrate(dir))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = yield* Effect.flip(Migrator.migrate(dir))
      expect(error._tag).toBe("MigrationError")
      expect(error.version).toBe(edited.slice(0, 4))
      expect(error.message).toContain(edited)
      expect(yield* count).toBe(MIGRATION_FILES.length + 1)
    }).pipe(Effect.provide(Layer.merge(database.fresh, NodeContext.layer))), { timeout: 120_000 })

  it.scoped("0016 counts each tenant's equipments and sensors stored before it, for their limits", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.flatMap(FileSystem.FileSystem, (fs) =>
        fs.makeTempDirectoryScoped({ prefix: "telemetry-migrations-" }))
      const counting = "0016_tenant_entities.sql"
      for (const file of MIGRATION_FILES.filter((f) => f < counting)) cpSync(join(MIGRATIONS, file), join(dir, file))
      const sql = yield* sqlClient
      yield* Migrator.migrate(dir)
      yield* sql`INSERT INTO equipments (tenant_id, uuid) VALUES ('a', 'e1'), ('a', 'e2'), ('b', 'e1'), ('c', 'e1')`
      yield* sql`INSERT INTO sensors (equipment_id, uuid)
        SELECT e.id, s.uuid FROM equipments e, (VALUES ('s1'), ('s2')) AS s (uuid) WHERE e.tenant_id = 'a'
        UNION ALL SELECT e.id, 's1' FROM equipments e WHERE e.tenant_id = 'b'`
      cpSync(join(MIGRATIONS, counting), join(dir, counting))
      yield* Migrator.migrate(dir)
      expect(yield* sql`SELECT tenant_id, equipments::int, sensors::int FROM tenant_entities ORDER BY tenant_id`).toEqual([
        { tenant_id: "a", equipments: 2, sensors: 4 },
        { tenant_id: "b", equipments: 1, sensors: 1 },
        { tenant_id: "c", equipments: 1, sensors: 0 }
      ])
    }).pipe(Effect.provide(Layer.merge(database.fresh, NodeContext.layer))), { timeout: 120_000 })
})

/** Starts as a process does: migrations, then the maintenance service (which applies RAW_RETENTION). */
const start = <E>(database: Layer.Layer<SqlClient.SqlClient, E>) =>
  Effect.gen(function*() {
    const maintenance = yield* SqlMaintenance.make({ rawRetention: Duration.days(30) })
    return maintenance.runner
  }).pipe(Effect.provide(Migrator.migrated(database).pipe(Layer.provideMerge(NodeContext.layer))))

describe("policies exist after migrations and after a second start", () => {
  it.scoped("on embedded TimescaleDB, reopening its data directory", () =>
    Effect.gen(function*() {
      const dataDir = yield* Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "pg-" }))
      const listed = policies("timescale").pipe(Effect.provide(PgliteClient.layer({ dataDir })))
      expect(yield* start(PgliteClient.layer({ dataDir }))).toBe("embedded")
      expect(yield* listed).toEqual(expectedPolicies("timescale"))
      expect(yield* start(PgliteClient.layer({ dataDir }))).toBe("embedded")
      expect(yield* listed).toEqual(expectedPolicies("timescale"))
    }).pipe(Effect.provide(NodeContext.layer)), { timeout: 120_000 })

  it.scoped("on PostgreSQL, with a new pool", () =>
    Effect.gen(function*() {
      const { url } = yield* PostgresDatabase.PostgresDatabase
      const listed = policies("none").pipe(Effect.provide(postgresAt(url)))
      expect(yield* start(postgresAt(url))).toBe("own")
      expect(yield* listed).toEqual(expectedPolicies("none"))
      expect(yield* start(postgresAt(url))).toBe("own")
      expect(yield* listed).toEqual(expectedPolicies("none"))
    }).pipe(Effect.provide(PostgresDatabase.layer)), { timeout: 120_000 })
})

it.scoped("the aggregates have the same names and columns on both databases", () =>
  Effect.gen(function*() {
    const columns = Effect.all([columnsOf("telemetry_hourly"), columnsOf("telemetry_daily")])
    const onEmbedded = yield* columns.pipe(Effect.provide(migrated(embedded)))
    const onPostgres = yield* columns.pipe(Effect.provide(migrated(postgres)))
    expect(onPostgres).toEqual(onEmbedded)
    expect(onEmbedded[0]).toHaveLength(14)
  }), { timeout: 120_000 })
