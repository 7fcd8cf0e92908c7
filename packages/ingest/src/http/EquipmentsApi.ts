import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Equipment, EquipmentPage } from "../analytics/EquipmentRows.js"
import { ReaderAuth } from "./Auth.js"
import { InvalidParameter, NotFound, Unavailable } from "./errors.js"
import { Text, Uuid, wholeNumber, withDefault } from "./params.js"

// --- The tenant's equipments, for the console (and any dashboard that needs to find its uuids) ---

const PageSize = wholeNumber(1, 200).annotations({
  description: "equipments per page (1..200)",
  message: () => ({ message: "must be a whole number from 1 to 200", override: true })
})

export class EquipmentsGroup extends HttpApiGroup.make("equipments")
  .add(
    HttpApiEndpoint.get("list", "/")
      .setUrlParams(Schema.Struct({
        limit: withDefault(PageSize, 50),
        cursor: Schema.optional(Schema.String.annotations({ description: "the previous page's next_cursor" })),
        name: Schema.optional(Text.annotations({ description: "only equipments whose name or uuid contains this, in any case" })),
        status: Schema.optional(Text.annotations({ description: "only equipments of this status" }))
      }))
      .addSuccess(EquipmentPage)
      .annotate(OpenApi.Summary, "The tenant's equipments, by name: their sensors' newest readings and their last 24 hours")
  )
  .add(
    HttpApiEndpoint.get("get", "/:equipmentUuid")
      .setPath(Schema.Struct({ equipmentUuid: Uuid }))
      .addSuccess(Equipment)
      .addError(NotFound)
      .annotate(OpenApi.Summary, "One equipment of the tenant, as the list describes it; 404 when the tenant has none of this uuid")
  )
  .addError(InvalidParameter)
  .addError(Unavailable)
  .middleware(ReaderAuth)
  .prefix("/api/v1/equipments")
{}
