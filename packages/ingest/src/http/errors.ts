import { HttpApiSchema, HttpServerResponse } from "@effect/platform"
import { Duration, Effect, Option, Schema, SchemaAST } from "effect"

// The error body of the contract, `{ error, message, path? }`: one class per status, so the OpenAPI document
// shows each and a handler failing with one gets that status.
const code = <const C extends string>(c: C) =>
  Schema.Literal(c).pipe(Schema.propertySignature, Schema.withConstructorDefault(() => c))
const message = Schema.String
const path = Schema.optional(Schema.String).annotations({ description: "where: a parameter, or a field of the body" })

export class InvalidParameter extends Schema.Class<InvalidParameter>("InvalidParameter")(
  { error: code("invalid_parameter"), message, path },
  HttpApiSchema.annotations({ status: 400, description: "A path or query parameter is malformed or out of range" })
) {}

export class InvalidBody extends Schema.Class<InvalidBody>("InvalidBody")(
  { error: code("invalid_payload"), message, path },
  HttpApiSchema.annotations({ status: 400, description: "The body is not valid JSON or breaks the wire format" })
) {}

export class TooLarge extends Schema.Class<TooLarge>("TooLarge")(
  { error: code("payload_too_large"), message },
  HttpApiSchema.annotations({ status: 413, description: "The body, the decompressed body, an item or the item count is over its limit" })
) {}

export class UnsupportedMediaType extends Schema.Class<UnsupportedMediaType>("UnsupportedMediaType")(
  { error: code("unsupported_media_type"), message },
  HttpApiSchema.annotations({ status: 415, description: "Content-Type is not application/json, or Content-Encoding is not one the route reads (gzip for uploads, none elsewhere)" })
) {}

export class Unavailable extends Schema.Class<Unavailable>("Unavailable")(
  { error: Schema.Literal("storage_unavailable", "queue_unavailable", "database_unavailable"), message },
  HttpApiSchema.annotations({
    status: 503,
    description: "Storage, queue or database is unavailable; retry after `Retry-After` seconds"
  })
) {}

export class RateLimited extends Schema.Class<RateLimited>("RateLimited")(
  { error: code("rate_limited"), message },
  HttpApiSchema.annotations({ status: 429, description: "The device is over its request rate; retry after `Retry-After` seconds" })
) {}

export class Unauthorized extends Schema.Class<Unauthorized>("Unauthorized")(
  { error: code("unauthorized"), message },
  HttpApiSchema.annotations({
    status: 401,
    description: "No bearer token, or one that is malformed, forged or expired (answered with `WWW-Authenticate: Bearer`)"
  })
) {}

export class Forbidden extends Schema.Class<Forbidden>("Forbidden")(
  { error: code("forbidden"), message },
  HttpApiSchema.annotations({
    status: 403,
    description: "The token is valid but not for this: a reader token on ingest, a device token on analytics, or an x-device-id other than the token's device"
  })
) {}

export class NotFound extends Schema.Class<NotFound>("NotFound")(
  { error: code("not_found"), message },
  HttpApiSchema.annotations({ status: 404 })
) {}

export class MethodNotAllowed extends Schema.Class<MethodNotAllowed>("MethodNotAllowed")(
  { error: code("method_not_allowed"), message },
  HttpApiSchema.annotations({ status: 405 })
) {}

export class InternalError extends Schema.Class<InternalError>("InternalError")(
  { error: code("internal_error"), message },
  HttpApiSchema.annotations({ status: 500, description: "An unexpected failure (logged)" })
) {}

export type ApiError =
  | InvalidParameter
  | InvalidBody
  | TooLarge
  | UnsupportedMediaType
  | Unavailable
  | RateLimited
  | Unauthorized
  | Forbidden
  | NotFound
  | MethodNotAllowed
  | InternalError

const ErrorCode = Symbol.for("@telemetry/ingest/ErrorCode")

/**
 * The annotations of a failure raised where it happens (`Schema.TaggedError` carrying facts) that answers with the
 * contract's body, `{ error, message }`: its status, and that body as the document shows it instead of the facts.
 */
export const answeredAs = <A>(status: number, error: string, description: string): Schema.Annotations.Schema<A> => ({
  ...HttpApiSchema.annotations<A>({ status, description }),
  [ErrorCode]: error,
  jsonSchema: {
    type: "object",
    required: ["error", "message"],
    properties: { error: { type: "string", enum: [error] }, message: { type: "string" } }
  }
})

/** A failure annotated with `answeredAs`. */
export interface Failure {
  readonly _tag: string
  readonly message: string
}

/** A declared error as its response, for the places that answer without the API's encoder (raw handlers, 404/500). */
export const errorResponse = (error: ApiError | Failure, headers?: Record<string, string>) => {
  // The class carries the status, and the code of a failure; an ApiError instance's own fields are the body.
  const schema = error.constructor as unknown as Schema.Schema.Any
  const body = Option.match(SchemaAST.getAnnotation<string>(ErrorCode)(SchemaAST.typeAST(schema.ast)), {
    onNone: () => error,
    onSome: (code) => ({ error: code, message: error.message })
  })
  return HttpServerResponse.unsafeJson(body, {
    status: HttpApiSchema.getStatusError(schema),
    ...(headers ? { headers } : {})
  })
}

/** The database failed, or did not answer in time: logged, and answered 503 to retry in 5 s. */
export const databaseUnavailable = (cause: { readonly message: string }, headers?: Record<string, string>) =>
  Effect.as(
    Effect.logError(`the database is unavailable: ${cause.message}`),
    errorResponse(
      new Unavailable({ error: "database_unavailable", message: "the database is unavailable, retry later" }),
      { ...headers, ...RETRY_LATER }
    )
  )

/** Characters of a refusal's message on the request's line (a message quotes at most a short value). */
export const MAX_LOGGED_REFUSAL = 300

/** Refused for an outage: retried in 5 s. */
export const RETRY_LATER = { "retry-after": "5" }
/** Refused for what is in flight now, which is soon answered. */
export const RETRY_SOON = { "retry-after": "1" }

/** `Retry-After` for a wait, in whole seconds (at least 1). */
export const retryAfterHeader = (wait: Duration.Duration) => ({
  "retry-after": String(Math.max(1, Math.ceil(Duration.toSeconds(wait))))
})
