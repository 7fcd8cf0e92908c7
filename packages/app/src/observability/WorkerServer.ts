import { HttpMiddleware, HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { ClaimQueue, portSetting } from "@telemetry/domain"
import * as Health from "@telemetry/infra/Health"
import * as Detailed from "@telemetry/ingest/health/Detailed"
import { DetailedHealth, Unhealthy } from "@telemetry/ingest/http/HealthApi"
import { metricsResponse } from "@telemetry/ingest/http/MetricsRoute"
import { Clock, Effect, Layer } from "effect"
import { createServer } from "node:http"

const service = "telemetry-worker"

/** `METRICS_PORT`: where the worker process serves /metrics and its health; 0 takes any free port. */
const MetricsPort = portSetting("METRICS_PORT", 9464)

/** The dependencies as ingest's readiness names them. */
const named = { storage: "storage", queue: "the queue", database: "the database" } as const

const now = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis).toISOString())

/** Alive: the process answers. */
const alive = Effect.map(now, (timestamp) => HttpServerResponse.unsafeJson({ status: "healthy", service, timestamp }))

/**
 * Ready: storage, the queue and the database answer — the worker can load claims. Otherwise 503, naming each
 * dependency that is down and why, with every check's latency.
 */
const ready = Effect.gen(function*() {
  const queue = yield* ClaimQueue
  const storage = yield* Health.storageReachable
  const database = yield* Health.databaseReachable
  const timeout = yield* Health.HealthCheckTimeout
  return Effect.gen(function*() {
    const checks = yield* Effect.all({
      storage: Health.timed(storage, timeout),
      queue: Health.timed(queue.check, timeout),
      database: Health.timed(database, timeout)
    }, { concurrency: "unbounded" })
    const reasons = Object.entries(checks).flatMap(([name, check]) =>
      check.status === "down" ? [`${named[name as keyof typeof checks]} is down: ${check.error}`] : []
    )
    const timestamp = yield* now
    return reasons.length === 0
      ? HttpServerResponse.unsafeJson({ status: "ready", service, timestamp, checks })
      : HttpServerResponse.unsafeJson({ status: "not_ready", service, timestamp, reasons, checks }, { status: 503 })
  })
})

/**
 * The detailed check as ingest answers it, with this process's worker (`failed_deliveries`, `restarts`): `degraded`
 * when a claim keeps failing, which readiness does not tell while the dependencies answer; 503 when one is down.
 */
const detailed = Effect.map(Detailed.make, ({ checks }) =>
  Effect.gen(function*() {
    const { checks: current, status } = yield* checks
    const timestamp = new Date(yield* Clock.currentTimeMillis)
    return status === "unhealthy"
      ? yield* HttpServerResponse.schemaJson(Unhealthy)(new Unhealthy({ status, service, timestamp, checks: current }), { status: 503 })
      : yield* HttpServerResponse.schemaJson(DetailedHealth)(new DetailedHealth({ status, service, timestamp, checks: current }))
  }))

/**
 * The worker process's own HTTP server on `METRICS_PORT` (default 9464), for Prometheus and the orchestrator:
 * GET /metrics (as ingest's, behind `METRICS_TOKEN` when set), GET /api/v1/health (alive), GET
 * /api/v1/health/ready and GET /api/v1/health/detailed. Scrapes and probes are not traced: they would be most of
 * the spans.
 */
export const layer = Layer.unwrapEffect(Effect.gen(function*() {
  const port = yield* MetricsPort
  const router = HttpRouter.empty.pipe(
    HttpRouter.get("/metrics", metricsResponse),
    HttpRouter.get("/api/v1/health", alive),
    HttpRouter.get("/api/v1/health/ready", yield* ready),
    HttpRouter.get("/api/v1/health/detailed", yield* detailed)
  )
  return HttpServer.serve(router).pipe(
    HttpServer.withLogAddress,
    HttpMiddleware.withTracerDisabledWhen(() => true),
    Layer.provide(NodeHttpServer.layer(createServer, { port }))
  )
}))
