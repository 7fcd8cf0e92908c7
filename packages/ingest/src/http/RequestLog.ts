import { HttpApp, HttpMiddleware, HttpServerError, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Context, Effect, Exit, LogLevel } from "effect"
import { randomUUID } from "node:crypto"

/** A client's request id, kept if it is a plausible one: printable ASCII, bounded (it goes on every line logged). */
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/

// Probes come every few seconds: at info level they would drown the requests that matter — and so would their
// 503s at error level through an outage, which the probes are there to report (the cause is logged where it
// happens). A 500 is a fault of ours, whatever the path.
const probes = new Set(["/api/v1/health", "/api/v1/health/live", "/api/v1/health/ready", "/api/v1/health/detailed", "/metrics"])

const levelOf = (path: string, status: number) =>
  status === 500 ? LogLevel.Error : probes.has(path) ? LogLevel.Debug : status >= 500 ? LogLevel.Error : LogLevel.Info

/** The request being served, as its handler sees it. */
export interface ServedRequest {
  /**
   * The client's `x-request-id` (up to 128 printable ASCII characters), else one made for it: the id every line of
   * the request is annotated with.
   */
  readonly id: string
  /** Adds facts the handler learns (tenant, device, claim) to the request's own line. */
  readonly annotate: (annotations: Readonly<Record<string, string>>) => Effect.Effect<void>
}

/**
 * The request being served. The middleware below provides it to every request; the default only stands in where
 * an effect runs outside a request, where there is no line to annotate.
 */
export class CurrentRequest extends Context.Reference<CurrentRequest>()("@telemetry/ingest/CurrentRequest", {
  defaultValue: (): ServedRequest => ({ id: "none", annotate: () => Effect.void })
}) {}

/**
 * One line per request — method, path (no query string, which may hold secrets), status, request id, and what the
 * handler added (see `CurrentRequest`) — at error for a 5xx, debug for a probe, else info. Headers are never
 * logged: they carry bearer tokens. Everything the request logs is annotated with its request id, and every answer
 * carries it in `x-request-id`, a refusal before any handler ran (401, 403, 405) too.
 */
export const middleware = HttpMiddleware.make((app) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const path = request.url.split("?")[0]!
    const given = request.headers["x-request-id"]
    const id = given !== undefined && REQUEST_ID.test(given) ? given : randomUUID()
    const added: Record<string, string> = {}
    const served: ServedRequest = { id, annotate: (annotations) => Effect.sync(() => Object.assign(added, annotations)) }
    const withId = HttpApp.appendPreResponseHandler((_, response) =>
      Effect.succeed(HttpServerResponse.setHeader(response, "x-request-id", id))
    )
    return Effect.exit(Effect.zipRight(withId, Effect.provideService(app, CurrentRequest, served))).pipe(
      Effect.tap((exit) => {
        const status = Exit.isSuccess(exit)
          ? exit.value.status
          : HttpServerError.causeResponseStripped(exit.cause)[0].status
        return Effect.logWithLevel(levelOf(path, status), "http request").pipe(
          Effect.annotateLogs({ ...added, method: request.method, path, status })
        )
      }),
      Effect.flatten,
      Effect.annotateLogs("request_id", id)
    )
  })
)
