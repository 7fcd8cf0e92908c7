// Corrections to the generated OpenAPI document, where the server deliberately differs from the framework's
// defaults. Applied through `OpenApi.Transform` annotations in Api.ts.

type Json = Record<string, any>

const DECODE_ERROR = "#/components/schemas/HttpApiDecodeError"

/**
 * The framework documents its own 400 body (HttpApiDecodeError) on every endpoint; this server answers parameter
 * failures with the contract's InvalidParameter instead (Server.ts), so the document says that.
 */
export const withoutDecodeError = (spec: Json): Json => {
  const schemas: Json = spec.components.schemas
  for (const operations of Object.values<Json>(spec.paths)) {
    for (const operation of Object.values<Json>(operations)) {
      const response = operation.responses["400"]
      if (response === undefined) continue
      const content = response.content["application/json"]
      const alternatives: Array<Json> = content.schema.anyOf ?? [content.schema]
      const kept = alternatives.filter((s) => s.$ref !== DECODE_ERROR)
      if (kept.length === 0) {
        delete operation.responses["400"]
        continue
      }
      content.schema = kept.length === 1 ? kept[0] : { anyOf: kept }
      response.description = kept
        .map((s) => schemas[String(s.$ref).split("/").pop()!]?.description)
        .filter(Boolean)
        .join("; ")
    }
  }
  for (const name of ["HttpApiDecodeError", "Issue", "PropertyKey"]) delete schemas[name]
  return spec
}

/** Unknown fields of a request body are ignored, not rejected (contract §1): drop `additionalProperties: false`. */
export const allowUnknownFields = (operation: Json): Json => {
  const open = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(open)
    if (node === null || typeof node !== "object") return
    const object = node as Json
    if (object.additionalProperties === false) delete object.additionalProperties
    Object.values(object).forEach(open)
  }
  open(operation.requestBody)
  return operation
}
