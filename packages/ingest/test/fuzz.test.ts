import { expect, layer } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { ObjectStore } from "@telemetry/domain"
import { inMemoryStore, nextClaim } from "@telemetry/domain/testing"
import { Chunk, Effect, Option, Stream } from "effect"
import { bearer, deviceToken } from "./support/auth.js"
import { badBodies } from "./support/fuzz.js"
import { serverOn } from "./support/server.js"
import { freePort } from "./support/stack.js"

const port = await freePort()
const base = `http://127.0.0.1:${port}`
const SEED = 20261129
const LIMITS = { maxStringBytes: 64 * 1024, maxDepth: 16, maxItems: 50 }

layer(serverOn(inMemoryStore(1_000), port, { MAX_ITEMS: String(LIMITS.maxItems), RATE_LIMIT_PER_DEVICE: "0" }), {
  timeout: 300_000,
  excludeTestServices: true
})("fuzz", (it) => {
  it.effect(`1 200 generated bad bodies (seed ${SEED}) get only 4xx, the server stays up, nothing is stored`, () =>
    Effect.gen(function*() {
      const bodies = badBodies(SEED, 1_200, LIMITS)
      const headers = bearer(deviceToken("fuzz", "fuzzer"))
      const answers = yield* Effect.forEach(bodies, (bad) =>
        Effect.promise(async () => {
          const response = await fetch(`${base}/api/v1/telemetry/bulk`, {
            method: "POST",
            headers: { ...headers, ...bad.headers },
            body: bad.body as unknown as BodyInit
          })
          const text = await response.text()
          return { kind: bad.kind, status: response.status, text }
        }), { concurrency: 4 })

      const unexpected = answers.filter((a) => a.status < 400 || a.status >= 500)
      expect(unexpected.slice(0, 5)).toEqual([])
      // Every refusal is the contract's JSON error body.
      for (const answer of answers) expect(JSON.parse(answer.text)).toMatchObject({ error: expect.any(String), message: expect.any(String) })
      const byKind = new Map<string, Set<number>>()
      for (const a of answers) byKind.set(a.kind, (byKind.get(a.kind) ?? new Set()).add(a.status))
      expect(byKind.get("gzip bomb")).toEqual(new Set([413]))
      expect(byKind.get("too many items")).toEqual(new Set([413]))
      expect(byKind.get("wrong headers")).toEqual(new Set([415]))
      for (const kind of ["wrong type", "deep nesting", "huge string", "invalid UTF-8", "NaN/Infinity", "date out of range", "truncated gzip"]) {
        expect([kind, byKind.get(kind)]).toEqual([kind, new Set([400])])
      }

      expect((yield* Effect.promise(() => fetch(`${base}/api/v1/health`))).status).toBe(200)
      const storage = yield* ObjectStore
      expect(Chunk.size(yield* Stream.runCollect(storage.list("")))).toBe(0)
      expect(Option.isNone(yield* nextClaim)).toBe(true)
      const sql = yield* SqlClient.SqlClient
      expect(yield* sql`SELECT count(*)::int AS n FROM ingest_requests`).toEqual([{ n: 0 }])
      expect(yield* sql`SELECT count(*)::int AS n FROM telemetry_data`).toEqual([{ n: 0 }])
    }))
})
