import { NodeContext } from "@effect/platform-node"
import type * as SqlClient from "@effect/sql/SqlClient"
import { Config, Effect, Layer, Option } from "effect"
import * as Maintenance from "./db/Maintenance.js"
import * as Migrator from "./db/Migrator.js"
import * as PgliteClient from "./db/PgliteClient.js"
import * as PostgresClient from "./db/PostgresClient.js"
import * as SqlTelemetryStore from "./db/SqlTelemetryStore.js"
import * as EmbeddedClaimQueue from "./queue/EmbeddedClaimQueue.js"
import * as KafkaClaimQueue from "./queue/KafkaClaimQueue.js"
import * as FileObjectStore from "./storage/FileObjectStore.js"
import * as S3ObjectStore from "./storage/S3ObjectStore.js"

/** A database layer that applies the migrations when it is built, so every process starts on the current schema. */
export const migrated = <A, E, R>(database: Layer.Layer<A | SqlClient.SqlClient, E, R>) =>
  Layer.effectDiscard(Effect.flatMap(Migrator.MigrationsDir, Migrator.migrate)).pipe(Layer.provideMerge(database))

/** Picks the real layer when its variable is set, else the embedded one. */
const whenSet = <A, E, R, A2, E2, R2>(
  variable: string,
  real: Layer.Layer<A, E, R>,
  embedded: Layer.Layer<A2, E2, R2>
) =>
  Layer.unwrapEffect(
    Effect.map(Config.option(Config.string(variable)), (value) =>
      Option.isSome(value) ? (real as Layer.Layer<A | A2, E | E2, R | R2>) : embedded)
  )

/** PostgreSQL or TimescaleDB at `DATABASE_URL`, else embedded TimescaleDB in `EMBEDDED_DB_DIR`; migrated. */
export const database = migrated(whenSet("DATABASE_URL", PostgresClient.layerConfig, PgliteClient.layerConfig))

export const telemetryStore = Layer.unwrapEffect(
  Effect.map(
    Config.integer("COPY_BATCH_READINGS").pipe(Config.withDefault(20_000)),
    (batchReadings) => SqlTelemetryStore.layer({ batchReadings })
  )
).pipe(Layer.provideMerge(Maintenance.layer), Layer.provideMerge(database))

/** S3 or MinIO at `S3_ENDPOINT`, else files under `STORAGE_DIR`. */
export const objectStore = whenSet("S3_ENDPOINT", S3ObjectStore.layerConfig, FileObjectStore.layerConfig)

/**
 * Kafka when `KAFKA_BROKERS` is set, else the in-process queue, with the recovery that makes up for it living in
 * memory.
 */
export const claimQueue = whenSet(
  "KAFKA_BROKERS",
  KafkaClaimQueue.layerConfig,
  EmbeddedClaimQueue.recovery.pipe(Layer.provideMerge(EmbeddedClaimQueue.layerConfig))
)

/** The same queue without the recovery: for a replay, which re-queues the range asked for, not every unloaded payload. */
export const claimQueueWithoutRecovery = whenSet("KAFKA_BROKERS", KafkaClaimQueue.layerConfig, EmbeddedClaimQueue.layerConfig)

/**
 * Storage, database and queue, each the real service its variable names or else the embedded stand-in: with
 * nothing set, everything runs in this process (`pnpm start`).
 */
export const fromConfig = claimQueue.pipe(
  Layer.provideMerge(Layer.merge(objectStore, telemetryStore)),
  Layer.provide(NodeContext.layer)
)
