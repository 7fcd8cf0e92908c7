import { FileSystem, Path } from "@effect/platform"
import * as SqlClient from "@effect/sql/SqlClient"
import { Config, Effect, Layer, Schema } from "effect"
import { createHash } from "node:crypto"
import { fileURLToPath } from "node:url"

/** Why the schema could not be brought up to date. */
export class MigrationError extends Schema.TaggedError<MigrationError>()("MigrationError", {
  reason: Schema.Literal(
    /** The migrations directory cannot be read. */
    "unreadable",
    /** A migration failed (`version` says which), or the database did while they were checked. */
    "failed",
    /** A migration already applied was changed afterwards: they are append-only. */
    "changed"
  ),
  version: Schema.optional(Schema.String),
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

// Every process runs migrations at start; this lock makes concurrent starts apply each file once.
const LOCK = 7_361_205

const FILE = /^(\d{4})_[\w-]+\.sql$/

export const MigrationsDir = Config.string("MIGRATIONS_DIR").pipe(
  Config.withDefault(fileURLToPath(new URL("../../../../migrations", import.meta.url)))
)

/** A migration file of `dir`: its version, name, text and checksum. */
interface MigrationFile {
  readonly version: string
  readonly name: string
  readonly text: string
  readonly checksum: string
}

const readMigrations = (dir: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const names = (yield* fs.readDirectory(dir)).filter((f) => FILE.test(f)).sort()
    return yield* Effect.forEach(names, (name) =>
      Effect.map(fs.readFileString(path.join(dir, name)), (text): MigrationFile => ({
        version: FILE.exec(name)![1]!,
        name,
        text,
        checksum: createHash("sha256").update(text).digest("hex")
      })))
  }).pipe(
    Effect.catchTag("SystemError", "BadArgument", (cause) =>
      new MigrationError({ reason: "unreadable", message: `cannot read migrations in ${dir}: ${cause.message}`, cause }))
  )

/** Where the schema stands against the files of `dir`. */
export interface MigrationStatus {
  readonly applied: ReadonlyArray<{ readonly version: string; readonly name: string; readonly appliedAt: Date; readonly changed: boolean }>
  readonly pending: ReadonlyArray<{ readonly version: string; readonly name: string }>
}

/** Which migration files of `dir` are applied (and whether one changed since) and which are pending; changes nothing. */
export const status = (dir: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const files = yield* readMigrations(dir)
    const [table] = yield* sql<{ exists: boolean }>`SELECT to_regclass('schema_migrations') IS NOT NULL AS exists`
    const rows = table?.exists === true
      ? yield* sql<{ version: string; name: string; checksum: string; applied_at: Date | string }>`
          SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version`
      : []
    const byVersion = new Map(files.map((file) => [file.version, file]))
    const appliedVersions = new Set(rows.map((row) => row.version))
    return {
      applied: rows.map((row) => ({
        version: row.version,
        name: row.name,
        appliedAt: new Date(row.applied_at),
        changed: byVersion.get(row.version)?.checksum !== row.checksum
      })),
      pending: files.filter((file) => !appliedVersions.has(file.version)).map(({ name, version }) => ({ version, name }))
    } satisfies MigrationStatus
  }).pipe(Effect.catchTag("SqlError", (cause) => new MigrationError({ reason: "failed", message: cause.message, cause })))

/**
 * Applies the versioned SQL files of `dir` (`NNNN_name.sql`) in order, each once, in its own transaction, and
 * records them in `schema_migrations` with a checksum. A changed file that was already applied is an error:
 * migrations are append-only.
 */
export const migrate = (dir: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const files = yield* readMigrations(dir)
    const locked = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      sql.withTransaction(Effect.zipRight(sql`SELECT pg_advisory_xact_lock(${LOCK})`, effect))

    yield* locked(sql`CREATE TABLE IF NOT EXISTS schema_migrations (
      version text PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`)
    let applied = 0
    for (const { checksum, name, text, version } of files) {
      const done = yield* locked(Effect.gen(function*() {
        const [row] = yield* sql<{ checksum: string }>`SELECT checksum FROM schema_migrations WHERE version = ${version}`
        if (row !== undefined) {
          if (row.checksum === checksum) return false
          return yield* new MigrationError({ reason: "changed", version, message: `${name} changed after it was applied` })
        }
        yield* sql.unsafe(text)
        yield* sql`INSERT INTO schema_migrations (version, name, checksum) VALUES (${version}, ${name}, ${checksum})`
        return true
      })).pipe(
        Effect.catchTag("SqlError", (cause) =>
          new MigrationError({ reason: "failed", version, message: `${name} failed: ${cause.message}`, cause }))
      )
      if (done) applied++
    }
    yield* Effect.logInfo(`migrations: ${applied} applied, ${files.length - applied} already in place`)
  }).pipe(Effect.catchTag("SqlError", (cause) => new MigrationError({ reason: "failed", message: cause.message, cause })))

/** A database layer that applies the migrations when it is built, so every process starts on the current schema. */
export const migrated = <A, E, R>(database: Layer.Layer<A | SqlClient.SqlClient, E, R>) =>
  Layer.effectDiscard(Effect.flatMap(MigrationsDir, migrate)).pipe(Layer.provideMerge(database))
