import { NodeContext } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { haPayload } from "@telemetry/domain/testing"
import * as Migrator from "@telemetry/infra/db/Migrator"
import { databases, postgresAt, storeOn, type TestDatabase } from "@telemetry/infra/testing"
import { freePort } from "@telemetry/testbed/FreePort"
import * as PostgresDatabase from "@telemetry/testbed/PostgresDatabase"
import * as TcpProxy from "@telemetry/testbed/TcpProxy"
import { ConfigProvider, Deferred, Effect, Either, Fiber, Layer, Logger, LogLevel } from "effect"
import { randomUUID } from "node:crypto"
import * as IngestRequests from "../src/idempotency/IngestRequests.js"
import { bearer, claimsOf, deviceToken, signToken } from "./support/auth.js"
import { serverOn } from "./support/server.js"

const submission = (overrides: Partial<IngestRequests.Submission> = {}): IngestRequests.Submission => {
  const claimId = randomUUID()
  return {
    tenantId: "tenant-a",
    deviceId: "device-1",
    idempotencyKey: null,
    sha256: "a".repeat(64),
    claimId,
    objectKey: `telemetry/x/${claimId}.json.gz`,
    items: 2,
    readings: 5,
    ...overrides
  }
}

const reserve = (s: IngestRequests.Submission) =>
  Effect.flatMap(IngestRequests.IngestRequests, (r) => Effect.either(r.reserve(s)))
const accept = (claimId: string) => Effect.flatMap(IngestRequests.IngestRequests, (r) => r.accept(claimId))
const release = (claimId: string) => Effect.flatMap(IngestRequests.IngestRequests, (r) => r.release(claimId))
const tagOf = (result: Either.Either<void, { readonly _tag: string }>) => Either.isLeft(result) ? result.left._tag : "Reserved"

/** Tests of the idempotency records over a fresh `database`, configured by `env` alone. */
const recordsOn = (database: TestDatabase, env: Record<string, string> = {}) =>
  layer(
    IngestRequests.layer.pipe(
      Layer.provideMerge(storeOn(database, 1000)),
      Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))
    ),
    { timeout: 120_000, excludeTestServices: true }
  )

for (const database of databases) {
  describe(`idempotency records on ${database.name}`, () => {
    recordsOn(database)((it) => {
      it.effect("the same body from the same device is in progress, then a duplicate of the first claim", () =>
        Effect.gen(function*() {
          const first = submission({ sha256: "b".repeat(64) })
          expect(tagOf(yield* reserve(first))).toBe("Reserved")
          const retry = submission({ sha256: first.sha256 })
          const pending = yield* reserve(retry)
          expect(Either.isLeft(pending) && pending.left).toEqual(new IngestRequests.InProgress({ claimId: first.claimId }))
          yield* accept(first.claimId)
          const duplicate = yield* reserve(retry)
          expect(Either.isLeft(duplicate) && duplicate.left._tag).toBe("Duplicate")
          if (Either.isLeft(duplicate) && duplicate.left._tag === "Duplicate") {
            expect(duplicate.left.first).toMatchObject({ claimId: first.claimId, objectKey: first.objectKey, items: 2, readings: 5 })
          }
        }))

      it.effect("another device, another tenant or another body is a new request", () =>
        Effect.gen(function*() {
          const first = submission({ sha256: "c".repeat(64) })
          expect(tagOf(yield* reserve(first))).toBe("Reserved")
          yield* accept(first.claimId)
          expect(tagOf(yield* reserve(submission({ sha256: first.sha256, deviceId: "device-2" })))).toBe("Reserved")
          expect(tagOf(yield* reserve(submission({ sha256: first.sha256, tenantId: "tenant-b" })))).toBe("Reserved")
          expect(tagOf(yield* reserve(submission({ sha256: "d".repeat(64) })))).toBe("Reserved")
        }))

      it.effect("a released reservation lets the retry go ahead as a new claim", () =>
        Effect.gen(function*() {
          const first = submission({ sha256: "e".repeat(64) })
          expect(tagOf(yield* reserve(first))).toBe("Reserved")
          yield* release(first.claimId)
          expect(tagOf(yield* reserve(submission({ sha256: first.sha256 })))).toBe("Reserved")
        }))

      it.effect("an Idempotency-Key returns its first claim for the same body and refuses a different one", () =>
        Effect.gen(function*() {
          const first = submission({ idempotencyKey: "key-1", sha256: "f".repeat(64) })
          expect(tagOf(yield* reserve(first))).toBe("Reserved")
          yield* accept(first.claimId)
          expect(tagOf(yield* reserve(submission({ idempotencyKey: "key-1", sha256: first.sha256 })))).toBe("Duplicate")
          expect(tagOf(yield* reserve(submission({ idempotencyKey: "key-1", sha256: "0".repeat(64) })))).toBe("KeyReused")
          // The same body under a new key is a new request: the client says so.
          expect(tagOf(yield* reserve(submission({ idempotencyKey: "key-2", sha256: first.sha256 })))).toBe("Reserved")
        }))

      it.effect("concurrent retries of one body: exactly one reservation wins", () =>
        Effect.gen(function*() {
          const sha256 = "9".repeat(64)
          const results = yield* Effect.all(
            Array.from({ length: 8 }, () => reserve(submission({ sha256, deviceId: "racer" }))),
            { concurrency: "unbounded" }
          )
          expect(results.map(tagOf).filter((t) => t === "Reserved")).toHaveLength(1)
          expect(results.map(tagOf).filter((t) => t === "InProgress")).toHaveLength(7)
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql`SELECT 1 FROM ingest_requests WHERE device_id = 'racer'`
          expect(rows).toHaveLength(1)
        }))

      it.effect("a record past its window no longer counts", () =>
        Effect.gen(function*() {
          const first = submission({ sha256: "8".repeat(64) })
          expect(tagOf(yield* reserve(first))).toBe("Reserved")
          yield* accept(first.claimId)
          const sql = yield* SqlClient.SqlClient
          yield* sql`UPDATE ingest_requests SET created_at = now() - interval '11 minutes' WHERE claim_id = ${first.claimId}`
          expect(tagOf(yield* reserve(submission({ sha256: first.sha256 })))).toBe("Reserved")
        }))
    })
  })
}

