import { NodeContext } from "@effect/platform-node"
import { Config, Effect, Layer } from "effect"
import * as Migrator from "./db/Migrator.js"
import * as PgliteClient from "./db/PgliteClient.js"
import * as SqlTelemetryStore from "./db/SqlTelemetryStore.js"
import * as EmbeddedClaimQueue from "./queue/EmbeddedClaimQueue.js"
import * as FileObjectStore from "./storage/FileObjectStore.js"

/** Applies the migrations when the database layer is built, so every process starts on the current schema. */
export const migrations = Layer.effectDiscard(Effect.flatMap(Migrator.MigrationsDir, Migrator.migrate))

/** The database (embedded TimescaleDB) with its schema migrated. */
export const database = migrations.pipe(Layer.provideMerge(PgliteClient.layerConfig))

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
