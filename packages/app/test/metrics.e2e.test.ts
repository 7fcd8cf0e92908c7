import { describe, expect, layer } from "@effect/vitest"
import { haPayload } from "@telemetry/domain/testing"
import { bearer, deviceToken } from "@telemetry/ingest/testing/auth"
import { Effect } from "effect"
import { gzipSync } from "node:zlib"
import { countOf } from "./support/exposition.js"
import { embeddedStack, eventually, freePort } from "./support/stack.js"

const port = await freePort()
const base = `http://127.0.0.1:${port}`
const TOKEN = "scrape-secret"
const bulk = "/api/v1/telemetry/bulk"
const invalid = "{not json"

const post = (body: string | Buffer, headers: Record<string, string>) =>
  Effect.promise(() =>
    fetch(base + bulk, { method: "POST", headers, body: body as unknown as BodyInit }).then((r) => r.status)
  )

const asDevice = { "content-type": "application/json", ...bearer(deviceToken()) }

const scrape = (headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }) =>
  Effect.promise(async () => {
    const response = await fetch(`${base}/metrics`, { headers })
    return { status: response.status, text: await response.text() }
  })

const metricsOf = Effect.map(scrape(), ({ text }) => text)

describe("GET /metrics counts what the pipeline did", () => {
  layer(embeddedStack(port, { METRICS_TOKEN: TOKEN }), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("uploads accepted and refused, claims published and loaded, and requests by route", () =>
      Effect.gen(function*() {
        const first = JSON.stringify(haPayload("metrics-1"))
        const second = JSON.stringify(haPayload("metrics-2"))
        expect(yield* post(first, asDevice)).toBe(202)
        expect(yield* post(gzipSync(second), { ...asDevice, "content-encoding": "gzip" })).toBe(202)
        expect(yield* post(invalid, asDevice)).toBe(400)
        expect(yield* post(first, { "content-type": "application/json" })).toBe(401)
        expect(yield* post(first, { ...asDevice, "content-type": "text/plain" })).toBe(415)

        // The worker loads both claims after the 202s.
        yield* eventually(metricsOf, (t) => countOf(t, "telemetry_worker_claims_total", { outcome: "loaded" }) === 2)
        const text = yield* metricsOf
        expect(countOf(text, "telemetry_worker_readings_loaded_total")).toBe(6)
        expect(countOf(text, "telemetry_ingest_payloads_accepted_total")).toBe(2)
        expect(countOf(text, "telemetry_ingest_readings_accepted_total")).toBe(6)
        expect(countOf(text, "telemetry_claims_published_total")).toBe(2)
        expect(countOf(text, "telemetry_claims_publish_failures_total")).toBe(0)
        for (const status of ["400", "401", "415"]) {
          expect(countOf(text, "telemetry_ingest_payloads_refused_total", { status })).toBe(1)
        }
        expect(countOf(text, "telemetry_ingest_payloads_refused_total", { status: "202" })).toBe(0)
        expect(countOf(text, "telemetry_http_requests_total", { route: bulk, method: "POST", status: "202" })).toBe(2)
        // The parser drops a labelled histogram's _count (it comes before the buckets): read as written.
        expect(text).toContain(`telemetry_http_request_duration_seconds_count{route="${bulk}"} 5\n`)
        // Bytes of every body read, the refused JSON's too; the second body was gzipped.
        const read = Buffer.byteLength(first) + Buffer.byteLength(invalid)
        expect(countOf(text, "telemetry_ingest_received_bytes_total")).toBe(read + gzipSync(second).length)
        expect(countOf(text, "telemetry_ingest_decompressed_bytes_total")).toBe(read + Buffer.byteLength(second))
        expect(countOf(text, "telemetry_ingest_uploads_in_flight")).toBe(0)
      }))

    it.effect("a refusal on the bulk route's alias is a refused payload too", () =>
      Effect.gen(function*() {
        const refused = (t: string) => countOf(t, "telemetry_ingest_payloads_refused_total", { status: "415" })
        const before = refused(yield* metricsOf)
        const response = yield* Effect.promise(() =>
          fetch(`${base}/api/v1/telemetria/bulk`, { method: "POST", headers: { ...asDevice, "content-type": "text/plain" }, body: "x" })
        )
        expect(response.status).toBe(415)
        expect(refused(yield* metricsOf)).toBe(before + 1)
      }))

    it.effect("an unknown path is counted as route \"other\", never by its path", () =>
      Effect.gen(function*() {
        yield* Effect.promise(() => fetch(`${base}/api/v1/no-such/3f1c`))
        const text = yield* metricsOf
        expect(countOf(text, "telemetry_http_requests_total", { route: "other", method: "GET", status: "404" })).toBe(1)
        expect(text).not.toContain("3f1c")
      }))

    it.effect("a scrape without the METRICS_TOKEN is refused", () =>
      Effect.gen(function*() {
        expect((yield* scrape({})).status).toBe(401)
        expect((yield* scrape({ authorization: "Bearer wrong" })).status).toBe(401)
        expect((yield* scrape()).status).toBe(200)
      }))
  })
})
