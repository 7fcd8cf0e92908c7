import { NodeContext } from "@effect/platform-node"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import * as PgliteClient from "@telemetry/infra/db/PgliteClient"
import { bearer, deviceToken, readerToken } from "@telemetry/ingest/testing/auth"
import { readingsPayload } from "@telemetry/worker/testing/claims"
import { Duration, Effect } from "effect"
import { request } from "node:http"
import { setTimeout as sleep } from "node:timers/promises"
import { gzipSync } from "node:zlib"
import { healthy, type PipelineProcess, startPipeline, until } from "./support/process.js"
import { deployment, eventually } from "./support/stack.js"
import { valueOf } from "./support/exposition.js"
import { postBytes } from "./support/uploads.js"

// Issue 16 §1: ingest validates uploads on INGEST_PROCESSES threads. Uploads spread over two threads are each
// stored, answered and loaded exactly once, and a SIGTERM lets those in flight finish. §3: the pool keeps one
// thread while idle, and starts the others when uploads overlap.

const HOUR = 3_600_000
const START = Date.UTC(2026, 10, 12)
const THREADS = { INGEST_PROCESSES: "2" }

/** An upload of `readings` readings of its own equipment, from a device of its own (per-device slots are 4). */
const upload = (equipment: string, readings: number, gzipped: boolean) => {
  const json = Buffer.from(JSON.stringify(readingsPayload(equipment, readings, START)))
  return {
    equipment,
    readings,
    body: gzipped ? gzipSync(json) : json,
    headers: {
      ...(gzipped ? { "content-encoding": "gzip" } : {}),
      "x-device-id": `device-${equipment}`
    },
    token: deviceToken("default", `device-${equipment}`)
  }
}
type Upload = ReturnType<typeof upload>

/**
 * Posts `u` in `parts` pieces 200 ms apart: an upload in flight. `begun` resolves once its second piece is sent;
 * `answer` with the status, or the error if the connection was cut.
 */
const inParts = (base: string, u: Upload, parts: number) => {
  let begin = () => {}
  const begun = new Promise<void>((resolve) => (begin = resolve))
  const answer = new Promise<number | string>((resolve) => {
    const req = request(`${base}/api/v1/telemetry/bulk`, {
      method: "POST",
      agent: false,
      headers: { "content-type": "application/json", ...bearer(u.token), ...u.headers }
    }, (response) => {
      response.resume()
      response.on("end", () => resolve(response.statusCode ?? 0))
    })
    req.on("error", (e) => resolve(e.message))
    void (async () => {
      const size = Math.ceil(u.body.length / parts)
      for (let i = 0; i < parts && !req.destroyed; i++) {
        req.write(u.body.subarray(i * size, (i + 1) * size))
        if (i === 1) begin()
        await sleep(200)
      }
      req.end()
    })()
  })
  return { begun, answer }
}

/** Readings of `equipment` the running pipeline serves (hourly aggregates, real-time). */
const served = async (base: string, equipment: string) => {
  const query = `period=hour&start_date=${new Date(START).toISOString()}&end_date=${new Date(START + 48 * HOUR).toISOString()}`
  const response = await fetch(`${base}/api/v1/analytics/equipment/${equipment}/history?${query}`, { headers: bearer(readerToken()) })
  const { data } = (await response.json()) as { data: Array<{ sample_count: number }> }
  return data.reduce((n, row) => n + row.sample_count, 0)
}

/** `pnpm start`'s program on `env`, once it answers; SIGKILLed with the scope if still running. */
const running = (env: Record<string, string>, base: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const pipeline = startPipeline(env)
      await healthy(pipeline, base)
      return pipeline
    }),
    (pipeline) => Effect.sync(() => pipeline.child.kill("SIGKILL"))
  )

const stop = (pipeline: PipelineProcess) =>
  Effect.promise(() => {
    pipeline.child.kill("SIGTERM")
    return pipeline.exited
  })

