import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import {
  BucketConfig,
  integerConfig,
  integerSetting,
  positiveDuration,
  positiveDurationConfig,
  QueueError,
  ShutdownTimeout,
  StorageError,
  WorkerStatus
} from "@telemetry/domain"
import * as DatabaseErrors from "@telemetry/infra/db/DatabaseErrors"
import * as Migrator from "@telemetry/infra/db/Migrator"
import type * as PostgresClient from "@telemetry/infra/db/PostgresClient"
import * as SqlMaintenance from "@telemetry/infra/db/SqlMaintenance"
import * as SqlTelemetryStore from "@telemetry/infra/db/SqlTelemetryStore"
import * as EmbeddedClaimQueue from "@telemetry/infra/queue/embedded/EmbeddedClaimQueue"
import type * as KafkaClaimQueue from "@telemetry/infra/queue/kafka/KafkaClaimQueue"
import * as FileObjectStore from "@telemetry/infra/storage/FileObjectStore"
import type * as S3ObjectStore from "@telemetry/infra/storage/s3/S3ObjectStore"
import * as Recovery from "@telemetry/worker/Recovery"
import { Config, Data, Duration, Effect, Layer, Option, Redacted, Schedule } from "effect"
import { dirname, join } from "node:path"

// Each adapter's options, read from the variables the README's Configuration table documents.

const MiB = 1024 * 1024

/** A setting left to the adapter's own default (which the README gives) while its variable is unset. */
const orAdapterDefault = <A>(config: Config.Config<A>): Config.Config<A | undefined> =>
  Config.map(Config.option(config), Option.getOrUndefined)

/** `S3_*`: S3 or MinIO. */
const s3: Config.Config.Wrap<S3ObjectStore.S3Options> = {
  endpoint: Config.url("S3_ENDPOINT").pipe(Config.map((url) => url.href)),
  accessKey: Config.string("S3_ACCESS_KEY"),
  secretKey: Config.redacted("S3_SECRET_KEY"),
  region: orAdapterDefault(Config.string("S3_REGION")),
  bucket: BucketConfig,
  partSize: orAdapterDefault(
    integerConfig("S3_PART_SIZE", { min: 5 * MiB, max: 5 * 1024 * MiB, message: "must be between 5 MiB and 5 GiB" })
  ),
  concurrency: orAdapterDefault(integerConfig("S3_UPLOAD_CONCURRENCY", { min: 1 })),
  requestTimeout: orAdapterDefault(Config.duration("S3_REQUEST_TIMEOUT")),
  retries: orAdapterDefault(integerConfig("S3_RETRIES", { min: 0 })),
  retryDelay: orAdapterDefault(Config.duration("S3_RETRY_DELAY")),
  stagingMaxAge: orAdapterDefault(Config.duration("S3_STAGING_MAX_AGE"))
}

/** The embedded object store. */
const files: Config.Config.Wrap<FileObjectStore.FileStoreOptions> = {
  root: Config.string("STORAGE_DIR").pipe(Config.withDefault("./data/objects")),
  bucket: BucketConfig
}

/** `DATABASE_URL`. A malformed URL would be read as a host name, or a database on localhost, and waited for in vain. */
export const databaseUrl = Config.string("DATABASE_URL").pipe(
  Config.validate({ message: "must be a postgres:// or postgresql:// URL", validation: (url) => /^postgres(ql)?:\/\/[^/]/.test(url) }),
  Config.map(Redacted.make)
)

/** `DATABASE_*`: PostgreSQL, with or without TimescaleDB. */
const postgresOptions: Config.Config.Wrap<PostgresClient.PostgresOptions> = {
  url: databaseUrl,
  poolSize: integerSetting("DATABASE_POOL_SIZE", 10, { min: 1 }),
  connectTimeout: orAdapterDefault(positiveDurationConfig("DATABASE_CONNECT_TIMEOUT"))
}

export const embeddedDatabaseDir = Config.string("EMBEDDED_DB_DIR").pipe(Config.withDefault("./data/pg"))

