import { NodeContext } from "@effect/platform-node"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import * as PgliteClient from "@telemetry/infra/db/PgliteClient"
import { bearer, deviceToken, readerToken } from "@telemetry/ingest/testing/auth"
import { Effect } from "effect"
import { request as httpRequest } from "node:http"
import { setTimeout as sleep } from "node:timers/promises"
import { gzipSync } from "node:zlib"
import { healthy, type PipelineProcess, startPipeline, until } from "./support/process.js"
import { deployment } from "./support/stack.js"

const HOUR = 3_600_000
const START = Date.UTC(2026, 10, 10)

/** One equipment, `readings` readings of 4 sensors one second apart. */
const payload = (equipment: string, readings: number) =>
  gzipSync(JSON.stringify([{
    equip_uuid: equipment,
    sensor: Array.from({ length: readings }, (_, j) => ({
      sensor_uuid: `${equipment}-s${j % 4}`,
      valor: j % 100,
      sensor_datahora_coleta: new Date(START + j * 1000).toISOString()
    }))
  }]))

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

const stop = async (p: PipelineProcess) => {
  p.child.kill("SIGTERM")
  return p.exited
}

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

      const ingestOnly = startPipeline({ ...env, RUN_WORKER: "false" })
      yield* Effect.promise(() => healthy(ingestOnly, base))
      const accepted = yield* Effect.promise(() => post(base, payload("restart-a", 5_000)))
      expect(accepted.status).toBe(202)
      ingestOnly.child.kill("SIGKILL")
      expect(yield* Effect.promise(() => ingestOnly.exited)).toBe("SIGKILL")

      const restarted = startPipeline(env)
      yield* Effect.promise(() => healthy(restarted, base))
      yield* Effect.promise(() =>
        until(restarted, async () => (await servedReadings(base, "restart-a")) === 5_000, 60_000, "the recovered claim to load")
      )
      yield* Effect.promise(() => stop(restarted))

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

      const second = startPipeline(env)
      yield* Effect.promise(() => healthy(second, base))
      for (const equipment of equipments) {
        yield* Effect.promise(() =>
          until(second, async () => (await servedReadings(base, equipment)) >= readings, 120_000, `${equipment} to load`)
        )
      }
      yield* Effect.promise(() => stop(second))

      const loaded = yield* countLoaded(dataDir, equipments)
      expect(loaded).toEqual({ total: 3 * readings, distinct_rows: 3 * readings, claims: 3 })
    }), { timeout: 300_000 })

  it.scopedLive("SIGTERM during an upload: the upload finishes and is answered, the process exits, the claim loads once", () =>
    Effect.gen(function*() {
      const { base, dataDir, env } = yield* deployment("sigterm-upload")
      const first = startPipeline({ ...env, RUN_WORKER: "false", SHUTDOWN_TIMEOUT: "30 seconds" })
      yield* Effect.promise(() => healthy(first, base))
      const status = yield* Effect.promise(() =>
        postSlowly(base, payload("graceful-a", 20_000), 10, 200, () => first.child.kill("SIGTERM"))
      )
      expect(status).toBe(202)
      expect(yield* Effect.promise(() => first.exited)).toBe(0)
      // New connections are refused once it stopped.
      expect(yield* Effect.promise(() => fetch(`${base}/api/v1/health`).then(() => "answered", () => "refused"))).toBe("refused")

      const second = startPipeline(env)
      yield* Effect.promise(() => healthy(second, base))
      yield* Effect.promise(() =>
        until(second, async () => (await servedReadings(base, "graceful-a")) === 20_000, 60_000, "the claim to load")
      )
      yield* Effect.promise(() => stop(second))
      expect(yield* countLoaded(dataDir, ["graceful-a"])).toEqual({ total: 20_000, distinct_rows: 20_000, claims: 1 })
    }), { timeout: 180_000 })

  it.scopedLive("an upload still streaming at the shutdown deadline is cut off and nothing of it is kept", () =>
    Effect.gen(function*() {
      const { base, dataDir, env } = yield* deployment("sigterm-deadline")
      const first = startPipeline({ ...env, RUN_WORKER: "false", SHUTDOWN_TIMEOUT: "1 second" })
      yield* Effect.promise(() => healthy(first, base))
      const status = yield* Effect.promise(() =>
        postSlowly(base, payload("cut-a", 20_000), 40, 200, () => first.child.kill("SIGTERM"))
      )
      expect(status).not.toBe(202)
      expect(yield* Effect.promise(() => first.exited)).toBe(0)

      const second = startPipeline(env)
      yield* Effect.promise(() => healthy(second, base))
      yield* Effect.sleep("3 seconds")
      yield* Effect.promise(() => stop(second))
      expect(yield* countLoaded(dataDir, ["cut-a"])).toEqual({ total: 0, distinct_rows: 0, claims: 0 })
    }), { timeout: 180_000 })
})
