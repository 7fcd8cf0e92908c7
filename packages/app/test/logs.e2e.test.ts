import { describe, expect, it } from "@effect/vitest"
import { haPayload } from "@telemetry/domain/testing"
import { bearer, deviceToken, TEST_SECRET } from "@telemetry/ingest/testing/auth"
import { send } from "@telemetry/ingest/testing/client"
import { Effect } from "effect"
import { healthy, type PipelineProcess, started, startPipeline, until } from "./support/process.js"
import { deployment } from "./support/stack.js"

// Issue 14 §3: logs an operator can ship — one line per event in the chosen format, a line per request with its
// request id and status, probes only at debug, the lines of an ingest (request and load) joined by request id,
// claim id, tenant and device, and no secret on any line.

const PASSWORD = "correct-horse-battery-staple-42"

/**
 * Runs `pnpm start` with `format`, sends a login, a bad payload, a good one (loaded by its worker) and a health
 * probe; what it printed, by line, and the good payload's claim id.
 */
const exercised = (format: string) =>
  Effect.gen(function*() {
    const deployed = yield* deployment(`logs-${format}`)
    const pipeline: PipelineProcess = yield* started(() => startPipeline({ ...deployed.env, LOG_FORMAT: format }))
    yield* Effect.promise(() => healthy(pipeline, deployed.base))
    const token = deviceToken("acme", "logs-device")
    const url = (path: string) => `${deployed.base}/api/v1${path}`
    const login = yield* Effect.promise(() => send(url("/auth/device/login"), { body: { username: "nobody", password: PASSWORD } }))
    const bad = yield* Effect.promise(() =>
      send(url("/telemetry/bulk"), { body: { not: "a payload" }, headers: { ...bearer(token), "x-request-id": "bad-payload-1" } })
    )
    const good = yield* Effect.promise(() =>
      send(url("/telemetry/bulk"), { body: haPayload("logs-1"), headers: { ...bearer(token), "x-request-id": "good-payload-1" } })
    )
    // An id no request id is like (8 KB) is not logged: one is made for the request instead.
    const oversized = "x".repeat(8192)
    const odd = yield* Effect.promise(() =>
      send(url("/telemetry/bulk"), { body: haPayload("logs-2"), headers: { ...bearer(token), "x-request-id": oversized } })
    )
    expect(odd.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/)
    // Refused before any handler ran, the answer carries its id too.
    const anonymous = yield* Effect.promise(() =>
      send(url("/telemetry/bulk"), { body: haPayload("logs-3"), headers: { "x-request-id": "no-token-1" } })
    )
    expect([anonymous.status, anonymous.headers["x-request-id"]]).toEqual([401, "no-token-1"])
    yield* Effect.promise(() => send(url("/health")))
    expect([login.status, bad.status, good.status, odd.status]).toEqual([401, 400, 202, 202])
    const claimId: string = good.json.claim_id
    yield* Effect.promise(() =>
      until(
        pipeline,
        // A request's line comes through a pipe, its answer through a socket: either may arrive first. Wait for each
        // line asserted on below, not just the load's.
        async () =>
          ["bad-payload-1", "good-payload-1", "no-token-1", "/auth/device/login", "loaded 3 readings"].every((s) =>
            pipeline.output().includes(s)
          ),
        30_000,
        "the request and load lines"
      )
    )
    const lines = pipeline.output().split("\n").filter((line) => line !== "")
    for (const line of lines) {
      for (const secret of [PASSWORD, token, TEST_SECRET, oversized]) expect(line).not.toContain(secret)
    }
    return { lines, claimId }
  })

describe("the pipeline's logs", () => {
  it.scopedLive("LOG_FORMAT=json: every line a JSON object; one line per request with its id and status; probes below info", () =>
    Effect.gen(function*() {
      const { claimId, lines } = yield* exercised("json")
      const entries = lines.map((line) => JSON.parse(line))
      for (const entry of entries) {
        expect(entry).toEqual(expect.objectContaining({ logLevel: expect.any(String), message: expect.anything(), timestamp: expect.any(String) }))
      }
      const requests = entries.filter((e) => e.message === "http request")
      expect(requests.filter((e) => e.annotations.request_id === "bad-payload-1")).toEqual([expect.objectContaining({
        logLevel: "INFO",
        annotations: expect.objectContaining({
          method: "POST",
          path: "/api/v1/telemetry/bulk",
          status: 400,
          refusal: "body must be a JSON array of equipment items"
        })
      })])
      expect(requests.some((e) => e.annotations.path === "/api/v1/auth/device/login" && e.annotations.status === 401)).toBe(true)
      // A refused token says why on its line (the client's answer says it too).
      expect(requests.filter((e) => e.annotations.request_id === "no-token-1")).toEqual([expect.objectContaining({
        annotations: expect.objectContaining({ status: 401, refusal: "missing header `Authorization: Bearer <token>`" })
      })])
      expect(requests.filter((e) => e.annotations.path === "/api/v1/health")).toEqual([])

      // The ingest's request line and every line of its claim's load carry one request id, its claim, tenant and device.
      const ingest = { request_id: "good-payload-1", claim_id: claimId, tenant: "acme", device: "logs-device" }
      expect(requests.filter((e) => e.annotations.request_id === "good-payload-1")).toEqual([expect.objectContaining({
        annotations: expect.objectContaining({ ...ingest, status: 202 })
      })])
      const load = entries.filter((e) => e.annotations.claim_id === claimId && e.message !== "http request")
      expect(load.map((e) => e.message)).toContainEqual(expect.stringContaining("loaded 3 readings"))
      for (const entry of load) expect(entry.annotations).toEqual(expect.objectContaining(ingest))
    }), { timeout: 180_000 })

  it.scopedLive("LOG_FORMAT=logfmt: every line key=value pairs", () =>
    Effect.gen(function*() {
      const { lines } = yield* exercised("logfmt")
      for (const line of lines) expect(line).toMatch(/^(\w[\w.]*=("(?:[^"\\]|\\.)*"|\S*)( |$))+$/)
      expect(lines.some((line) => line.includes("request_id=bad-payload-1") && line.includes("status=400"))).toBe(true)
    }), { timeout: 180_000 })
})
