import { HttpApiBuilder } from "@effect/platform"
import { Effect, Layer, Option } from "effect"
import { Equipments } from "../analytics/Equipments.js"
import { TelemetryApi } from "./Api.js"
import { CurrentPrincipal } from "./Auth.js"
import { InvalidParameter, NotFound } from "./errors.js"
import { jsonResponse } from "./jsonResponse.js"

const group = HttpApiBuilder.group(TelemetryApi, "equipments", (handlers) =>
  Effect.map(Equipments, (equipments) =>
    // A failing database is a defect here: the server logs it and answers 503 database_unavailable (Server.ts).
    handlers
      .handle("list", ({ urlParams: { cursor, limit, name, status } }) =>
        Effect.gen(function*() {
          const { tenantId } = yield* CurrentPrincipal
          return yield* equipments.list(tenantId, { name, status }, { limit, cursor }).pipe(
            // Equipments.ts builds the page in the schema's key order with JSON values: written once, as the
            // schema's encoder would (held to the same bytes by the analytics answers test).
            Effect.map((page) => jsonResponse(page)),
            Effect.catchTags({
              InvalidCursor: (e) => Effect.fail(new InvalidParameter({ message: `cursor: ${e.message}`, path: "cursor" })),
              SqlError: Effect.die
            })
          )
        }))
      .handle("get", ({ path: { equipmentUuid } }) =>
        Effect.gen(function*() {
          const { tenantId } = yield* CurrentPrincipal
          const found = yield* Effect.orDie(equipments.get(tenantId, equipmentUuid))
          return yield* Option.match(found, {
            onNone: () => Effect.fail(new NotFound({ message: `no equipment "${equipmentUuid}"` })),
            onSome: (equipment) => Effect.succeed(jsonResponse(equipment))
          })
        }))))

/** The equipments routes, over the database's `SqlClient`. */
export const layer = group.pipe(Layer.provide(Equipments.Default))
