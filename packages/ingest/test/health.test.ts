import { describe, expect, it } from "@effect/vitest"
import * as KafkaMock from "@telemetry/testbed/KafkaMock"
import * as PostgresDatabase from "@telemetry/testbed/PostgresDatabase"
import * as S3Server from "@telemetry/testbed/S3Server"
import { Effect, Layer } from "effect"
import { authEnv } from "./support/auth.js"
import { healthy, startPipeline, until } from "./support/process.js"
import { freePort } from "./support/stack.js"

interface Check {
  readonly status: "up" | "down"
  readonly latency_ms: number
  readonly error?: string
}

const detailed = (base: string) =>
  Effect.promise(async () => {
    const response = await fetch(`${base}/api/v1/health/detailed`)
    const body = (await response.json()) as { status: string; checks: Record<"storage" | "queue" | "database", Check> }
    return { code: response.status, status: body.status, checks: body.checks }
  })

const up = { status: "up", latency_ms: expect.any(Number) }
const down = { status: "down", latency_ms: expect.any(Number), error: expect.any(String) }

const testBed = Layer.mergeAll(KafkaMock.layer({ topics: { "telemetry.raw": 3 } }), S3Server.layer, PostgresDatabase.layer)

describe("detailed health on Kafka, S3 and PostgreSQL", () => {
  it.scopedLive("reports each dependency with its latency, and 503 naming the one that is down", () =>
    Effect.gen(function*() {
      const kafka = yield* KafkaMock.KafkaMock
      const s3 = yield* S3Server.S3Server
      const database = yield* PostgresDatabase.PostgresDatabase
      const port = yield* Effect.promise(freePort)
      const base = `http://127.0.0.1:${port}`
      const ingest = yield* Effect.acquireRelease(
        Effect.sync(() =>
          startPipeline({ ...kafka.env, ...s3.env, ...database.env, ...authEnv, PORT: String(port), RUN_WORKER: "false" })
        ),
        (p) => Effect.sync(() => p.child.kill("SIGKILL"))
      )
      yield* Effect.promise(() => healthy(ingest, base))

      expect(yield* detailed(base)).toEqual({ code: 200, status: "healthy", checks: { storage: up, queue: up, database: up } })

      yield* Effect.promise(() => s3.down())
      expect(yield* detailed(base)).toEqual({ code: 503, status: "unhealthy", checks: { storage: down, queue: up, database: up } })
      yield* Effect.promise(() => s3.up())

      yield* kafka.brokerDown(1)
      expect(yield* detailed(base)).toEqual({ code: 503, status: "unhealthy", checks: { storage: up, queue: down, database: up } })
      yield* kafka.brokerUp(1)

      // Back to healthy once both are back (Kafka's clients reconnect on their own time).
      yield* Effect.promise(() =>
        until(ingest, async () => (await Effect.runPromise(detailed(base))).code === 200, 60_000, "healthy again")
      )
    }).pipe(Effect.provide(testBed)), { timeout: 180_000 })
})
