/** The two databases the database tests run on, each fresh: embedded TimescaleDB and the local PostgreSQL. */
import { NodeContext } from "@effect/platform-node"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as PostgresDatabase from "@telemetry/testbed/PostgresDatabase"
import { Effect, Layer, Redacted } from "effect"
import type { BulkCopy } from "../../src/db/BulkCopy.js"
import * as Migrator from "../../src/db/Migrator.js"
import * as PgliteClient from "../../src/db/PgliteClient.js"
import * as PostgresClient from "../../src/db/PostgresClient.js"
import * as SqlTelemetryStore from "../../src/db/SqlTelemetryStore.js"

export interface TestDatabase {
  readonly name: string
  /** What the migrations build there (`telemetry_timescaledb_edition()`). */
  readonly edition: "timescale" | "none"
  /** A fresh, empty database for the scope of the layer. */
  readonly fresh: Layer.Layer<SqlClient.SqlClient | BulkCopy, SqlError>
}

/** A client over an existing PostgreSQL database. */
export const postgresAt = (url: string) => PostgresClient.layer({ url: Redacted.make(url), poolSize: 10 })

export const embedded: TestDatabase = {
  name: "embedded TimescaleDB",
  edition: "timescale",
  fresh: PgliteClient.layer({})
}

export const postgres: TestDatabase = {
  name: "PostgreSQL",
  edition: "none",
  fresh: Layer.unwrapScoped(Effect.map(PostgresDatabase.PostgresDatabase, (db) => postgresAt(db.url))).pipe(
    Layer.provide(PostgresDatabase.layer)
  )
}

export const databases: ReadonlyArray<TestDatabase> = [embedded, postgres]

/** A fresh database with the migrations applied. */
export const migrated = (database: TestDatabase) =>
  Migrator.migrated(database.fresh).pipe(Layer.provideMerge(NodeContext.layer))

/** A fresh database with the migrations applied and a store over it. */
export const storeOn = (database: TestDatabase, batchReadings: number, commitEachBatch = false) =>
  SqlTelemetryStore.layer({ batchReadings, commitEachBatch }).pipe(Layer.provideMerge(migrated(database)))
