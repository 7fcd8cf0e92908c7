import { NodeContext } from "@effect/platform-node"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import * as PgliteClient from "@telemetry/infra/db/PgliteClient"
import { bearer, deviceToken, readerToken } from "@telemetry/ingest/testing/auth"
import { readingsPayload } from "@telemetry/worker/testing/claims"
import { Effect } from "effect"
import { request as httpRequest } from "node:http"
import { setTimeout as sleep } from "node:timers/promises"
import { gzipSync } from "node:zlib"
import { healthy, type PipelineProcess, started, startIngestOnly, startPipeline, until } from "./support/process.js"
import { runCli } from "./support/cli.js"
import { deployment } from "./support/stack.js"

const HOUR = 3_600_000
const START = Date.UTC(2026, 10, 10)

/** One equipment, `readings` readings of 4 sensors one second apart from START, gzip-compressed. */
const payload = (equipment: string, readings: number) => gzipSync(JSON.stringify(readingsPayload(equipment, readings, START)))

const post = async (base: string, body: Buffer) => {
  const response = await fetch(`${base}/api/v1/telemetry/bulk`, {
    method: "POST",
    headers: { "content-type": "application/json", "content-encoding": "gzip", ...bearer(deviceToken()) },
    body: body as unknown as BodyInit
  })
  return { status: response.status, json: (await response.json()) as { claim_id: string } }
}

/**
 * Posts `body` slowly, in `parts` pieces `pauseMs` apart, calling `midway` after the second: an upload in flight
 * when something happens. Resolves with the status, or with the error if the connection was cut.
 */
const postSlowly = (base: string, body: Buffer, parts: number, pauseMs: number, midway: () => void) =>
  new Promise<number | string>((resolve) => {
    const request = httpRequest(`${base}/api/v1/telemetry/bulk`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "gzip", ...bearer(deviceToken()) }
    }, (response) => {
      response.resume()
      response.on("end", () => resolve(response.statusCode ?? 0))
    })
    request.on("error", (e) => resolve(e.message))
    void (async () => {
      const size = Math.ceil(body.length / parts)
      for (let i = 0; i < parts; i++) {
        if (request.destroyed) return
        request.write(body.subarray(i * size, (i + 1) * size))
        // After a pause: the connection is open and the request under way.
        if (i === 1) midway()
        await sleep(pauseMs)
      }
      request.end()
    })()
  })

/** Readings of an equipment as the running pipeline serves them (hourly aggregates, real-time). */
const servedReadings = async (base: string, equipment: string) => {
  const query = `period=hour&start_date=${new Date(START).toISOString()}&end_date=${new Date(START + 48 * HOUR).toISOString()}`
  const response = await fetch(`${base}/api/v1/analytics/equipment/${equipment}/history?${query}`, {
    headers: bearer(readerToken())
  })
  const { data } = (await response.json()) as { data: Array<{ sample_count: number }> }
  return data.reduce((n, row) => n + row.sample_count, 0)
}

/** Waits until `pipeline` serves `readings` readings of `equipment`. */
const serves = (pipeline: PipelineProcess, base: string, equipment: string, readings: number) =>
  until(pipeline, async () => (await servedReadings(base, equipment)) >= readings, 120_000, `${readings} readings of ${equipment}`)

/** Starts the pipeline again on `env`, runs `meanwhile` once it answers, then stops it with SIGTERM. */
const restartedWhile = (env: Record<string, string>, base: string, meanwhile: (pipeline: PipelineProcess) => Promise<unknown>) =>
  Effect.promise(async () => {
    const pipeline = startPipeline(env)
    await healthy(pipeline, base)
    await meanwhile(pipeline)
    pipeline.child.kill("SIGTERM")
    await pipeline.exited
  })

/**
 * Ingest alone, with `SHUTDOWN_TIMEOUT`, SIGTERMed while `body` is posted slowly in `parts`: the answer to that post
 * (a status, or the error of the cut connection), how the process exited, and what it printed.
 */
const sigtermDuringUpload = (env: Record<string, string>, base: string, shutdownTimeout: string, body: Buffer, parts: number) =>
  Effect.promise(async () => {
    const ingest = startPipeline({ ...env, RUN_WORKER: "false", SHUTDOWN_TIMEOUT: shutdownTimeout })
    await healthy(ingest, base)
    const answer = await postSlowly(base, body, parts, 200, () => ingest.child.kill("SIGTERM"))
    const exit = await ingest.exited
    return { answer, exit, output: ingest.output() }
  })

