import { HttpMiddleware, HttpRouter, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Config, Effect, Layer } from "effect"
import { createServer } from "node:http"
import * as AnalyticsRoutes from "./AnalyticsRoutes.js"
import * as HealthRoutes from "./HealthRoutes.js"
import * as IngestRoutes from "./IngestRoutes.js"
import { errorResponse } from "./responses.js"

export const app = HttpRouter.concatAll(IngestRoutes.routes, AnalyticsRoutes.routes, HealthRoutes.routes).pipe(
  Effect.catchTags({
    RouteNotFound: () => Effect.succeed(errorResponse(404, "not_found", "no such route"))
  }),
  Effect.catchAllCause((cause) =>
    Effect.as(Effect.logError("request failed", cause), errorResponse(500, "internal_error", "internal error"))
  )
)

/** The HTTP server on `PORT` (default 8080). */
export const layer = HttpServer.serve(app, HttpMiddleware.logger).pipe(
  HttpServer.withLogAddress,
  Layer.provide(
    NodeHttpServer.layerConfig(createServer, { port: Config.integer("PORT").pipe(Config.withDefault(8080)) })
  )
)
