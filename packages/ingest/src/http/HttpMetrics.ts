import { HttpApi, HttpMiddleware, HttpServerError, HttpServerRequest } from "@effect/platform"
import { Clock, Effect, Exit, Metric, MetricLabel } from "effect"
import * as Metrics from "../metrics.js"
import { TelemetryApi } from "./Api.js"

// The bulk route and its alias (contract §1): refusals of either are refused payloads.
const bulkRoutes = new Set(["/api/v1/telemetry/bulk", "/api/v1/telemetria/bulk"])

type Template = { readonly method: string; readonly path: string; readonly segments: ReadonlyArray<string> }

const template = (method: string, path: string): Template => ({ method, path, segments: path.split("/") })

/**
 * The API's endpoints and the routes served beside them, those with more literal segments first, so that a
 * literal route wins over a parameter in the same place, as in the router.
 */
const templates: ReadonlyArray<Template> = (() => {
  const found = [template("GET", "/metrics"), template("GET", "/api/v1/openapi.json"), template("GET", "/api/v1/docs")]
  HttpApi.reflect(TelemetryApi, {
    onGroup: () => {},
    onEndpoint: ({ endpoint }) => found.push(template(endpoint.method, endpoint.path))
  })
  const literals = (t: Template) => t.segments.filter((s) => !s.startsWith(":")).length
  return found.sort((a, b) => literals(b) - literals(a))
})()

const matches = (t: Template, segments: ReadonlyArray<string>) =>
  t.segments.length === segments.length &&
  t.segments.every((s, i) => s === segments[i] || (s.startsWith(":") && segments[i] !== ""))

/** The path template of the route a request is for, "other" for none: a bounded label, never a uuid. */
export const routeOf = (method: string, path: string) => {
  const segments = path.split("/")
  const head = method === "HEAD" ? "GET" : method
  return templates.find((t) => t.method === head && matches(t, segments))?.path ?? "other"
}

/**
 * Counts every request by route template, method and status, and times it by route; a refused bulk upload
 * (status >= 400) is also counted by status, as whatever refused it (auth, limits, parsing, storage) answers here.
 */
export const middleware = HttpMiddleware.make((app) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    Effect.gen(function*() {
      const route = routeOf(request.method, request.url.split("?")[0]!)
      const start = yield* Clock.currentTimeMillis
      const exit = yield* Effect.exit(app)
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
      if (bulkRoutes.has(route) && request.method === "POST" && status >= 400) {
        yield* Metric.increment(Metric.tagged(Metrics.payloadsRefused, "status", String(status)))
      }
      return yield* exit
    }))
)