/** Opens the data directory the processes used, once they are gone, and counts what was loaded. */
const countLoaded = (dataDir: string, equipments: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [rows] = yield* sql<{ total: number; distinct_rows: number }>`
      SELECT count(*)::int AS total, count(DISTINCT (t.time, t.sensor_id))::int AS distinct_rows
      FROM telemetry_data t JOIN equipments e ON e.id = t.equipment_id WHERE e.uuid IN ${sql.in(equipments)}`
    const [ledger] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM claim_ledger`
    return { ...rows!, claims: ledger!.n }
  }).pipe(Effect.provide(PgliteClient.layer({ dataDir })), Effect.provide(NodeContext.layer))

describe("lossless restart on embedded parts", () => {
  it.scopedLive("a claim answered 202 whose process died before the worker ran is loaded once after restart", () =>
    Effect.gen(function*() {
      const { base, dataDir, env } = yield* deployment("restart")

      // `pnpm ingest` without Kafka: its claims wait for `pnpm start` on the same data, as it says. Killed with the
      // scope should an expectation fail first.
      const ingestOnly = yield* started(() => startIngestOnly(env))
      yield* Effect.promise(() => healthy(ingestOnly, base))
      expect(ingestOnly.output()).toContain("without KAFKA_BROKERS: accepted uploads wait in this process's embedded queue")
      const accepted = yield* Effect.promise(() => post(base, payload("restart-a", 5_000)))
      expect(accepted.status).toBe(202)
      ingestOnly.child.kill("SIGKILL")
      expect(yield* Effect.promise(() => ingestOnly.exited)).toBe("SIGKILL")
      // Its claim lost with the process's queue, which lives in memory, and its payload stored: pending still, as
      // `pnpm status` tells (it said 0).
      const status = yield* Effect.promise(() => runCli("status", ["--json"], env))
      expect(JSON.parse(status.stdout).queue).toEqual({ pending: 1, partitions: [{ topic: "embedded", partition: 0, lag: 1 }] })

      yield* restartedWhile(env, base, (restarted) => serves(restarted, base, "restart-a", 5_000))

      const loaded = yield* countLoaded(dataDir, ["restart-a"])
      expect(loaded).toEqual({ total: 5_000, distinct_rows: 5_000, claims: 1 })
    }), { timeout: 180_000 })

  it.scopedLive("a process SIGKILLed while loading loads every accepted claim exactly once after restart", () =>
    Effect.gen(function*() {
      const { base, dataDir, env } = yield* deployment("kill-mid-load")
      const equipments = ["kill-a", "kill-b", "kill-c"]
      const readings = 100_000

      const first = startPipeline(env)
      yield* Effect.promise(() => healthy(first, base))
      const bodies = equipments.map((equipment) => payload(equipment, readings))
      const accepted = yield* Effect.promise(() => Promise.all(bodies.map((body) => post(base, body))))
      expect(accepted.map((a) => a.status)).toEqual([202, 202, 202])
      // One claim is loading now, the others wait in the in-process queue: all of it dies here.
      first.child.kill("SIGKILL")
      yield* Effect.promise(() => first.exited)

      yield* restartedWhile(env, base, async (second) => {
        for (const equipment of equipments) await serves(second, base, equipment, readings)
      })

      const loaded = yield* countLoaded(dataDir, equipments)
      expect(loaded).toEqual({ total: 3 * readings, distinct_rows: 3 * readings, claims: 3 })
    }), { timeout: 300_000 })

  it.scopedLive("a process SIGKILLed between the batches of a claim resumes it after restart: every reading once, one load's totals", () =>
    Effect.gen(function*() {
      const { base, dataDir, env } = yield* deployment("kill-between-batches")
      const readings = 100_000
      // Twenty batches: the claim is partly committed for long enough to be seen so.
      const first = startPipeline({ ...env, COPY_BATCH_READINGS: "5000" })
      yield* Effect.promise(() => healthy(first, base))
      expect((yield* Effect.promise(() => post(base, payload("partial-a", readings)))).status).toBe(202)
      yield* Effect.promise(() =>
        until(first, async () => {
          const served = await servedReadings(base, "partial-a")
          if (served >= readings) throw new Error("the claim loaded whole before it was seen partly committed")
          return served > 0
        }, 120_000, "a part of the claim's readings"))
      first.child.kill("SIGKILL")
      yield* Effect.promise(() => first.exited)

      const ledger = Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ partial: boolean; readings: number; duplicates: number }>`SELECT partial, readings, duplicates FROM claim_ledger`).pipe(
          Effect.provide(PgliteClient.layer({ dataDir })),
          Effect.provide(NodeContext.layer)
        )
      const [killed] = yield* ledger
      expect(killed!.partial).toBe(true)
      expect(killed!.readings).toBeGreaterThan(0)
      expect(killed!.readings).toBeLessThan(readings)

      yield* restartedWhile(env, base, (second) => serves(second, base, "partial-a", readings))
      expect(yield* countLoaded(dataDir, ["partial-a"])).toEqual({ total: readings, distinct_rows: readings, claims: 1 })
      // Resumed after its committed batches, not loaded again over them.
      expect(yield* ledger).toEqual([{ partial: false, readings, duplicates: 0 }])
    }), { timeout: 300_000 })

  it.scopedLive("SIGTERM during an upload: the upload finishes and is answered, the process exits, the claim loads once", () =>
    Effect.gen(function*() {
      const { base, dataDir, env } = yield* deployment("sigterm-upload")
      const { answer, exit, output } = yield* sigtermDuringUpload(env, base, "30 seconds", payload("graceful-a", 20_000), 10)
      expect([answer, exit]).toEqual([202, 0])
      expect(output).toContain("ingest: stopped by signal")
      expect(output).not.toContain("cut off")
      // New connections are refused once it stopped.
      expect(yield* Effect.promise(() => fetch(`${base}/api/v1/health`).then(() => "answered", () => "refused"))).toBe("refused")

      yield* restartedWhile(env, base, (second) => serves(second, base, "graceful-a", 20_000))
      expect(yield* countLoaded(dataDir, ["graceful-a"])).toEqual({ total: 20_000, distinct_rows: 20_000, claims: 1 })
    }), { timeout: 180_000 })

  it.scopedLive("an upload still streaming at the shutdown deadline is cut off and nothing of it is kept", () =>
    Effect.gen(function*() {
      const { base, dataDir, env } = yield* deployment("sigterm-deadline")
      const { answer, exit, output } = yield* sigtermDuringUpload(env, base, "1 second", payload("cut-a", 20_000), 40)
      expect(answer).not.toBe(202)
      expect(exit).toBe(0)
      expect(output).toContain("shutdown: 1 request(s) still unanswered after SHUTDOWN_TIMEOUT (1s) are cut off")

      yield* restartedWhile(env, base, () => sleep(3000))
      expect(yield* countLoaded(dataDir, ["cut-a"])).toEqual({ total: 0, distinct_rows: 0, claims: 0 })
    }), { timeout: 180_000 })

  it.scopedLive("a second pnpm start on the same data exits naming the first, which goes on, stops cleanly and opens again whole", () =>
    Effect.gen(function*() {
      const { base, dataDir, env } = yield* deployment("twice")
      const first = yield* started(() => startPipeline(env))
      yield* Effect.promise(() => healthy(first, base))
      expect((yield* Effect.promise(() => post(base, payload("twice-a", 100)))).status).toBe(202)
      // Another port, the same directories: a second `pnpm start` in the same working directory. Once it had
      // opened the database too, the first one's close aborted, and the directory never opened again.
      const second = yield* started(() => startPipeline({ ...env, PORT: "0" }))
      expect(yield* Effect.promise(() => second.exited)).toBe(1)
      expect(second.output()).toContain(
        `the embedded database in ${dataDir} is in use by process ${first.child.pid}; stop that process first`
      )
      // Said in a sentence, not buried in a stack trace.
      expect(second.output()).not.toContain("    at ")
      expect((yield* Effect.promise(() => post(base, payload("twice-b", 100)))).status).toBe(202)
      yield* Effect.promise(() => serves(first, base, "twice-a", 100))
      yield* Effect.promise(() => serves(first, base, "twice-b", 100))
      first.child.kill("SIGTERM")
      expect(yield* Effect.promise(() => first.exited)).toBe(0)
      expect(yield* countLoaded(dataDir, ["twice-a", "twice-b"])).toEqual({ total: 200, distinct_rows: 200, claims: 2 })
    }), { timeout: 180_000 })
})