describe("idempotency by body turned off", () => {
  recordsOn(databases[0]!, { IDEMPOTENCY_BODY_WINDOW: "0 seconds" })((it) => {
    it.effect("the same body twice is two requests; keys still work", () =>
      Effect.gen(function*() {
        const first = submission()
        expect(tagOf(yield* reserve(first))).toBe("Reserved")
        yield* accept(first.claimId)
        expect(tagOf(yield* reserve(submission()))).toBe("Reserved")
        const keyed = submission({ idempotencyKey: "k" })
        expect(tagOf(yield* reserve(keyed))).toBe("Reserved")
        expect(tagOf(yield* reserve(submission({ idempotencyKey: "k" })))).toBe("InProgress")
      }))
  })
})

describe("idempotency records while the database does not answer", () => {
  // PostgreSQL: another session holds a lock on the records, as a database that hangs would hold every statement.
  recordsOn(databases[1]!, { INGEST_DATABASE_TIMEOUT: "300 millis" })((it) => {
    it.effect("an upload waits for them no longer than INGEST_DATABASE_TIMEOUT, then goes on without the check", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const locked = yield* Deferred.make<void>()
        const gate = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(sql.withTransaction(
          sql`LOCK TABLE ingest_requests IN ACCESS EXCLUSIVE MODE`.pipe(
            Effect.zipRight(Deferred.succeed(locked, undefined)),
            Effect.zipRight(Deferred.await(gate))
          )
        ))
        yield* Deferred.await(locked)
        // Answered while the lock is held: not waiting for the database.
        const s = submission()
        expect(tagOf(yield* reserve(s))).toBe("Reserved")
        yield* accept(s.claimId)
        yield* release(submission().claimId)
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(holder)
      }))
  })
})

/** PostgreSQL, migrated, behind a proxy that can stall: connections open, nothing answered, as a database that hangs. */
const hangingDatabase = Effect.gen(function*() {
  const database = yield* PostgresDatabase.PostgresDatabase
  const url = new URL(database.url)
  const proxy = yield* TcpProxy.make({ host: url.hostname, port: Number(url.port) })
  url.port = String(proxy.port)
  return { proxy, migrated: Migrator.migrated(postgresAt(url.toString())).pipe(Layer.provideMerge(NodeContext.layer)) }
})