/** The settings name no database that exists: no DATABASE_URL, and nothing ever ran on the embedded one there. */
export class NoDatabase extends Data.TaggedError("NoDatabase")<{ readonly directory: string }> {
  override get message() {
    return `no embedded database in ${this.directory} (EMBEDDED_DB_DIR, as DATABASE_URL is not set): nothing has run ` +
      "with these settings here. Run this in the directory the server runs in, with its variables; for a deployment " +
      "on real services, set its DATABASE_URL, KAFKA_BROKERS and S3_* (in the compose stack, run it inside a " +
      "container: docker compose exec ingest node dist/cli/<command>.js ...)"
  }
}

/**
 * Fails unless the database the settings name exists: for the commands that look at a deployment, which would
 * otherwise make a new empty one — and report on it — in a directory mistyped, or on a machine where the
 * deployment's variables are not set.
 */
export const existingDatabase = Effect.gen(function*() {
  if (Option.isSome(yield* Config.option(Config.string("DATABASE_URL")))) return
  const directory = yield* embeddedDatabaseDir
  if (!(yield* embeddedDatabaseIn(directory))) return yield* new NoDatabase({ directory })
})

/** Whether `directory` holds an embedded database (one in memory always does: it is made when opened). */
export const embeddedDatabaseIn = (directory: string) =>
  directory.startsWith("memory://")
    ? Effect.succeed(true)
    : Effect.flatMap(FileSystem.FileSystem, (fs) =>
      // Written by initdb when PGlite first creates the database.
      fs.exists(join(directory, "PG_VERSION")).pipe(Effect.orElseSucceed(() => false)))

/** How claims are loaded into either database. */
const loading: Config.Config.Wrap<SqlTelemetryStore.SqlTelemetryStoreOptions> = {
  batchReadings: integerSetting("COPY_BATCH_READINGS", 20_000, { min: 1 }),
  takeOverAfter: positiveDuration("LOAD_TAKEOVER_AFTER", Duration.minutes(1)),
  maxEquipmentsPerTenant: integerSetting("MAX_EQUIPMENTS_PER_TENANT", 100_000, { min: 0 }),
  maxSensorsPerTenant: integerSetting("MAX_SENSORS_PER_TENANT", 1_000_000, { min: 0 })
}

/** Of either queue. */
const publishTimeout = Config.duration("QUEUE_PUBLISH_TIMEOUT").pipe(Config.withDefault(Duration.seconds(5)))

/** `KAFKA_*`: the claims on Kafka. */
const kafka: Config.Config.Wrap<KafkaClaimQueue.KafkaQueueOptions> = {
  brokers: Config.string("KAFKA_BROKERS").pipe(
    Config.map((list) => list.split(",").map((b) => b.trim()).filter((b) => b.length > 0))
  ),
  clientId: Config.string("KAFKA_CLIENT_ID").pipe(Config.withDefault("telemetry")),
  topic: Config.string("KAFKA_TOPIC").pipe(Config.withDefault("telemetry.raw")),
  deadLetterTopic: Config.string("KAFKA_DLQ_TOPIC").pipe(Config.withDefault("telemetry.dlq")),
  groupId: Config.string("KAFKA_GROUP_ID").pipe(Config.withDefault("telemetry-workers")),
  publishTimeout,
  sessionTimeout: Config.duration("KAFKA_SESSION_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30))),
  heartbeatInterval: Config.duration("KAFKA_HEARTBEAT_INTERVAL").pipe(Config.withDefault(Duration.seconds(3))),
  partitionsConcurrently: integerSetting("KAFKA_PARTITIONS_CONCURRENTLY", 3, { min: 1 }),
  shutdownTimeout: ShutdownTimeout
}

/** `QUEUE_*` and `EMBEDDED_QUEUE_DIR`: the in-process queue. */
const inProcess: Config.Config.Wrap<EmbeddedClaimQueue.EmbeddedQueueOptions> = {
  capacity: integerSetting("QUEUE_CAPACITY", 1000, { min: 1 }),
  publishTimeout,
  shutdownTimeout: ShutdownTimeout,
  // Beside the embedded database by default, so that one data directory holds one deployment.
  directory: Config.string("EMBEDDED_QUEUE_DIR").pipe(
    Config.orElse(() => Config.map(embeddedDatabaseDir, (db) => join(dirname(db), "queue")))
  )
}

/**
 * The layer `make` builds from the module `load` imports, imported only when the layer is built: a process loads
 * the client library (kafkajs, minio, pg, PGlite and its WASM) of the adapters its configuration chooses, no other.
 */
const lazy = <M, A, E, R>(load: () => Promise<M>, make: (module: M) => Layer.Layer<A, E, R>) =>
  Layer.unwrapEffect(Effect.map(Effect.promise(load), make))

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
      // A schedule's last output is tapped too, when it stops: a failure not retried is not announced as waited for.
      Schedule.tapOutput(([delay, error]) =>
        Effect.when(Effect.logWarning(
          `startup: ${what} is unreachable (${(error as { message?: string })?.message ?? error}); ` +
            `trying again in ${Duration.format(Duration.seconds(Math.max(1, Math.round(Duration.toSeconds(delay)))))}`
        ), () => isUnreachable(error)))
    )
  )

