import { HttpApiBuilder } from "@effect/platform"
import { Clock, Effect } from "effect"
import { TelemetryApi } from "./Api.js"

export const layer = HttpApiBuilder.group(TelemetryApi, "health", (handlers) =>
  handlers.handle("health", () =>
    Effect.map(Clock.currentTimeMillis, (now) => ({
      status: "healthy" as const,
      service: "telemetry-ingest",
      timestamp: new Date(now)
    }))))
