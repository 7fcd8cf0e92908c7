import { describe, expect, it } from "@effect/vitest"
import { ClaimQueue } from "@telemetry/domain"
import { haPayload } from "@telemetry/domain/testing"
import { bearer, deviceToken } from "@telemetry/ingest/testing/auth"
import { readingsPayload, stash } from "@telemetry/worker/testing/claims"
import * as SqlClient from "@effect/sql/SqlClient"
import { Context, Effect, Fiber, Layer } from "effect"
import { request as httpRequest } from "node:http"
import { gzipSync } from "node:zlib"
import { eventually, freshDatabase, loaded, switchable } from "./support/pipeline.js"
import { startedIngest, until } from "./support/process.js"
import { embeddedStack, freePort } from "./support/stack.js"
import { runningStandIns, standIns } from "./support/standIns.js"

interface Check {
  readonly status: "up" | "degraded" | "down"
  readonly latency_ms?: number
  readonly error?: string
  readonly reason?: string
  readonly backlog?: { readonly pending: number; readonly waiting?: number; readonly capacity?: number; readonly stalled_seconds: number; readonly stalled_partition?: number }
  readonly restarts?: number
  readonly failed_deliveries?: number
  readonly busy_since?: string | null
}

type Checks = Record<"storage" | "queue" | "database", Check> & { readonly worker?: Check }

const getJson = <A>(base: string, path: string) =>
  Effect.promise(async () => {
    const response = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(20_000) })
    return { code: response.status, body: (await response.json()) as A }
  })

const detailed = (base: string) =>
  Effect.map(getJson<{ status: string; checks: Checks }>(base, "/api/v1/health/detailed"), ({ body, code }) => ({
    code,
    status: body.status,
    checks: body.checks
  }))

const ready = (base: string) =>
  Effect.map(getJson<{ status: string; reasons?: ReadonlyArray<string> }>(base, "/api/v1/health/ready"), ({ body, code }) => ({
    code,
    status: body.status,
    reasons: body.reasons ?? []
  }))

