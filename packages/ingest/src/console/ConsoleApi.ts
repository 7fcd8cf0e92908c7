import { HttpApi, HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { EquipmentsGroup } from "../http/EquipmentsApi.js"
import { NotFound } from "../http/errors.js"

/** The console's page and its files (scripts, styles, uPlot): not part of the API, so not in its document. */
export class PagesGroup extends HttpApiGroup.make("console")
  .add(HttpApiEndpoint.get("page", "/"))
  .add(HttpApiEndpoint.get("file", "/console/:file").setPath(Schema.Struct({ file: Schema.String })))
  .addError(NotFound)
  .annotate(OpenApi.Exclude, true)
{}

/** The web console and the equipments API it lists, added to the API as one (Api.ts). */
export class ConsoleApi extends HttpApi.make("console").add(EquipmentsGroup).add(PagesGroup) {}
