import { HttpServerResponse } from "@effect/platform"
import { ArrayFormatter, type ParseError } from "effect/ParseResult"

/** The error body of the contract: `{ error, message, path? }`. */
export const errorResponse = (
  status: number,
  error: string,
  message: string,
  options: { readonly path?: string | undefined; readonly headers?: Record<string, string> } = {}
) =>
  HttpServerResponse.unsafeJson(
    options.path === undefined ? { error, message } : { error, message, path: options.path },
    { status, ...(options.headers ? { headers: options.headers } : {}) }
  )

/** A query/path parameter that failed its schema: 400 naming the parameter. */
export const badParameter = (e: ParseError) => {
  const [issue] = ArrayFormatter.formatErrorSync(e)
  const path = issue?.path.map(String).join(".")
  return errorResponse(400, "invalid_parameter", `${path ? `${path}: ` : ""}${issue?.message ?? "invalid"}`, { path })
}