const post = (base: string, body: unknown, token = deviceToken()) =>
  Effect.promise(async () => {
    const response = await fetch(`${base}/api/v1/telemetry/bulk`, {
      method: "POST",
      headers: { "content-type": "application/json", ...bearer(token) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(20_000)
    })
    await response.arrayBuffer()
    return response.status
  })

/** An upload whose body is still coming, holding its slot, until the scope closes. */
const uploadInFlight = (base: string) =>
  Effect.acquireRelease(
    Effect.async<ReturnType<typeof httpRequest>>((resume) => {
      const request = httpRequest(`${base}/api/v1/telemetry/bulk`, {
        method: "POST",
        headers: { "content-type": "application/json", "content-encoding": "gzip", ...bearer(deviceToken()) }
      })
      request.on("error", () => {})
      const body = gzipSync(JSON.stringify(haPayload("slow")))
      // Half the body now; the rest never comes while the test runs.
      request.write(body.subarray(0, body.length / 2), () => resume(Effect.succeed(request)))
    }),
    (request) => Effect.sync(() => request.destroy())
  )

const up = { status: "up", latency_ms: expect.any(Number) }
const down = { status: "down", latency_ms: expect.any(Number), error: expect.any(String) }
const idle = { pending: 0, stalled_seconds: 0 }

describe("health on Kafka, S3 and PostgreSQL (ingest only)", () => {
  it.scopedLive("detailed: each dependency with its latency, 503 naming the one down, degraded while claims wait unconsumed; ready: 503 while storage or Kafka is down", () =>
    Effect.gen(function*() {
      const { env, kafka, s3 } = yield* runningStandIns
      const { base, ingest } = yield* startedIngest({ ...env, HEALTH_MAX_CLAIM_AGE: "2 seconds" })

      expect(yield* detailed(base)).toEqual({
        code: 200,
        status: "healthy",
        checks: { storage: up, queue: { ...up, backlog: idle }, database: up }
      })
      expect(yield* ready(base)).toEqual({ code: 200, status: "ready", reasons: [] })

      yield* Effect.promise(() => s3.down())
      const logged = ingest.output().length
      // Why, at once: one request, not retried until the check runs out of time.
      const refused = { ...down, error: expect.stringContaining("ECONNREFUSED") }
      expect(yield* detailed(base)).toEqual({
        code: 503,
        status: "unhealthy",
        checks: { storage: refused, queue: { ...up, backlog: idle }, database: up }
      })
      expect(yield* ready(base)).toEqual({ code: 503, status: "not_ready", reasons: [expect.stringMatching(/^storage is down: .*ECONNREFUSED/)] })
      // Nor does a check warn of each try, nor a probe's 503 make an error line of each poll.
      expect(ingest.output().slice(logged)).not.toMatch(/S3 head/)
      expect(ingest.output().slice(logged)).not.toMatch(/http request.*status.{0,3}503|status.{0,3}503.*http request/)
      yield* Effect.promise(() => s3.up())

      yield* kafka.brokerDown(1)
      expect(yield* detailed(base)).toEqual({ code: 503, status: "unhealthy", checks: { storage: up, queue: down, database: up } })
      expect(yield* ready(base)).toMatchObject({ code: 503, reasons: [expect.stringMatching(/^the queue is down: /)] })
      yield* kafka.brokerUp(1)

      // Back to healthy once both are back (Kafka's clients reconnect on their own time).
      yield* Effect.promise(() =>
        until(ingest, async () => (await Effect.runPromise(detailed(base))).code === 200, 60_000, "healthy again")
      )
      expect(yield* ready(base)).toMatchObject({ code: 200 })

      // A claim no worker takes: the group's lag, and once it has not moved for HEALTH_MAX_CLAIM_AGE, degraded.
      expect(yield* post(base, haPayload("waiting"))).toBe(202)
      expect(yield* detailed(base)).toMatchObject({ code: 200, status: "healthy", checks: { queue: { status: "up", backlog: { pending: 1 } } } })
      yield* Effect.sleep("2500 millis")
      const stuck = yield* detailed(base)
      expect(stuck).toMatchObject({ code: 200, status: "degraded", checks: { queue: { status: "degraded", backlog: { pending: 1 } } } })
      // Where: the claim's partition.
      const [, partition] = stuck.checks.queue.reason?.match(
        /^1 claim\(s\) not loaded, partition (\d) \(1 of them\) without progress for \d+s \(more than HEALTH_MAX_CLAIM_AGE, 2s\)$/
      ) ?? []
      expect(stuck.checks.queue.backlog?.stalled_partition).toBe(Number(partition))
      // Ingest can still take uploads.
      expect(yield* ready(base)).toMatchObject({ code: 200 })
    }).pipe(Effect.provide(standIns({ "telemetry.raw": 3 }))), { timeout: 180_000 })
})

describe("health on embedded parts", () => {
  it.scopedLive("degraded once claims wait longer than HEALTH_MAX_CLAIM_AGE or fill the queue; not ready while the queue is full or every upload slot is taken", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const base = `http://127.0.0.1:${port}`
      // No worker: claims stay queued.
      yield* Layer.build(embeddedStack(port, {
        RUN_WORKER: "false",
        QUEUE_CAPACITY: "2",
        QUEUE_PUBLISH_TIMEOUT: "200 millis",
        MAX_INFLIGHT_UPLOADS: "1",
        HEALTH_MAX_CLAIM_AGE: "2 seconds"
      }))

      yield* Effect.scoped(Effect.gen(function*() {
        yield* uploadInFlight(base)
        // The server admits the upload on its own time after the first bytes: wait until the slot is taken.
        yield* eventually(ready(base), (r) => r.code === 503)
        expect(yield* ready(base)).toEqual({ code: 503, status: "not_ready", reasons: ["every upload slot is taken (1 of 1)"] })
      }))
      yield* eventually(ready(base), (r) => r.code === 200)

      expect(yield* post(base, haPayload("first"))).toBe(202)
      expect(yield* detailed(base)).toMatchObject({
        code: 200,
        status: "healthy",
        checks: { queue: { status: "up", backlog: { pending: 1, waiting: 1, capacity: 2 } } }
      })
      yield* Effect.sleep("2500 millis")
      const old = yield* detailed(base)
      expect(old).toMatchObject({ code: 200, status: "degraded", checks: { queue: { status: "degraded" } } })
      expect(old.checks.queue.reason).toMatch(/^1 claim\(s\) not loaded, the oldest waiting for \d+s \(more than HEALTH_MAX_CLAIM_AGE, 2s\)$/)
      expect(yield* ready(base)).toMatchObject({ code: 200 })

      // Another tenant's (a tenant may hold half the queue).
      expect(yield* post(base, haPayload("second"), deviceToken("other-tenant", "d"))).toBe(202)
      const full = yield* detailed(base)
      expect(full).toMatchObject({ code: 200, status: "degraded", checks: { queue: { backlog: { pending: 2, waiting: 2, capacity: 2 } } } })
      expect(full.checks.queue.reason).toContain("the queue is full (2 claims wait, its capacity)")
      expect(yield* ready(base)).toEqual({ code: 503, status: "not_ready", reasons: ["the queue is full (2 claims wait)"] })
      expect(yield* post(base, haPayload("third"))).toBe(503)
    }), { timeout: 120_000 })

  it.scopedLive("the embedded database held by a long transaction is degraded (busy), not down; up once it ends", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const base = `http://127.0.0.1:${port}`
      const stack = yield* Layer.build(embeddedStack(port, { RUN_WORKER: "false", HEALTH_CHECK_TIMEOUT: "500 millis" }))
      expect(yield* detailed(base)).toMatchObject({ code: 200, status: "healthy", checks: { database: { status: "up" } } })

      // A transaction holding the one session for 4 s, as a load of a large claim does.
      const sql = Context.get(stack, SqlClient.SqlClient)
      const held = yield* Effect.fork(sql.withTransaction(Effect.zipRight(sql`SELECT 1`, Effect.sleep("4 seconds"))))
      yield* Effect.sleep("1500 millis")
      const busy = yield* detailed(base)
      expect(busy).toMatchObject({ code: 200, status: "degraded", checks: { database: { status: "degraded" } } })
      expect(busy.checks.database.reason).toMatch(
        /^no answer within 500ms: the embedded database runs one statement at a time, and the one holding it has for [12]s$/
      )
      expect(busy.checks.database.latency_ms).toBeGreaterThanOrEqual(500)
      yield* Fiber.join(held)
      expect(yield* detailed(base)).toMatchObject({ code: 200, status: "healthy", checks: { database: { status: "up" } } })
    }), { timeout: 120_000 })

  it.scopedLive("the worker of the process: degraded after its claim kept failing (the database was down), the failures counted, its consumer never restarted", () =>
    Effect.gen(function*() {
      const database = yield* freshDatabase
      const port = yield* Effect.promise(freePort)
      const base = `http://127.0.0.1:${port}`
      yield* Effect.gen(function*() {
        const queue = yield* ClaimQueue
        const outage = yield* switchable(database.name)
        // The worker reports once it has started; until then the check has no worker entry.
        yield* eventually(detailed(base), (h) => h.checks.worker !== undefined)
        expect(yield* detailed(base)).toMatchObject({
          code: 200,
          status: "healthy",
          checks: { worker: { status: "up", restarts: 0, failed_deliveries: 0, last_handled_at: null, busy_since: null } }
        })

        yield* outage.down
        const claim = yield* stash(readingsPayload("failing", 10))
        yield* queue.publish(claim.claim)
        // Every delivery fails while the database is down; the queue hands the claim out again after a pause.
        yield* eventually(detailed(base), (h) => (h.checks.worker?.failed_deliveries ?? 0) >= 3, "60 seconds")
        expect(yield* detailed(base)).toMatchObject({
          code: 503,
          // Why, in the server's words (the client's alone say "Failed to acquire connection").
          checks: {
            database: { status: "down", error: expect.stringContaining("is not currently accepting connections") },
            worker: { status: "degraded" }
          }
        })

        yield* outage.up
        yield* eventually(loaded("failing"), (l) => l.readings === 10, "60 seconds")
        // Everything answers again, but the failures are recent: degraded, not healthy. (The rows are visible a
        // moment before the worker has finished with the claim.)
        yield* eventually(detailed(base), (h) => h.code === 200 && h.checks.worker?.busy_since === null)
        const after = yield* detailed(base)
        expect(after).toMatchObject({
          status: "degraded",
          checks: {
            database: { status: "up" },
            worker: { status: "degraded", restarts: 0, last_handled_at: expect.any(String), busy_since: null }
          }
        })
        expect(after.checks.worker!.reason).toMatch(/^the handling of a claim failed \d+ times in the last 5m, leaving it queued$/)
      }).pipe(Effect.provide(embeddedStack(port, { DATABASE_URL: database.url, WORKER_RETRY_ATTEMPTS: "1" })))
    }), { timeout: 180_000 })
})