/** PostgreSQL at `DATABASE_URL`, migrated. */
export const postgres = Migrator.migrated(
  lazy(() => import("@telemetry/infra/db/PostgresClient"), (module) => module.layerConfig(postgresOptions))
)
/** Embedded TimescaleDB in `EMBEDDED_DB_DIR`, migrated. */
export const embeddedDatabase = Migrator.migrated(
  lazy(() => import("@telemetry/infra/db/PgliteClient"), (module) => module.layerConfig({ dataDir: embeddedDatabaseDir }))
)

/**
 * The telemetry store and maintenance over `database`, which they also provide; `oneSession` for the embedded
 * database, whose loads commit batch by batch so as not to hold its one session for a whole claim.
 */
const storeOn = <A, E, R>(database: Layer.Layer<A | SqlClient.SqlClient, E, R>, oneSession = false) =>
  SqlTelemetryStore.layerConfig({ ...loading, commitEachBatch: Config.succeed(oneSession) }).pipe(
    Layer.provideMerge(SqlMaintenance.layer),
    Layer.provideMerge(database)
  )

/** PostgreSQL or TimescaleDB at `DATABASE_URL`, else embedded TimescaleDB in `EMBEDDED_DB_DIR`; migrated. */
export const database = whenSet("DATABASE_URL", postgres, embeddedDatabase)

/** The database, with the telemetry store and maintenance over it. */
export const telemetryStore = whenSet("DATABASE_URL", storeOn(postgres), storeOn(embeddedDatabase, true))

const s3Store = lazy(() => import("@telemetry/infra/storage/s3/S3ObjectStore"), (module) => module.layerConfig(s3))
const fileStore = FileObjectStore.layerConfig(files)

/** S3 or MinIO at `S3_ENDPOINT`, else files under `STORAGE_DIR`. */
export const objectStore = whenSet("S3_ENDPOINT", s3Store, fileStore)

const kafkaQueue = lazy(() => import("@telemetry/infra/queue/kafka/KafkaClaimQueue"), (module) => module.layerConfig(kafka))
/** The in-process queue, holding its directory (`EMBEDDED_QUEUE_DIR`) for this process alone. */
export const embeddedClaimQueue = EmbeddedClaimQueue.layerConfig(inProcess)

/** The in-process queue with the recovery that makes up for it living in memory. */
const embeddedQueue = Recovery.layer.pipe(Layer.provideMerge(embeddedClaimQueue))

/** The queue without the recovery: for a replay, which re-queues the range asked for, not every unloaded payload. */
export const claimQueueWithoutRecovery = whenSet("KAFKA_BROKERS", kafkaQueue, embeddedClaimQueue)

/**
 * Storage, database and queue of a server (`pnpm start`, `pnpm worker`), each the real service its variable names
 * — waited for while unreachable — or else the embedded stand-in: with nothing set, everything runs in this
 * process. Kafka when `KAFKA_BROKERS` is set, else the in-process queue. With the status its worker reports.
 */
export const fromConfig = whenSet("KAFKA_BROKERS", waitingFor("Kafka", kafkaQueue), embeddedQueue).pipe(
  Layer.provideMerge(Layer.mergeAll(
    whenSet("S3_ENDPOINT", waitingFor("storage", s3Store), fileStore),
    whenSet("DATABASE_URL", waitingFor("the database", storeOn(postgres)), storeOn(embeddedDatabase, true)),
    WorkerStatus.layer
  )),
  Layer.provide(NodeContext.layer)
)
