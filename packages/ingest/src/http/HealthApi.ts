import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Timestamp } from "../analytics/Rows.js"

// --- Health (contract §5) ---

const Healthy = Schema.Struct({
  status: Schema.Literal("healthy"),
  service: Schema.String,
  timestamp: Timestamp
}).annotations({ identifier: "Healthy" })

const DependencyCheck = Schema.Struct({
  status: Schema.Literal("up", "down"),
  latency_ms: Schema.Number.annotations({ description: "how long the check took" }),
  error: Schema.optional(Schema.String)
}).annotations({ identifier: "DependencyCheck" })

const Checks = Schema.Struct({ storage: DependencyCheck, queue: DependencyCheck, database: DependencyCheck })

export class DetailedHealth extends Schema.Class<DetailedHealth>("DetailedHealth")({
  status: Schema.Literal("healthy"),
  service: Schema.String,
  timestamp: Timestamp,
  checks: Checks
}) {}

export class Unhealthy extends Schema.Class<Unhealthy>("Unhealthy")(
  { status: Schema.Literal("unhealthy"), service: Schema.String, timestamp: Timestamp, checks: Checks },
  HttpApiSchema.annotations({ status: 503, description: "A dependency is down" })
) {}

export class HealthGroup extends HttpApiGroup.make("health")
  .add(HttpApiEndpoint.get("health", "/api/v1/health").addSuccess(Healthy))
  .add(
    HttpApiEndpoint.get("detailed", "/api/v1/health/detailed")
      .addSuccess(DetailedHealth)
      .addError(Unhealthy)
      .annotate(OpenApi.Summary, "Storage, queue and database checked, with latencies")
  )
{}
