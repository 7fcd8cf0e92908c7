import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import * as SqlClient from "@effect/sql/SqlClient"
import { WorkerStatus } from "@telemetry/domain"
import * as KafkaMock from "@telemetry/testbed/KafkaMock"
import * as PostgresDatabase from "@telemetry/testbed/PostgresDatabase"
import * as Worker from "@telemetry/worker/Worker"
import { ConfigProvider, Duration, Effect, Layer, Schedule } from "effect"
import * as Infrastructure from "../../src/Infrastructure.js"
import { fixtureEnv } from "./fixtures.js"

/** Configuration from `env` (and `fixtureEnv`) alone, whatever the environment running the tests says. */
export const configOf = (env: Readonly<Record<string, string>>) =>
  ConfigProvider.fromMap(new Map(Object.entries({ ...fixtureEnv, ...env })))

/** Storage, queue and database as a worker process builds them from `env`. */
export const infrastructure = (env: Readonly<Record<string, string>>) =>
  Infrastructure.fromConfig.pipe(Layer.provide(Layer.setConfigProvider(configOf(env))))

/**
 * Storage, queue and database as `infrastructure` builds them, but the in-process queue without its recovery: for
 * tests that publish the claims they store themselves (the recovery would queue them a second time).
 */
export const publishedOnly = (env: Readonly<Record<string, string>>) =>
  Layer.mergeAll(Infrastructure.objectStore, Infrastructure.telemetryStore, WorkerStatus.layer).pipe(
    Layer.provideMerge(Infrastructure.claimQueueWithoutRecovery),
    Layer.provide(NodeContext.layer),
    Layer.provide(Layer.setConfigProvider(configOf(env)))
  )

/** The worker's consumer, restarted after failures, configured by `env`. */
export const worker = (env: Readonly<Record<string, string>>) => Worker.run.pipe(Effect.withConfigProvider(configOf(env)))

/** A fresh database on the test server for the scope. */
export const freshDatabase = Effect.acquireRelease(Effect.promise(PostgresDatabase.create), (db) => Effect.promise(db.drop))

/** `PostgresDatabase.outage` as effects. */
export const switchable = (name: string) =>
  Effect.sync(() => {
    const outage = PostgresDatabase.outage(name)
    return { down: Effect.promise(outage.down), up: Effect.promise(outage.up) }
  })

/** A directory removed again when the scope closes. */
export const tempDir = Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "telemetry-worker-" })).pipe(
  Effect.provide(NodeContext.layer)
)

/** Runs `query` until `done` holds for its result. */
export const eventually = <A, E, R>(
  query: Effect.Effect<A, E, R>,
  done: (a: A) => boolean,
  timeout: Duration.DurationInput = Duration.seconds(60)
) =>
  query.pipe(
    Effect.repeat({ schedule: Schedule.spaced(Duration.millis(200)), until: done }),
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error("condition not reached in time") })
  )

/** Readings and ledger rows of the equipments whose uuid starts with `prefix`. */
export const loaded = (prefix: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ readings: number; distinct_readings: number; claims: number }>`SELECT
        (SELECT count(*)::int FROM telemetry_data t JOIN equipments e ON e.id = t.equipment_id
          WHERE e.uuid LIKE ${prefix + "%"}) AS readings,
        (SELECT count(DISTINCT (t.time, t.sensor_id))::int FROM telemetry_data t JOIN equipments e ON e.id = t.equipment_id
          WHERE e.uuid LIKE ${prefix + "%"}) AS distinct_readings,
        (SELECT count(*)::int FROM claim_ledger) AS claims`,
      (rows) => rows[0]!
    ))

/**
 * Whether a process connected as `application` is loading a claim: its transaction inserted the claim's ledger row
 * and is still open (a load claims its ledger row first). Other writes — the maintenance jobs a worker runs as it
 * starts, counting a delivery — do not count.
 */
export const loading = (application: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity a
        JOIN pg_locks l ON l.pid = a.pid AND l.relation = 'claim_ledger'::regclass AND l.mode = 'RowExclusiveLock'
        WHERE a.datname = current_database() AND a.application_name = ${application}`,
      (rows) => rows[0]!.n > 0
    ))

export const TOPIC = "telemetry.raw"
export const DLQ = "telemetry.dlq"
const GROUP = "telemetry-workers"

/**
 * A mock Kafka cluster with the claims and dead-letter topics (one partition each, so order is known), a fresh
 * PostgreSQL database and a storage directory, as a worker's environment with few, quick retries.
 */
export const kafkaDeployment = Effect.gen(function*() {
  const cluster = yield* KafkaMock.start({ topics: { [TOPIC]: 1, [DLQ]: 1 } })
  const database = yield* freshDatabase
  const env = {
    KAFKA_BROKERS: cluster.bootstrap,
    KAFKA_SESSION_TIMEOUT: "6 seconds",
    KAFKA_HEARTBEAT_INTERVAL: "1 second",
    DATABASE_URL: database.url,
    STORAGE_DIR: yield* tempDir,
    WORKER_RETRY_ATTEMPTS: "3",
    WORKER_RETRY_MAX_DELAY: "50 millis"
  }
  /** Claims the workers acknowledged. */
  const committed = Effect.map(cluster.committed(GROUP, TOPIC), (offsets) => offsets.reduce((a, b) => a + b, 0))
  return { cluster, database, env, committed }
})
