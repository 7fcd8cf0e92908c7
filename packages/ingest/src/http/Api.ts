import { HttpApi, OpenApi } from "@effect/platform"
import { AnalyticsGroup } from "./AnalyticsApi.js"
import { AuthApi } from "./AuthApi.js"
import { ConsoleApi } from "../console/ConsoleApi.js"
import { withoutDecodeError } from "./docs.js"
import { InternalError } from "./errors.js"
import { HealthGroup } from "./HealthApi.js"
import { IngestGroup } from "./IngestApi.js"

// The HTTP API in one declaration, one group per file: routes, parameter validation, response encoding and the
// OpenAPI document (served at /api/v1/openapi.json and as Swagger UI at /api/v1/docs) all come from it.

export class TelemetryApi extends HttpApi.make("telemetry")
  .add(IngestGroup)
  .add(AnalyticsGroup)
  .add(HealthGroup)
  .addHttpApi(AuthApi)
  .addHttpApi(ConsoleApi)
  .addError(InternalError)
  .annotate(OpenApi.Title, "Telemetry pipeline")
  .annotate(OpenApi.Version, "1")
  .annotate(OpenApi.Transform, withoutDecodeError)
{}
