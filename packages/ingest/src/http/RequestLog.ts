import { HttpMiddleware, HttpServerError, HttpServerRequest } from "@effect/platform"
import { Effect, Exit, LogLevel } from "effect"
import { randomUUID } from "node:crypto"

// Probes come every few seconds: at info level they would drown the requests that matter.
const probes = new Set(["/api/v1/health", "/api/v1/health/live", "/api/v1/health/ready", "/metrics"])

const levelOf = (path: string, status: number) =>
  status >= 500 ? LogLevel.Error : probes.has(path) ? LogLevel.Debug : LogLevel.Info

/**
 * One line per request — method, path (no query string, which may hold secrets), status, request id — at error
 * for a 5xx, debug for a probe, else info. Headers are never logged: they carry bearer tokens. Everything the
 * request logs is annotated with its request id (the client's `x-request-id`, else a new one).
 */
export const middleware = HttpMiddleware.make((app) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const path = request.url.split("?")[0]!
    return Effect.exit(app).pipe(
      Effect.tap((exit) => {
        const status = Exit.isSuccess(exit)
          ? exit.value.status
          : HttpServerError.causeResponseStripped(exit.cause)[0].status
        return Effect.logWithLevel(levelOf(path, status), "http request").pipe(
          Effect.annotateLogs({ method: request.method, path, status })
        )
      }),
      Effect.flatten,
      Effect.annotateLogs("request_id", request.headers["x-request-id"] ?? randomUUID())
    )
  })
)