/** A logger keeping each message, after its level's label, in `messages`. */
const keptIn = (messages: Array<string>) =>
  Logger.replace(Logger.defaultLogger, Logger.make(({ logLevel, message }) => void messages.push(`${logLevel.label} ${String(message)}`)))

describe("idempotency records while the database hangs", () => {
  it.scopedLive("an upload waits for them at most INGEST_DATABASE_TIMEOUT, then not at all for twice that time, then uses them again", () =>
    Effect.gen(function*() {
      const { migrated, proxy } = yield* hangingDatabase
      const warnings: Array<string> = []
      const records = yield* Layer.build(IngestRequests.layer.pipe(
        Layer.provideMerge(migrated),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["INGEST_DATABASE_TIMEOUT", "1 second"]]))))
      ))
      const run = <A, E>(effect: Effect.Effect<A, E, IngestRequests.IngestRequests>) =>
        effect.pipe(
          Effect.provide(records),
          Logger.withMinimumLogLevel(LogLevel.Debug),
          Effect.provide(keptIn(warnings))
        )
      const said = () => warnings.splice(0)

      proxy.stall()
      expect(tagOf(yield* run(reserve(submission())))).toBe("Reserved")
      expect(said()).toEqual(["WARN idempotency check skipped, the database failed: no answer within 1s (INGEST_DATABASE_TIMEOUT)"])
      // Not asked again meanwhile: the next upload's steps do not wait, nor repeat the warning (at debug only).
      const next = submission()
      expect(tagOf(yield* run(reserve(next)))).toBe("Reserved")
      yield* run(accept(next.claimId))
      expect(said()).toEqual([
        "DEBUG idempotency check skipped, the database failed: not asked: the database gave no answer within 1s (INGEST_DATABASE_TIMEOUT) less than 2s ago",
        `DEBUG claim ${next.claimId} not marked accepted for idempotency: not asked: the database gave no answer within 1s (INGEST_DATABASE_TIMEOUT) less than 2s ago`
      ])

      // Answering again, asked again once that time is over: the records work as before.
      proxy.pass()
      yield* Effect.sleep("2 seconds")
      const again = submission()
      expect(tagOf(yield* run(reserve(again)))).toBe("Reserved")
      expect(tagOf(yield* run(reserve({ ...again, claimId: randomUUID() })))).toBe("InProgress")
      expect(said()).toEqual([])
    }).pipe(Effect.provide(PostgresDatabase.layer)), { timeout: 120_000 })

  it.scopedLive("through the API: once the records gave no answer in time, a zone-less token's upload does not wait for its account's zone either", () =>
    Effect.gen(function*() {
      const { migrated, proxy } = yield* hangingDatabase
      const port = yield* Effect.promise(freePort)
      const logged: Array<string> = []
      yield* Layer.build(serverOn(migrated, port, { INGEST_DATABASE_TIMEOUT: "1 second" }).pipe(Layer.provide(keptIn(logged))))
      const upload = (token: string) =>
        Effect.promise(async () => {
          const response = await fetch(`http://127.0.0.1:${port}/api/v1/telemetry/bulk`, {
            method: "POST",
            headers: { "content-type": "application/json", ...bearer(token) },
            body: JSON.stringify(haPayload(`hang-${randomUUID()}`))
          })
          return { status: response.status, body: await response.text() }
        })
      proxy.stall()
      // A token with its zone: stored, its records skipped after the timeout.
      expect(yield* upload(signToken(claimsOf("device", "default", "zoned", { tz: "UTC" })))).toMatchObject({ status: 202 })
      // A token without: its account's zone is not asked for either, for now.
      const zoneless = yield* upload(deviceToken())
      expect(zoneless.status).toBe(503)
      expect(JSON.parse(zoneless.body)).toMatchObject({ error: "database_unavailable" })
      expect(logged).toContain(
        "ERROR the database is unavailable: not asked: the database gave no answer within 1s (INGEST_DATABASE_TIMEOUT) less than 2s ago"
      )
      proxy.pass()
    }).pipe(Effect.provide(PostgresDatabase.layer)), { timeout: 120_000 })
})
