/**
 * The stand-ins of the real services for the tests that run our programs as OS processes: librdkafka's mock
 * cluster, s3rver and a fresh PostgreSQL database (DEVELOPERS.md says what each cannot show).
 */
import { authEnv } from "@telemetry/ingest/testing/auth"
import * as KafkaMock from "@telemetry/testbed/KafkaMock"
import * as PostgresDatabase from "@telemetry/testbed/PostgresDatabase"
import * as S3Server from "@telemetry/testbed/S3Server"
import { Effect, Layer } from "effect"
import pg from "pg"
import { fixtureEnv } from "./fixtures.js"

/** The three, the mock cluster with `topics` (and their partition counts), for the scope of the layer. */
export const standIns = (topics: Readonly<Record<string, number>>) =>
  Layer.mergeAll(KafkaMock.layer({ topics }), S3Server.layer, PostgresDatabase.layer)

/** The running stand-ins, and the environment that points a program of ours at them, with the test secret. */
export const runningStandIns = Effect.gen(function*() {
  const kafka = yield* KafkaMock.KafkaMock
  const s3 = yield* S3Server.S3Server
  const database = yield* PostgresDatabase.PostgresDatabase
  return { kafka, s3, database, env: { ...kafka.env, ...s3.env, ...database.env, ...authEnv, ...fixtureEnv } }
})

/** A connection to a database of the stand-in PostgreSQL, closed with the scope. */
export const pgClient = (config: pg.ClientConfig) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new pg.Client(config)
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.end())
  )

/**
 * The pipeline's patience shortened, so that the tests that stop a process or a service wait less for it to be
 * noticed and for a load to go on.
 */
export const shortPatience = {
  // A stopped worker's partitions move after this: short, so that it is noticed soon; not shorter, because a loaded
  // machine then misses heartbeats, and the extra rebalances can crash the mock cluster (librdkafka 2.0.2 asserts
  // on a JoinGroup of a member whose previous one is still pending: see DEVELOPERS.md).
  KAFKA_SESSION_TIMEOUT: "8 seconds",
  // Members learn of a rebalance (a worker joining or gone) at their next heartbeat.
  KAFKA_HEARTBEAT_INTERVAL: "1 second",
  DATABASE_POOL_SIZE: "4",
  // Storage retried sooner and more often: S3 gives up after ~1.5 s instead of ~3.75 s, and a load waiting for
  // storage or the database tries again every second instead of backing off to 30 s.
  S3_RETRY_DELAY: "100 millis",
  WORKER_RETRY_MAX_DELAY: "1 second"
}
