import { HttpMiddleware, HttpServerError, HttpServerRequest } from "@effect/platform"
import { Clock, Effect, Exit, Metric, MetricLabel, Option } from "effect"
import * as Metrics from "../metrics.js"

// The bulk route and its alias (contract §1): refusals of either are refused payloads.
const bulkRoutes = new Set(["/api/v1/telemetry/bulk", "/api/v1/telemetria/bulk"])
const CLIENT_GONE = 499

/**
 * The path template of the route the router matched for this request, "other" for none: a bounded label, never
 * a uuid. The router records it on the request's span (`http.route`), which the server opens around this
 * middleware for every request, whether a tracer exports it or not.
 */
const matchedRoute = Effect.map(
  Effect.option(Effect.currentSpan),
  (span) => Option.getOrUndefined(Option.flatMapNullable(span, (s) => s.attributes.get("http.route") as string | undefined)) ?? "other"
)

/**
 * Counts every request by route template, method and status, and times it by route; a refused bulk upload
 * (status >= 400) is also counted by status, as whatever refused it (auth, limits, parsing, storage) answers here
 * — but for the client that hung up (499).
 */
export const middleware = HttpMiddleware.make((app) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    Effect.gen(function*() {
      const start = yield* Clock.currentTimeMillis
      const exit = yield* Effect.exit(app)
      const route = yield* matchedRoute
      const status = Exit.isSuccess(exit)
        ? exit.value.status
        : HttpServerError.causeResponseStripped(exit.cause)[0].status
      const seconds = ((yield* Clock.currentTimeMillis) - start) / 1000
      yield* Metric.increment(Metric.taggedWithLabels(Metrics.httpRequests, [
        MetricLabel.make("route", route),
        MetricLabel.make("method", request.method),
        MetricLabel.make("status", String(status))
      ]))
      yield* Metric.update(Metric.tagged(Metrics.httpRequestDuration, "route", route), seconds)
      // A client that hung up (499) may have sent its body in full, which is then accepted all the same: Ingest
      // counts its refusal once the outcome is known.
      if (bulkRoutes.has(route) && request.method === "POST" && status >= 400 && status !== CLIENT_GONE) {
        yield* Metric.increment(Metric.tagged(Metrics.payloadsRefused, "status", String(status)))
      }
      return yield* exit
    }))
)
