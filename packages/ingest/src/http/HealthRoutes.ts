import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"

export const routes = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/api/v1/health",
    Effect.sync(() =>
      HttpServerResponse.unsafeJson({ status: "healthy", service: "telemetry-ingest", timestamp: new Date().toISOString() })
    )
  )
)
