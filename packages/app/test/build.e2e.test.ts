import { beforeAll, describe, expect, it } from "@effect/vitest"
import { bearer, deviceToken, readerToken } from "@telemetry/ingest/testing/auth"
import { readingsPayload } from "@telemetry/worker/testing/claims"
import { Duration, Effect } from "effect"
import { execFile } from "node:child_process"
import { createServer } from "node:http"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { gzipSync } from "node:zlib"
import { valueOf } from "./support/exposition.js"
import { healthy, started, startCompiled } from "./support/process.js"
import { deployment, eventually, freePort } from "./support/stack.js"
import { runningStandIns, standIns } from "./support/standIns.js"
import { postBytes } from "./support/uploads.js"

// Issue 16 §3: production runs the bundles of `pnpm build` (the Dockerfile's CMD), which bundle the client
// libraries too and load each adapter's only when it is chosen. Built here from this checkout, each program takes
// an upload through to rows in the database, as the image would run it: the embedded one, and ingest and a worker
// on the stand-ins of S3, Kafka and PostgreSQL.

const root = fileURLToPath(new URL("../../../", import.meta.url))
const START = Date.UTC(2026, 10, 20)
const READINGS = 2_000

// Into dist/, where the programs find the repository one directory up (scripts/build.mjs).
beforeAll(() => promisify(execFile)(process.execPath, ["scripts/build.mjs"], { cwd: root }), 300_000)

/** Uploads `readings` readings of `equipment` as a device, gzipped; the ingest's answer. */
const upload = (base: string, equipment: string) =>
  Effect.gen(function*() {
    const body = gzipSync(JSON.stringify(readingsPayload(equipment, READINGS, START)))
    const device = `device-${equipment}`
    const token = deviceToken("default", device)
    return yield* postBytes(base, body, token, { "content-encoding": "gzip", "x-device-id": device })
  })

/** The raw readings of `equipment` that analytics serves. */
const stored = (base: string, equipment: string) =>
  Effect.promise(async () => {
    const query = `period=raw&limit=100000&start_date=${new Date(START).toISOString()}&end_date=${
      new Date(START + 86_400_000).toISOString()
    }`
    const response = await fetch(`${base}/api/v1/analytics/equipment/${equipment}/history?${query}`, {
      headers: bearer(readerToken())
    })
    return ((await response.json()) as { data: Array<{ time: string; sensor_uuid: string }> }).data
  })

/** Every reading stored once: READINGS rows, no two of one sensor at one time. */
const loadedOnce = (base: string, equipment: string) =>
  Effect.gen(function*() {
    yield* eventually(stored(base, equipment), (rows) => rows.length >= READINGS, Duration.minutes(2))
    const rows = yield* stored(base, equipment)
    expect(rows.length).toBe(READINGS)
    expect(new Set(rows.map((row) => `${row.sensor_uuid} ${row.time}`)).size).toBe(READINGS)
  })

/** An OTLP/HTTP receiver: the names of the spans posted to its `v1/traces` (JSON, as the exporter sends them). */
const traceReceiver = Effect.gen(function*() {
  const names: Array<string> = []
  const server = createServer((request, response) => {
    const parts: Array<Buffer> = []
    request.on("data", (part: Buffer) => parts.push(part))
    request.on("end", () => {
      if (request.url === "/v1/traces") {
        const body = JSON.parse(Buffer.concat(parts).toString())
        for (const resource of body.resourceSpans ?? []) {
          for (const scope of resource.scopeSpans ?? []) names.push(...scope.spans.map((span: { name: string }) => span.name))
        }
      }
      response.end("{}")
    })
  })
  const port = yield* Effect.promise(freePort)
  yield* Effect.acquireRelease(
    Effect.async<void>((resume) => void server.listen(port, "127.0.0.1", () => resume(Effect.void))),
    () => Effect.sync(() => server.close())
  )
  return { endpoint: `http://127.0.0.1:${port}`, names }
})

const page = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(url)
    return { status: response.status, text: await response.text() }
  })

describe("the compiled programs (pnpm build)", () => {
  it.scopedLive("embedded `dist/main/start.js` stores and loads an upload, and serves its docs, metrics and traces", () =>
    Effect.gen(function*() {
      const { base, env } = yield* deployment("compiled-embedded")
      const traces = yield* traceReceiver
      const pipeline = yield* started(() => startCompiled("main/start.js", { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: traces.endpoint }))
      yield* Effect.promise(() => healthy(pipeline, base))

      const accepted = yield* upload(base, "compiled-embedded")
      expect([accepted.status, accepted.json.readings]).toEqual([202, READINGS])
      yield* loadedOnce(base, "compiled-embedded")

      // Swagger UI's page is built on its first request, from a chunk of its own.
      const docs = yield* page(`${base}/api/v1/docs`)
      expect(docs.status).toBe(200)
      expect(docs.text).toContain("SwaggerUIBundle")
      const metrics = yield* page(`${base}/metrics`)
      expect(valueOf(metrics.text, "telemetry_ingest_payloads_accepted_total")).toBe(1)
      expect(valueOf(metrics.text, "telemetry_ingest_validation_threads")).toBeGreaterThanOrEqual(1)
      // The tracer's SDK is loaded only when an endpoint is set; its spans reach the endpoint.
      yield* eventually(Effect.sync(() => traces.names), (names) => names.includes("ObjectStore.put"))
    }), { timeout: 300_000 })

  it.scopedLive("`dist/main/ingest.js` and `dist/main/worker.js` on S3, Kafka and PostgreSQL load an upload once", () =>
    Effect.gen(function*() {
      const { env } = yield* runningStandIns
      const port = yield* Effect.promise(freePort)
      const base = `http://127.0.0.1:${port}`
      const ingest = yield* started(() => startCompiled("main/ingest.js", { ...env, PORT: String(port) }))
      yield* Effect.promise(() => healthy(ingest, base))
      yield* started(() => startCompiled("main/worker.js", { ...env, METRICS_PORT: "0" }))

      const accepted = yield* upload(base, "compiled-services")
      expect([accepted.status, accepted.json.readings]).toEqual([202, READINGS])
      yield* loadedOnce(base, "compiled-services")
    }).pipe(Effect.provide(standIns({ "telemetry.raw": 1, "telemetry.dlq": 1 }))), { timeout: 300_000 })
})
