import { describe, expect, it } from "@effect/vitest"
import { bearer, deviceToken, TEST_SECRET } from "@telemetry/ingest/testing/auth"
import { send } from "@telemetry/ingest/testing/client"
import { Effect } from "effect"
import { healthy, type PipelineProcess, started, startPipeline, until } from "./support/process.js"
import { deployment } from "./support/stack.js"

// Issue 14 §3: logs an operator can ship — one line per event in the chosen format, a line per request with its
// request id and status, probes only at debug, and no secret on any line.

const PASSWORD = "correct-horse-battery-staple-42"

/** Runs `pnpm start` with `format`, sends a login, a bad payload and a health probe; what it printed, by line. */
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
    yield* Effect.promise(() => send(url("/health")))
    expect([login.status, bad.status]).toEqual([401, 400])
    yield* Effect.promise(() => until(pipeline, async () => pipeline.output().includes("bad-payload-1"), 10_000, "the request line"))
    const lines = pipeline.output().split("\n").filter((line) => line !== "")
    for (const line of lines) {
      for (const secret of [PASSWORD, token, TEST_SECRET]) expect(line).not.toContain(secret)
    }
    return lines
  })

describe("the pipeline's logs", () => {
  it.scopedLive("LOG_FORMAT=json: every line a JSON object; one line per request with its id and status; probes below info", () =>
    Effect.gen(function*() {
      const lines = yield* exercised("json")
      const entries = lines.map((line) => JSON.parse(line))
      for (const entry of entries) {
        expect(entry).toEqual(expect.objectContaining({ logLevel: expect.any(String), message: expect.anything(), timestamp: expect.any(String) }))
      }
      const requests = entries.filter((e) => e.message === "http request")
      expect(requests.filter((e) => e.annotations.request_id === "bad-payload-1")).toEqual([expect.objectContaining({
        logLevel: "INFO",
        annotations: expect.objectContaining({ method: "POST", path: "/api/v1/telemetry/bulk", status: 400 })
      })])
      expect(requests.some((e) => e.annotations.path === "/api/v1/auth/device/login" && e.annotations.status === 401)).toBe(true)
      expect(requests.filter((e) => e.annotations.path === "/api/v1/health")).toEqual([])
    }), { timeout: 120_000 })

  it.scopedLive("LOG_FORMAT=logfmt: every line key=value pairs", () =>
    Effect.gen(function*() {
      const lines = yield* exercised("logfmt")
      for (const line of lines) expect(line).toMatch(/^(\w[\w.]*=("(?:[^"\\]|\\.)*"|\S*)( |$))+$/)
      expect(lines.some((line) => line.includes("request_id=bad-payload-1") && line.includes("status=400"))).toBe(true)
    }), { timeout: 120_000 })
})
