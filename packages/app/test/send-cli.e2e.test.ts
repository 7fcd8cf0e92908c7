import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it, layer } from "@effect/vitest"
import { ObjectStore } from "@telemetry/domain"
import { haPayload } from "@telemetry/domain/testing"
import { deviceToken } from "@telemetry/ingest/testing/auth"
import { Chunk, Effect, Stream } from "effect"
import { writeFileSync } from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { join } from "node:path"
import { gunzipSync, gzipSync } from "node:zlib"
import { runCli } from "./support/cli.js"
import { embeddedStack, eventually, freePort, tempDir } from "./support/stack.js"

// Issue 14 §5: `pnpm send` as an operator runs it, against a running server: what it reports is what was stored.

const port = await freePort()
const base = `http://127.0.0.1:${port}`
// Each run starts a Node process that compiles TypeScript: slow on a busy machine.
const CLI_TIMEOUT = 240_000
const env = { TELEMETRY_URL: base, TELEMETRY_TOKEN: deviceToken("acme", "send-device") }

const send = (args: ReadonlyArray<string>, environment: Record<string, string> = env, input?: Uint8Array) =>
  Effect.promise(() => runCli("send", args, environment, input))

/** A directory holding `files` (name → content), removed with the scope. */
const directoryOf = (name: string, files: Record<string, string | Buffer>) =>
  Effect.map(tempDir(name), (dir) => {
    for (const [file, content] of Object.entries(files)) writeFileSync(join(dir, file), content)
    return dir
  })

const readingsOf = (prefix: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ n: number }>`SELECT count(*)::int AS n FROM telemetry_data t JOIN equipments e ON e.id = t.equipment_id
        WHERE e.uuid LIKE ${`${prefix}%`}`,
      (rows) => rows[0]!.n
    ))

const storedObjects = Effect.flatMap(ObjectStore, (storage) =>
  Effect.map(Stream.runCollect(storage.list("telemetry/")), Chunk.size))