describe("ingest validating on two threads (INGEST_PROCESSES=2), on embedded parts", () => {
  it.scopedLive("concurrent uploads are all stored and loaded exactly once; a SIGTERM answers the uploads in flight", () =>
    Effect.gen(function*() {
      const { base, dataDir, env } = yield* deployment("ingest-processes")
      const ingestOnly = { ...env, ...THREADS, RUN_WORKER: "false", SHUTDOWN_TIMEOUT: "60 seconds" }

      // Eight at once, gzip and plain: more than the threads, so each thread validates several interleaved.
      const concurrent = Array.from({ length: 8 }, (_, i) => upload(`threads-${i}`, 4_000, i % 2 === 0))
      const first = yield* running(ingestOnly, base)
      const replies = yield* Effect.forEach(concurrent, (u) => postBytes(base, u.body, u.token, u.headers), {
        concurrency: "unbounded"
      })
      expect(replies.map((r) => [r.status, r.json.readings])).toEqual(concurrent.map(() => [202, 4_000]))
      expect(new Set(replies.map((r) => r.json.claim_id)).size).toBe(8)

      // SIGTERM once three uploads are under way: each is read to its end, validated, stored and answered.
      const inFlight = Array.from({ length: 3 }, (_, i) => upload(`threads-term-${i}`, 20_000, i !== 1))
      const posts = inFlight.map((u) => inParts(base, u, 10))
      yield* Effect.promise(() => Promise.all(posts.map((p) => p.begun)))
      expect(yield* stop(first)).toBe(0)
      expect(yield* Effect.promise(() => Promise.all(posts.map((p) => p.answer)))).toEqual([202, 202, 202])

      // The whole pipeline, still on two threads, loads every claim accepted.
      const all = [...concurrent, ...inFlight]
      const whole = yield* running({ ...env, ...THREADS }, base)
      yield* Effect.promise(() =>
        until(whole, async () => {
          const counts = await Promise.all(all.map((u) => served(base, u.equipment)))
          return counts.every((n, i) => n >= all[i]!.readings)
        }, 120_000, "every upload loaded")
      )
      expect(yield* stop(whole)).toBe(0)

      const loaded = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [rows] = yield* sql<{ total: number; distinct_rows: number }>`
          SELECT count(*)::int AS total, count(DISTINCT (t.time, t.sensor_id))::int AS distinct_rows
          FROM telemetry_data t JOIN equipments e ON e.id = t.equipment_id WHERE e.uuid LIKE 'threads-%'`
        const [ledger] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM claim_ledger`
        return { ...rows!, claims: ledger!.n }
      }).pipe(Effect.provide(PgliteClient.layer({ dataDir })), Effect.provide(NodeContext.layer))
      const readings = all.reduce((n, u) => n + u.readings, 0)
      expect(loaded).toEqual({ total: readings, distinct_rows: readings, claims: all.length })
    }), { timeout: 900_000 })
})

describe("the validation threads follow the uploads", () => {
  it.scopedLive("one thread while idle, a second when two uploads overlap, back to one once it has been idle", () =>
    Effect.gen(function*() {
      const { base, env } = yield* deployment("ingest-threads-idle")
      const metricsToken = "threads-scrape-secret"
      yield* running({ ...env, ...THREADS, INGEST_THREAD_IDLE_TIMEOUT: "2 seconds", METRICS_TOKEN: metricsToken, RUN_WORKER: "false" }, base)
      const threads = Effect.promise(async () => {
        const response = await fetch(`${base}/metrics`, { headers: bearer(metricsToken) })
        return valueOf(await response.text(), "telemetry_ingest_validation_threads")
      })
      const reaches = (n: number) => eventually(threads, (seen) => seen === n, Duration.minutes(1))

      expect(yield* threads).toBe(1)
      // Two uploads sent slowly (10 pieces, 200 ms apart), the second once the first is under way.
      const [slow, other] = [upload("threads-idle-a", 20_000, true), upload("threads-idle-b", 20_000, false)]
      const first = inParts(base, slow, 10)
      yield* Effect.promise(() => first.begun)
      const second = inParts(base, other, 10)
      yield* reaches(2)
      expect(yield* Effect.promise(() => Promise.all([first.answer, second.answer]))).toEqual([202, 202])
      yield* reaches(1)
      // The one left takes the next upload.
      const next = upload("threads-idle-c", 1_000, true)
      const reply = yield* postBytes(base, next.body, next.token, next.headers)
      expect([reply.status, reply.json.readings]).toEqual([202, 1_000])
    }), { timeout: 300_000 })
})
