import { SqlClient } from "@effect/sql"
import { afterAll, expect, layer } from "@effect/vitest"
import { ObjectStore } from "@telemetry/domain"
import { databases, nextClaim, storeOn } from "@telemetry/infra/testing"
import { freePort } from "@telemetry/testbed/FreePort"
import { Chunk, Effect, FastCheck as fc, Layer, Logger, LogLevel, Option, Stream } from "effect"
import * as http from "node:http"
import { bearer, deviceToken } from "./support/auth.js"
import { type BadBody, badBody, describeBody, type FuzzLimits, type Kind, KINDS } from "./support/fuzz.js"
import { serverOn } from "./support/server.js"

const port = await freePort()
const SEED = Number(process.env["FUZZ_SEED"] ?? 20261129)
const RUNS = Number(process.env["FUZZ_RUNS"] ?? 10_000)
/**
 * Bodies sent at once, each by a device of its own (a device may hold only a few uploads at once): a property run
 * takes a batch, so that the server is kept busy while the client waits for answers.
 */
const BATCH = 8
// Small limits make small bad bodies: what is tested is that each limit holds, not its default value.
const LIMITS: FuzzLimits = { maxStringBytes: 4096, maxDepth: 16, maxItems: 5, maxBodyBytes: 1024 * 1024 }
/** Longer than any refusal takes: a body still unanswered then is reported with status 0. */
const ANSWER_TIMEOUT = 10_000

// On PostgreSQL, whose work on each refusal is done by its own process, not by this one's CPU as embedded.
const server = serverOn(storeOn(databases.find((d) => d.edition === "none")!, 1_000), port, {
  MAX_ITEMS: String(LIMITS.maxItems),
  MAX_JSON_DEPTH: String(LIMITS.maxDepth),
  MAX_JSON_STRING_BYTES: String(LIMITS.maxStringBytes),
  MAX_BODY_BYTES: String(LIMITS.maxBodyBytes),
  RATE_LIMIT_PER_DEVICE: "0"
}).pipe(
  // Neither a log line nor a trace span per request is under test here, and together they cost more than a refusal.
  Layer.provide(Layer.merge(Logger.minimumLogLevel(LogLevel.Warning), Layer.setTracerEnabled(false)))
)

/** Connections kept open from one body to the next. */
const agent = new http.Agent({ keepAlive: true, maxSockets: BATCH })
afterAll(() => agent.destroy())
const devices = Array.from({ length: BATCH }, (_, i) => bearer(deviceToken("fuzz", `fuzzer-${i}`)))

/** POSTs a bad body as the `device`-th device and reads the answer (status 0 and the error when there is none). */
const post = (bad: BadBody, device: number) =>
  Effect.async<{ readonly status: number; readonly text: string }>((resume) => {
    let done = false
    const settle = (status: number, text: string) => {
      if (!done) resume(Effect.succeed({ status, text }))
      done = true
    }
    const announced = bad.declaredLength !== undefined
    const request = http.request({
      host: "127.0.0.1",
      port,
      method: "POST",
      path: "/api/v1/telemetry/bulk",
      // A body that is never finished leaves its connection unusable: it gets one of its own.
      agent: announced ? false : agent,
      timeout: ANSWER_TIMEOUT,
      headers: { ...devices[device], ...bad.headers, "content-length": String(bad.declaredLength ?? bad.body.length) }
    }, (response) => {
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on("end", () => {
        settle(response.statusCode ?? 0, Buffer.concat(chunks).toString("utf8"))
        if (announced) request.destroy()
      })
    })
    request.on("timeout", () => request.destroy(new Error(`no answer within ${ANSWER_TIMEOUT} ms`)))
    request.on("error", (e) => settle(0, e.message))
    if (announced) request.write(bad.body)
    else request.end(bad.body)
    // A batch stops at its first wrong answer: the requests still out are abandoned.
    return Effect.sync(() => request.destroy())
  })

const seen = new Map<Kind, number>()

/** Whether `bad` is answered with its kind's status and the contract's error body, naming its field if it has one. */
const refused = (bad: BadBody, device: number) =>
  Effect.gen(function*() {
    seen.set(bad.kind, (seen.get(bad.kind) ?? 0) + 1)
    const { status, text } = yield* post(bad, device)
    const what = `${describeBody(bad)}\nanswered ${status}: ${text.slice(0, 500)}`
    expect(status, what).toBe(bad.status)
    let answer: unknown
    expect(() => (answer = JSON.parse(text)), what).not.toThrow()
    expect(answer, what).toMatchObject({ error: expect.any(String), message: expect.any(String) })
    const { path } = answer as { readonly path?: unknown }
    expect(path === undefined || typeof path === "string", what).toBe(true)
    if (bad.path !== undefined && "is" in bad.path) expect(path, what).toBe(bad.path.is)
    if (bad.path !== undefined && "within" in bad.path) {
      expect(typeof path === "string" && path.startsWith(bad.path.within), what).toBe(true)
    }
  })

layer(server, { timeout: 300_000, excludeTestServices: true })("fuzz", (it) => {
  it.effect.prop(
    `${RUNS} generated bad bodies (FUZZ_SEED=${SEED}, FUZZ_RUNS) each get the contract's 4xx for its kind`,
    [fc.array(badBody(LIMITS), { minLength: BATCH, maxLength: BATCH })],
    ([batch]) => Effect.forEach(batch, refused, { concurrency: "unbounded", discard: true }),
    { timeout: 600_000, fastCheck: { seed: SEED, numRuns: Math.ceil(RUNS / BATCH) } }
  )

  it.effect("afterwards the server is up and nothing of any bad body is stored or queued", () =>
    Effect.gen(function*() {
      console.log(`fuzz: bodies per kind: ${[...seen].map(([kind, n]) => `${kind} ${n}`).join(", ")}`)
      // With this many bodies every kind comes up (each is one body in 19); fewer are a quick local try.
      if (RUNS >= 1_000) expect(KINDS.filter((kind) => !seen.has(kind))).toEqual([])
      expect((yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/api/v1/health`))).status).toBe(200)
      const storage = yield* ObjectStore
      expect(Chunk.size(yield* Stream.runCollect(storage.list("")))).toBe(0)
      expect(Option.isNone(yield* nextClaim)).toBe(true)
      const sql = yield* SqlClient.SqlClient
      expect(yield* sql`SELECT count(*)::int AS n FROM ingest_requests`).toEqual([{ n: 0 }])
      expect(yield* sql`SELECT count(*)::int AS n FROM telemetry_data`).toEqual([{ n: 0 }])
    }))
})
