import { HttpApiMiddleware, HttpApiSecurity, HttpServerRequest, OpenApi } from "@effect/platform"
import { Context, Effect, Layer, Redacted, Schema } from "effect"
import { type Principal, Tokens, type UserType } from "../auth/Tokens.js"
import { Forbidden, Unauthorized } from "./errors.js"

/** Who the request acts for, from its bearer token: the tenant of every row it writes or reads. */
export class CurrentPrincipal extends Context.Tag("@telemetry/CurrentPrincipal")<CurrentPrincipal, Principal>() {}

const bearer = HttpApiSecurity.bearer.pipe(
  HttpApiSecurity.annotate(OpenApi.Format, "JWT"),
  HttpApiSecurity.annotate(
    OpenApi.Description,
    "A JWT (HS256, e.g. from `pnpm token`) with the claims tenant_id, user_type and sub: device tokens may only " +
      "ingest, as the device `sub`; reader tokens may only read analytics; both only their tenant's data."
  )
)

const failure = Schema.Union(Unauthorized, Forbidden)

/** Ingest: device tokens only. */
export class DeviceAuth extends HttpApiMiddleware.Tag<DeviceAuth>()("@telemetry/DeviceAuth", {
  provides: CurrentPrincipal,
  failure,
  security: { bearer }
}) {}

/** Analytics: reader tokens only. */
export class ReaderAuth extends HttpApiMiddleware.Tag<ReaderAuth>()("@telemetry/ReaderAuth", {
  provides: CurrentPrincipal,
  failure,
  security: { bearer }
}) {}

const BEARER = /^bearer\s/i

/** The principal of a valid token of type `allowed`: 401 without a valid token, 403 for the other type. */
const authenticate = (tokens: Tokens, allowed: UserType, refusal: string) => (token: Redacted.Redacted<string>) =>
  Effect.gen(function*() {
    const { headers } = yield* HttpServerRequest.HttpServerRequest
    if (headers.authorization === undefined) {
      return yield* Effect.fail(new Unauthorized({ message: "missing header `Authorization: Bearer <token>`" }))
    }
    if (!BEARER.test(headers.authorization)) {
      return yield* Effect.fail(new Unauthorized({ message: "the Authorization header must be `Bearer <token>`" }))
    }
    const principal = yield* tokens.verify(Redacted.value(token).trim()).pipe(
      Effect.mapError((e) => new Unauthorized({ message: e.message }))
    )
    if (principal.userType !== allowed) return yield* Effect.fail(new Forbidden({ message: refusal }))
    return principal
  })

/** A device speaks for itself only: an `x-device-id` other than its token's device is refused. */
const asItself = (principal: Principal) =>
  Effect.gen(function*() {
    const claimed = (yield* HttpServerRequest.HttpServerRequest).headers["x-device-id"]
    if (claimed && claimed !== principal.subject) {
      return yield* Effect.fail(
        new Forbidden({ message: `x-device-id "${claimed}" is not the token's device "${principal.subject}"` })
      )
    }
    return principal
  })

/** Both middlewares; they verify tokens with `Tokens`. */
export const layer = Layer.merge(
  Layer.effect(
    DeviceAuth,
    Effect.map(Tokens, (tokens) => ({
      bearer: (token) =>
        Effect.flatMap(authenticate(tokens, "device", "only device tokens may ingest; this is a reader token")(token), asItself)
    }))
  ),
  Layer.effect(
    ReaderAuth,
    Effect.map(Tokens, (tokens) => ({
      bearer: authenticate(tokens, "reader", "only reader tokens may read analytics; this is a device token")
    }))
  )
)
