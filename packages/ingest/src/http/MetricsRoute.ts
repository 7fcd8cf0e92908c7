import { HttpApiBuilder, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Config, Effect, Option, Redacted } from "effect"
import { MetricsExposition } from "./MetricsExposition.js"

/** `METRICS_TOKEN`: when set, a scrape must carry `Authorization: Bearer <METRICS_TOKEN>`. */
const metricsToken = Config.option(Config.redacted("METRICS_TOKEN"))

/**
 * GET /metrics: the process's metrics as Prometheus text, open unless `METRICS_TOKEN` is set (then 401 without
 * its bearer token). Needs no database: it reads counters in memory.
 */
export const metricsResponse = Effect.gen(function*() {
  const token = yield* Effect.orDie(metricsToken)
  if (Option.isSome(token)) {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (request.headers["authorization"] !== `Bearer ${Redacted.value(token.value)}`) {
      return HttpServerResponse.unsafeJson(
        { error: "unauthorized", message: "/metrics needs the METRICS_TOKEN bearer token" },
        { status: 401, headers: { "www-authenticate": "Bearer" } }
      )
    }
  }
  const text = yield* (yield* MetricsExposition).scrape
  return HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
})

export const METRICS_PATH = "/metrics"

/** The /metrics route beside the API's routes (outside the OpenAPI declaration: it is for Prometheus). */
export const layer = HttpApiBuilder.Router.use((router) =>
  Effect.flatMap(MetricsExposition, (exposition) =>
    router.get(METRICS_PATH, Effect.provideService(metricsResponse, MetricsExposition, exposition)))
)
