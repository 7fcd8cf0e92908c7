import { HttpApiSchema, HttpServerResponse } from "@effect/platform"
import { Schema } from "effect"

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

export class RequestTimeout extends Schema.Class<RequestTimeout>("RequestTimeout")(
  { error: code("request_timeout"), message },
  HttpApiSchema.annotations({
    status: 408,
    description: "The body came slower than MIN_BODY_RATE for longer than BODY_RATE_GRACE; nothing was stored"
  })
) {}

export class UnsupportedMediaType extends Schema.Class<UnsupportedMediaType>("UnsupportedMediaType")(
  { error: code("unsupported_media_type"), message },
  HttpApiSchema.annotations({ status: 415, description: "Content-Type is not application/json or Content-Encoding not gzip" })
) {}

export class Unavailable extends Schema.Class<Unavailable>("Unavailable")(
  { error: Schema.Literal("storage_unavailable", "queue_unavailable", "overloaded"), message },
  HttpApiSchema.annotations({
    status: 503,
    description: "Storage or queue is unavailable, or the server is at its bound of uploads in flight; retry after `Retry-After` seconds"
  })
) {}

export class RateLimited extends Schema.Class<RateLimited>("RateLimited")(
  { error: code("rate_limited"), message },
  HttpApiSchema.annotations({ status: 429, description: "The device is over its request rate; retry after `Retry-After` seconds" })
) {}

export class InProgress extends Schema.Class<InProgress>("InProgress")(
  { error: code("request_in_progress"), message },
  HttpApiSchema.annotations({
    status: 409,
    description: "A request with the same Idempotency-Key (or body) is still being accepted; retry after `Retry-After` seconds"
  })
) {}

export class KeyReused extends Schema.Class<KeyReused>("KeyReused")(
  { error: code("idempotency_key_reused"), message },
  HttpApiSchema.annotations({ status: 422, description: "The Idempotency-Key was used before for a different body" })
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

export class InternalError extends Schema.Class<InternalError>("InternalError")(
  { error: code("internal_error"), message },
  HttpApiSchema.annotations({ status: 500, description: "An unexpected failure (logged)" })
) {}

export type ApiError =
  | InvalidParameter
  | InvalidBody
  | TooLarge
  | RequestTimeout
  | UnsupportedMediaType
  | Unavailable
  | RateLimited
  | InProgress
  | KeyReused
  | Unauthorized
  | Forbidden
  | NotFound
  | InternalError

/** A declared error as its response, for the places that answer without the API's encoder (raw handlers, 404/500). */
export const errorResponse = (error: ApiError, headers?: Record<string, string>) =>
  // The instance's own fields are the body; its class carries the status annotation.
  HttpServerResponse.unsafeJson(error, {
    status: HttpApiSchema.getStatusError(error.constructor as unknown as Schema.Schema.Any),
    ...(headers ? { headers } : {})
  })
