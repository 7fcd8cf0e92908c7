import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Schema } from "effect"
import { History } from "../analytics/History.js"
import { badParameter, errorResponse } from "./responses.js"

const DAY = 24 * 60 * 60 * 1000

const HistoryParams = Schema.Struct({
  period: Schema.optionalWith(Schema.Literal("hour", "raw"), { default: () => "hour" as const }),
  start_date: Schema.optional(Schema.Date),
  end_date: Schema.optional(Schema.Date),
  sensor_type: Schema.optional(Schema.String),
  limit: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 100_000)), {
    default: () => 10_000
  })
})

const equipmentHistory = Effect.gen(function*() {
  const { equipmentUuid } = yield* HttpRouter.schemaPathParams(Schema.Struct({ equipmentUuid: Schema.String }))
  const params = yield* HttpServerRequest.schemaSearchParams(HistoryParams)
  const end = params.end_date ?? new Date()
  const start = params.start_date ?? new Date(end.getTime() - 7 * DAY)
  if (start.getTime() >= end.getTime()) {
    return errorResponse(400, "invalid_parameter", "start_date must be before end_date", { path: "start_date" })
  }
  const history = yield* History
  const data = yield* history.equipmentHistory({
    equipmentUuid,
    period: params.period,
    start,
    end,
    sensorType: params.sensor_type,
    limit: params.limit
  })
  return HttpServerResponse.unsafeJson({
    equipment_uuid: equipmentUuid,
    period: params.period,
    start_date: start.toISOString(),
    end_date: end.toISOString(),
    data
  })
}).pipe(Effect.catchTag("ParseError", (e) => Effect.succeed(badParameter(e))))

export const routes = HttpRouter.empty.pipe(
  HttpRouter.get("/api/v1/analytics/equipment/:equipmentUuid/history", equipmentHistory)
)
