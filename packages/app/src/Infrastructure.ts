import { NodeContext } from "@effect/platform-node"
import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { QueueError, StorageError, WorkerStatus } from "@telemetry/domain"
import * as DatabaseErrors from "@telemetry/infra/db/DatabaseErrors"
import * as Migrator from "@telemetry/infra/db/Migrator"
import * as PgliteClient from "@telemetry/infra/db/PgliteClient"
import * as PostgresClient from "@telemetry/infra/db/PostgresClient"
import * as SqlMaintenance from "@telemetry/infra/db/SqlMaintenance"
import * as SqlTelemetryStore from "@telemetry/infra/db/SqlTelemetryStore"
import * as EmbeddedClaimQueue from "@telemetry/infra/queue/embedded/EmbeddedClaimQueue"
import * as KafkaClaimQueue from "@telemetry/infra/queue/kafka/KafkaClaimQueue"
import * as FileObjectStore from "@telemetry/infra/storage/FileObjectStore"
import * as S3ObjectStore from "@telemetry/infra/storage/s3/S3ObjectStore"
import * as Recovery from "@telemetry/worker/Recovery"
import { Config, Duration, Effect, Layer, Option, Schedule } from "effect"

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

/**
 * Whether a layer failed for a service it could not reach (which may come up) rather than for its configuration:
 * storage and Kafka failures, and database failures the database does not blame on what was sent to it.
 */
const isUnreachable = (error: unknown): boolean =>
  error instanceof StorageError || error instanceof QueueError ||
  (error instanceof SqlError && DatabaseErrors.isTransient(error)) ||
  (error instanceof Migrator.MigrationError && error.cause instanceof SqlError && DatabaseErrors.isTransient(error.cause))

// From 1 s, doubling, at most 30 s apart, with jitter so that a fleet of processes does not knock all at once.
const startupBackoff = Schedule.exponential(Duration.seconds(1)).pipe(
  Schedule.union(Schedule.spaced(Duration.seconds(30))),
  Schedule.jittered
)

/**
 * Builds `layer`, and while `what` is unreachable, tries again with backoff, forever, logging each wait: a process
 * started before its services waits for them (reporting nothing ready meanwhile) instead of exiting.
 */
const waitingFor = <A, E, R>(what: string, layer: Layer.Layer<A, E, R>) =>
  Layer.retry(
    layer,
    startupBackoff.pipe(
      Schedule.delays,
      Schedule.intersect(Schedule.identity<E>()),
      Schedule.whileInput((error: E) => isUnreachable(error)),
      Schedule.tapOutput(([delay, error]) =>
        Effect.logWarning(
          `startup: ${what} is unreachable (${(error as { message?: string })?.message ?? error}); ` +
            `trying again in ${Duration.format(Duration.seconds(Math.max(1, Math.round(Duration.toSeconds(delay)))))}`
        ))
    )
  )

const postgres = Migrator.migrated(PostgresClient.layerConfig)
const embeddedDatabase = Migrator.migrated(PgliteClient.layerConfig)

/** The telemetry store and maintenance over `database`, which they also provide. */
const storeOn = <A, E, R>(database: Layer.Layer<A | SqlClient.SqlClient, E, R>) =>
  Layer.unwrapEffect(
    Effect.map(
      Config.integer("COPY_BATCH_READINGS").pipe(Config.withDefault(20_000)),
      (batchReadings) => SqlTelemetryStore.layer({ batchReadings })
    )
  ).pipe(Layer.provideMerge(SqlMaintenance.layer), Layer.provideMerge(database))

/** PostgreSQL or TimescaleDB at `DATABASE_URL`, else embedded TimescaleDB in `EMBEDDED_DB_DIR`; migrated. */
export const database = whenSet("DATABASE_URL", postgres, embeddedDatabase)

/** The database, with the telemetry store and maintenance over it. */
export const telemetryStore = storeOn(database)

/** S3 or MinIO at `S3_ENDPOINT`, else files under `STORAGE_DIR`. */
export const objectStore = whenSet("S3_ENDPOINT", S3ObjectStore.layerConfig, FileObjectStore.layerConfig)

/** The in-process queue with the recovery that makes up for it living in memory. */
const embeddedQueue = Recovery.layer.pipe(Layer.provideMerge(EmbeddedClaimQueue.layerConfig))

/** The queue without the recovery: for a replay, which re-queues the range asked for, not every unloaded payload. */
export const claimQueueWithoutRecovery = whenSet("KAFKA_BROKERS", KafkaClaimQueue.layerConfig, EmbeddedClaimQueue.layerConfig)

/**
 * Storage, database and queue of a server (`pnpm start`, `pnpm worker`), each the real service its variable names
 * — waited for while unreachable — or else the embedded stand-in: with nothing set, everything runs in this
 * process. Kafka when `KAFKA_BROKERS` is set, else the in-process queue. With the status its worker reports.
 */
export const fromConfig = whenSet("KAFKA_BROKERS", waitingFor("Kafka", KafkaClaimQueue.layerConfig), embeddedQueue).pipe(
  Layer.provideMerge(Layer.mergeAll(
    whenSet("S3_ENDPOINT", waitingFor("storage", S3ObjectStore.layerConfig), FileObjectStore.layerConfig),
    whenSet("DATABASE_URL", waitingFor("the database", storeOn(postgres)), storeOn(embeddedDatabase)),
    WorkerStatus.layer
  )),
  Layer.provide(NodeContext.layer)
)
