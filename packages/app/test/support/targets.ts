/**
 * The pipeline as the end-to-end tests attack it, deployed two ways with the same services to look at: its HTTP
 * base (`Target`), its database (`SqlClient`), storage (`ObjectStore`) and queue (`ClaimQueue`).
 * - embedded: everything in this process (files, in-process queue, PGlite TimescaleDB);
 * - test bed: ingest and a worker as OS processes on the mock Kafka cluster, s3rver and a fresh PostgreSQL database
 *   (`TestBed`), the test reaching the same services from here.
 */
import { NodeContext } from "@effect/platform-node"
import * as SqlClient from "@effect/sql/SqlClient"
import { ClaimQueue, ObjectStore } from "@telemetry/domain"
import * as PostgresClient from "@telemetry/infra/db/PostgresClient"
import { deviceToken } from "@telemetry/ingest/testing/auth"
import type * as S3Server from "@telemetry/testbed/S3Server"
import { readingsPayload } from "@telemetry/worker/testing/claims"
import { Chunk, Context, Duration, Effect, Layer, Redacted, Stream } from "effect"
import * as Infrastructure from "../../src/Infrastructure.js"
import { configOf } from "./pipeline.js"
import { type PipelineProcess, started, startedIngest, startWorker } from "./process.js"
import { embeddedStack, eventually, freePort } from "./stack.js"
import { runningStandIns, shortPatience, standIns } from "./standIns.js"
import { postJson } from "./uploads.js"

export interface TargetShape {
  readonly name: string
  readonly base: string
}

export class Target extends Context.Tag("test/Target")<Target, TargetShape>() {}

export interface TestBedShape {
  readonly ingest: PipelineProcess
  readonly worker: PipelineProcess
  readonly s3: S3Server.RunningS3Server
  /** Kafka, S3, the database and the test secret: what a further process of the bed needs. */
  readonly env: Readonly<Record<string, string>>
}

export class TestBed extends Context.Tag("test/TestBed")<TestBed, TestBedShape>() {}

/** The whole pipeline in this process on embedded parts, with `env` on top of the test defaults. */
export const embedded = (env: Readonly<Record<string, string>>) =>
  Layer.unwrapEffect(Effect.map(Effect.promise(freePort), (port) =>
    Layer.merge(
      embeddedStack(port, env),
      Layer.succeed(Target, { name: "embedded (files, in-process queue, PGlite)", base: `http://127.0.0.1:${port}` })
    )))

/**
 * Ingest (`RUN_WORKER=false`, with `ingestEnv`) and one worker as OS processes on the mock Kafka cluster, s3rver
 * and a fresh PostgreSQL database; storage, queue and database also reached from this process.
 */
export const testBed = (ingestEnv: Readonly<Record<string, string>>, workerEnv: Readonly<Record<string, string>> = {}) =>
  Layer.unwrapScoped(Effect.gen(function*() {
    const { kafka, s3, database, env: standInsEnv } = yield* runningStandIns
    const env = { ...standInsEnv, ...shortPatience }
    const { base, ingest } = yield* startedIngest({ ...env, ...ingestEnv })
    const worker = yield* started(() => startWorker({ ...env, ...workerEnv }))
    const here = Layer.mergeAll(Infrastructure.objectStore, Infrastructure.claimQueueWithoutRecovery).pipe(
      Layer.provide(NodeContext.layer),
      Layer.provide(Layer.setConfigProvider(configOf({ ...kafka.env, ...s3.env })))
    )
    return Layer.mergeAll(
      Layer.succeed(Target, { name: "test bed (Kafka, S3, PostgreSQL; ingest and worker processes)", base }),
      Layer.succeed(TestBed, { ingest, worker, s3, env }),
      PostgresClient.layer({ url: Redacted.make(database.url), poolSize: 2 }),
      here
    )
  })).pipe(Layer.provide(standIns({ "telemetry.raw": 3, "telemetry.dlq": 1 })))

/** Readings stored for `tenant`. */
export const readingsOfTenant = (tenant: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ n: number }>`SELECT count(*)::int AS n FROM telemetry_data t JOIN equipments e ON e.id = t.equipment_id
        WHERE e.tenant_id = ${tenant}`,
      (rows) => rows[0]!.n
    ))

/** What became of a claim: its ledger row once it is loaded, or its dead letter; undefined while neither. */
const outcomeOf = (claimId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [loaded] = yield* sql<{ readings: number; duplicates: number; expired: number }>`SELECT readings, duplicates,
      expired FROM claim_ledger WHERE claim_id = ${claimId}`
    if (loaded !== undefined) return { loaded }
    const letters = yield* Stream.runCollect((yield* ClaimQueue).deadLetters({}))
    const letter = Chunk.findFirst(letters, (l) => l.claim?.claim_id === claimId)
    return letter._tag === "Some" ? { deadLetter: `${letter.value.reason}: ${letter.value.error}` } : undefined
  })

/** What became of a claim, once it was loaded or dead-lettered. */
export const settled = (claimId: string, timeout = Duration.seconds(90)) =>
  eventually(outcomeOf(claimId), (o) => o !== undefined, timeout).pipe(Effect.zipRight(outcomeOf(claimId)))

/**
 * What `tenant` has left in storage and the database: objects (or objects of no tenant, which no request may leave),
 * claims and equipments. Nothing, for a tenant whose requests were all refused.
 */
export const footprint = (tenant: string) =>
  Effect.all({
    objects: Effect.flatMap(ObjectStore, (storage) =>
      Effect.map(
        Stream.runCollect(storage.list("telemetry/")),
        Chunk.reduce(0, (n, o) => n + (o.metadata["tenant-id"] === undefined || o.metadata["tenant-id"] === tenant ? 1 : 0))
      )),
    claims: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.map(
        sql<{ n: number }>`SELECT (SELECT count(*) FROM claim_ledger WHERE tenant_id = ${tenant})
          + (SELECT count(*) FROM equipments WHERE tenant_id = ${tenant}) AS n`,
        (rows) => Number(rows[0]!.n)
      ))
  })

/** Nothing of `tenant` anywhere. */
export const NOTHING = { objects: 0, claims: 0 }

let goodTenants = 0

/**
 * A small payload of a tenant of its own, posted and loaded within seconds: whatever came before, the pipeline
 * still serves everyone else.
 */
export const goodPayloadLoads = (after: string) =>
  Effect.gen(function*() {
    const { base } = yield* Target
    const tenant = `good-${++goodTenants}`
    const answer = yield* postJson(base, readingsPayload(`${tenant}-eq`, 4, Date.now() - 3_600_000), deviceToken(tenant, "good-device"))
    if (answer.status !== 202) return yield* Effect.dieMessage(`after ${after}: a good payload got ${answer.status} ${JSON.stringify(answer.json)}`)
    yield* eventually(readingsOfTenant(tenant), (n) => n === 4, Duration.seconds(30)).pipe(
      Effect.orElse(() => Effect.dieMessage(`after ${after}: the good payload of ${tenant} was not loaded within 30 s`))
    )
  })
