import { NodeContext } from "@effect/platform-node"
import type * as SqlClient from "@effect/sql/SqlClient"
import { Config, Effect, Layer } from "effect"
import * as Migrator from "./db/Migrator.js"
import * as PgliteClient from "./db/PgliteClient.js"
import * as SqlTelemetryStore from "./db/SqlTelemetryStore.js"
import * as EmbeddedClaimQueue from "./queue/EmbeddedClaimQueue.js"
import * as FileObjectStore from "./storage/FileObjectStore.js"

/** A database layer that applies the migrations when it is built, so every process starts on the current schema. */
export const migrated = <A, E, R>(database: Layer.Layer<A | SqlClient.SqlClient, E, R>) =>
  Layer.effectDiscard(Effect.flatMap(Migrator.MigrationsDir, Migrator.migrate)).pipe(Layer.provideMerge(database))

/** The database: embedded TimescaleDB in `EMBEDDED_DB_DIR`. */
export const database = migrated(PgliteClient.layerConfig)

export const telemetryStore = Layer.unwrapEffect(
  Effect.map(
    Config.integer("COPY_BATCH_READINGS").pipe(Config.withDefault(20_000)),
    (batchReadings) => SqlTelemetryStore.layer({ batchReadings })
  )
).pipe(Layer.provideMerge(database))

export const objectStore = FileObjectStore.layerConfig

/** Storage, database and queue on embedded parts: what `pnpm start` runs when nothing external is configured. */
export const embedded = EmbeddedClaimQueue.recovery.pipe(
  Layer.provideMerge(EmbeddedClaimQueue.layerConfig),
  Layer.provideMerge(Layer.merge(objectStore, telemetryStore)),
  Layer.provide(NodeContext.layer)
)