describe("pnpm send", () => {
  layer(embeddedStack(port), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.scoped("a directory of payloads is stored reading for reading; sent again, it is all replayed and stores nothing", () =>
      Effect.gen(function*() {
        const files = {
          "a.json": JSON.stringify(haPayload("send-dir-a")),
          "b.json.gz": gzipSync(JSON.stringify(haPayload("send-dir-b"))),
          "c.json": JSON.stringify(haPayload("send-dir-c")),
          "notes.txt": "not a payload"
        }
        const dir = yield* directoryOf("send", files)
        const first = yield* send(["--json", dir])
        expect([first.code, first.stderr]).toEqual([0, expect.not.stringContaining("pnpm send:")])
        const summary = JSON.parse(first.stdout)
        expect(summary).toMatchObject({ files: 3, accepted: 3, replayed: 0, refused: 0, failed: 0, readings: 9 })
        expect(summary.bytes).toBe(["a.json", "b.json.gz", "c.json"].reduce((n, f) => n + Buffer.byteLength(files[f as keyof typeof files]), 0))
        expect(summary.results.map((r: { file: string }) => r.file)).toEqual(["a.json", "b.json.gz", "c.json"].map((f) => join(dir, f)))

        // The worker loads the three claims: the rows are the readings the summary counted.
        yield* eventually(readingsOf("send-dir-"), (n) => n === summary.readings)
        const objects = yield* storedObjects

        const second = yield* send(["--json", dir])
        expect(second.code).toBe(0)
        const again = JSON.parse(second.stdout)
        expect(again).toMatchObject({ files: 3, accepted: 0, replayed: 3, refused: 0, failed: 0, readings: 0 })
        // The first claims, answered again.
        const claims = (s: { results: ReadonlyArray<{ claimId: string }> }) => s.results.map((r) => r.claimId)
        expect(claims(again)).toEqual(claims(summary))
        expect(yield* storedObjects).toBe(objects)
        expect(yield* readingsOf("send-dir-")).toBe(9)
      }), { timeout: CLI_TIMEOUT })

    it.scoped("a payload piped to `pnpm send -` is stored; piped again, it is replayed", () =>
      Effect.gen(function*() {
        const body = gzipSync(JSON.stringify(haPayload("send-stdin")))
        const first = yield* send(["--json", "-"], env, body)
        expect(first.code).toBe(0)
        expect(JSON.parse(first.stdout)).toMatchObject({
          files: 1, accepted: 1, replayed: 0, refused: 0, bytes: body.length, readings: 3, results: [{ file: "-" }]
        })
        yield* eventually(readingsOf("send-stdin"), (n) => n === 3)
        const again = yield* send(["--json", "-"], env, body)
        expect(JSON.parse(again.stdout)).toMatchObject({ files: 1, accepted: 0, replayed: 1, readings: 0 })
        expect(yield* readingsOf("send-stdin")).toBe(3)
      }), { timeout: CLI_TIMEOUT })

    it.scoped("a bad file is refused and named, the others accepted, and the run exits 1", () =>
      Effect.gen(function*() {
        const dir = yield* directoryOf("send-bad", {
          "good.json": JSON.stringify(haPayload("send-good")),
          "bad.json": JSON.stringify([{ equip_uuid: "send-bad", sensor: [{ valor: 1 }] }])
        })
        const run = yield* send([dir])
        expect(run.code).toBe(1)
        expect(run.stdout).toContain("1 accepted, 0 replayed, 1 refused")
        expect(run.stdout).toMatch(new RegExp(`^refused  ${join(dir, "bad.json")}  400 invalid_payload: .*sensor_uuid`, "m"))
        expect(run.stderr).toContain("pnpm send: 1 of 2 file(s) were not accepted")
        yield* eventually(readingsOf("send-good"), (n) => n === 3)
        expect(yield* readingsOf("send-bad")).toBe(0)
      }), { timeout: CLI_TIMEOUT })

    it.scoped("without a token it sends nothing and says how to get one; with a wrong one every file is refused 401", () =>
      Effect.gen(function*() {
        const dir = yield* directoryOf("send-anonymous", { "a.json": JSON.stringify(haPayload("send-anonymous")) })
        const run = yield* send(["--json", dir], { TELEMETRY_URL: base })
        expect([run.code, run.stdout]).toEqual([1, ""])
        expect(run.stderr).toContain("pnpm send: no token: pass --token or set TELEMETRY_TOKEN")
        // Set but empty, as an env file may leave it: none either.
        const empty = yield* send(["--json", dir], { TELEMETRY_URL: base, TELEMETRY_TOKEN: "" })
        expect([empty.code, empty.stdout]).toEqual([1, ""])
        expect(empty.stderr).toContain("pnpm send: no token: pass --token or set TELEMETRY_TOKEN")
        const forged = yield* send(["--json", "--token", "not-a-token", dir], { TELEMETRY_URL: base })
        expect(forged.code).toBe(1)
        expect(JSON.parse(forged.stdout).results).toEqual([expect.objectContaining({ outcome: "refused", status: 401, error: "unauthorized" })])
        expect(yield* readingsOf("send-anonymous")).toBe(0)
      }), { timeout: CLI_TIMEOUT })
  })

  interface Received {
    readonly headers: Record<string, unknown>
    readonly body: Buffer
  }

  /** A server that answers every request with `answers` in turn (the last one for ever), keeping what it got. */
  const scripted = (answers: ReadonlyArray<{ readonly status: number; readonly retryAfter?: string }>) =>
    Effect.acquireRelease(
      Effect.async<{ readonly url: string; readonly received: Array<Received>; readonly close: () => void }>((resume) => {
        const received: Array<Received> = []
        const server = createServer((request, response) => {
          const chunks: Array<Buffer> = []
          request.on("data", (chunk: Buffer) => chunks.push(chunk))
          request.on("end", () => {
            received.push({ headers: request.headers, body: Buffer.concat(chunks) })
            const answer = answers[Math.min(received.length, answers.length) - 1]!
            response.writeHead(answer.status, {
              "content-type": "application/json",
              ...(answer.retryAfter === undefined ? {} : { "retry-after": answer.retryAfter })
            })
            response.end(JSON.stringify(
              answer.status === 202
                ? { status: "accepted", claim_id: "claim-1", readings: 3 }
                : { error: answer.status === 429 ? "rate_limited" : "storage_unavailable", message: "retry later" }
            ))
          })
        })
        server.listen(0, "127.0.0.1", () =>
          resume(Effect.succeed({
            url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
            received,
            close: () => server.close()
          })))
      }),
      (s) => Effect.sync(s.close)
    )

  it.scopedLive("429 and 503 are retried after their Retry-After with the same Idempotency-Key; past --attempts the file is refused", () =>
    Effect.gen(function*() {
      const payload = JSON.stringify(haPayload("send-retried"))
      const dir = yield* directoryOf("send-retry", { "a.json": payload })

      const patient = yield* scripted([{ status: 429, retryAfter: "1" }, { status: 503, retryAfter: "1" }, { status: 202 }])
      const accepted = yield* send(["--json", dir], { TELEMETRY_URL: patient.url, TELEMETRY_TOKEN: "t" })
      expect(accepted.code).toBe(0)
      expect(JSON.parse(accepted.stdout).results).toEqual([expect.objectContaining({ outcome: "accepted", status: 202, attempts: 3, readings: 3 })])
      expect(patient.received).toHaveLength(3)
      const keys = new Set(patient.received.map((r) => r.headers["idempotency-key"]))
      expect(keys.size).toBe(1)
      for (const { body, headers } of patient.received) {
        expect(headers).toMatchObject({ "content-encoding": "gzip", "content-type": "application/json", authorization: "Bearer t" })
        expect(gunzipSync(body).toString()).toBe(payload)
      }

      const overloaded = yield* scripted([{ status: 503, retryAfter: "0" }])
      const refused = yield* send(["--json", "--attempts", "2", dir], { TELEMETRY_URL: overloaded.url, TELEMETRY_TOKEN: "t" })
      expect(refused.code).toBe(1)
      expect(JSON.parse(refused.stdout).results).toEqual([
        expect.objectContaining({ outcome: "refused", status: 503, error: "storage_unavailable", attempts: 2 })
      ])
      expect(overloaded.received).toHaveLength(2)
    }), { timeout: CLI_TIMEOUT })

  it.scopedLive("a refusal that comes before the body is read, the connection then closed, ends the run: each file refused with its answer", () =>
    Effect.gen(function*() {
      // As a proxy refusing an expired token: 401 as soon as the headers come, body unread, connection closed. With
      // node:http's client the run now and then hung for ever (2 runs in 40 without a token against our server): it
      // waited for the body's end to be flushed on a socket already closed. With the body streamed after the headers,
      // undici saw "write EPIPE" instead of the 401 in 15 tries of 40 (CI once: all 5 tries of a file). Both
      // timing-dependent, so this test does not catch them every time; it holds what such a run must end with.
      const names = Array.from({ length: 8 }, (_, i) => [`${i}.json`, JSON.stringify(haPayload(`send-early-${i}`))] as const)
      const dir = yield* directoryOf("send-early", Object.fromEntries(names))
      const url = yield* Effect.acquireRelease(
        Effect.async<{ readonly url: string; readonly close: () => void }>((resume) => {
          const server = createServer((_, response) => {
            response.writeHead(401, { "content-type": "application/json", connection: "close" })
            response.end(JSON.stringify({ error: "unauthorized", message: "the token has expired" }))
          })
          server.listen(0, "127.0.0.1", () =>
            resume(Effect.succeed({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() })))
        }),
        (s) => Effect.sync(s.close)
      ).pipe(Effect.map((s) => s.url))
      const run = yield* send(["--json", dir], { TELEMETRY_URL: url, TELEMETRY_TOKEN: "expired" })
      expect(run.code).toBe(1)
      const results = JSON.parse(run.stdout).results as ReadonlyArray<unknown>
      expect(results).toHaveLength(names.length)
      for (const result of results) expect(result).toMatchObject({ outcome: "refused", status: 401, error: "unauthorized" })
    }), { timeout: 60_000 })
})
