import { HttpApiMiddleware, HttpApiSecurity, HttpApp, HttpServerRequest, HttpServerResponse, OpenApi } from "@effect/platform"
import { integerSetting } from "@telemetry/domain"
import { Context, Duration, Effect, Layer, Option, Redacted, Schema } from "effect"
import { AuthLimits, type Limited } from "../auth/AuthLimits.js"
import { InvalidToken, type Principal, Tokens, type UserType, type VerifyOptions } from "../auth/Tokens.js"
import { Forbidden, MAX_LOGGED_REFUSAL, RateLimited, retryAfterHeader, Unauthorized } from "./errors.js"
import { CurrentRequest } from "./RequestLog.js"

/** Who the request acts for, from its bearer token: the tenant of every row it writes or reads. */
export class CurrentPrincipal extends Context.Tag("@telemetry/CurrentPrincipal")<CurrentPrincipal, Principal>() {}

const bearer = HttpApiSecurity.bearer.pipe(
  HttpApiSecurity.annotate(OpenApi.Format, "JWT"),
  HttpApiSecurity.annotate(
    OpenApi.Description,
    "A JWT (HS256, from a login or `pnpm token`) with the claims tenant_id, user_type and sub: device tokens may " +
      "only ingest, as the device `sub`; reader tokens may only read analytics; both only their tenant's data."
  )
)

const failure = Schema.Union(Unauthorized, Forbidden, RateLimited)

/** Ingest: device tokens only. */
export class DeviceAuth extends HttpApiMiddleware.Tag<DeviceAuth>()("@telemetry/DeviceAuth", {
  provides: CurrentPrincipal,
  failure,
  security: { bearer }
}) {}

/** Analytics: reader tokens only, each within its rate. */
export class ReaderAuth extends HttpApiMiddleware.Tag<ReaderAuth>()("@telemetry/ReaderAuth", {
  provides: CurrentPrincipal,
  failure,
  security: { bearer }
}) {}

/** Refresh: a device or reader token of ours (not the identity provider's, which it refreshes itself). */
export class RefreshAuth extends HttpApiMiddleware.Tag<RefreshAuth>()("@telemetry/RefreshAuth", {
  provides: CurrentPrincipal,
  failure,
  security: { bearer }
}) {}

/** Account administration: short-lived admin tokens of ours, which `pnpm device` and `pnpm user` mint. */
export class AdminAuth extends HttpApiMiddleware.Tag<AdminAuth>()("@telemetry/AdminAuth", {
  provides: CurrentPrincipal,
  failure,
  security: { bearer }
}) {}

/** The most an admin token may have lived: the command line mints one per command. */
const ADMIN_TOKEN_MAX_AGE = Duration.minutes(5)

/**
 * Reverse proxies in front of the server whose `X-Forwarded-For` entries are believed; 0: none. Read where the
 * handlers are built, so that a bad value stops the server at start rather than failing every login.
 */
export const TrustedProxyHops = integerSetting("TRUSTED_PROXY_HOPS", 0, { min: 0 })

/**
 * The client's address: what limits on unauthenticated requests and failed logins are counted by. The
 * connection's peer; behind `TRUSTED_PROXY_HOPS` proxies, the address the outermost of them saw (each appends its
 * peer to `X-Forwarded-For`, so it is that many entries from the right; what a client wrote itself is left of it).
 */
export const clientAddress = (hops: number) =>
  Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
    const peer = Option.getOrElse(request.remoteAddress, () => "unknown")
    if (hops <= 0) return peer
    const forwarded = (request.headers["x-forwarded-for"] ?? "").split(",").map((entry) => entry.trim()).filter(Boolean)
    return forwarded[forwarded.length - hops] ?? peer
  })

/** Adds `Retry-After` (whole seconds, at least 1) to the response this request gets, a failure's included. */
const retryAfter = (wait: Duration.Duration) =>
  HttpApp.appendPreResponseHandler((_, response) => Effect.succeed(HttpServerResponse.setHeaders(response, retryAfterHeader(wait))))

/** 429 with the contract's body and `Retry-After`. */
export const tooMany = (limited: Limited) =>
  Effect.zipRight(retryAfter(limited.retryAfter), Effect.fail(new RateLimited({ message: limited.message })))

const BEARER = /^bearer\s/i

/**
 * The principal of a valid bearer token: 401 without one — or 429 once the client's address has sent more
 * requests without a valid token than `RATE_LIMIT_UNAUTHENTICATED` allows in its window. A token of ours that only
 * expired always gets its 401, uncounted: it is what tells a client (the Home Assistant integration) to log in
 * again, which a neighbour's flood from the same address must not keep from it.
 */
const authenticate = (tokens: Tokens, limits: AuthLimits, hops: number, options: VerifyOptions = {}) => (token: Redacted.Redacted<string>) =>
  Effect.gen(function*() {
    const { headers } = yield* HttpServerRequest.HttpServerRequest
    if (headers.authorization === undefined) {
      return yield* Effect.fail(new Unauthorized({ message: "missing header `Authorization: Bearer <token>`" }))
    }
    if (!BEARER.test(headers.authorization)) {
      return yield* Effect.fail(new Unauthorized({ message: "the Authorization header must be `Bearer <token>`" }))
    }
    return yield* tokens.verify(Redacted.value(token).trim(), options)
  }).pipe(
    Effect.catchAll((refused) => {
      const unauthorized = refused instanceof InvalidToken ? new Unauthorized({ message: refused.message }) : refused
      return refused instanceof InvalidToken && refused.expired
        ? Effect.fail(unauthorized)
        : clientAddress(hops).pipe(
          Effect.flatMap(limits.unauthenticated),
          Effect.catchTag("Limited", tooMany),
          Effect.zipRight(Effect.fail(unauthorized))
        )
    })
  )

/** The principal if its type is one of `allowed`, else 403: `only <what>; this is a <its type> token`. */
const ofType = (allowed: ReadonlyArray<UserType>, what: string) => (principal: Principal) =>
  allowed.includes(principal.userType)
    ? Effect.succeed(principal)
    : Effect.fail(new Forbidden({ message: `only ${what}; this is a${principal.userType === "admin" ? "n" : ""} ${principal.userType} token` }))

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

/**
 * A middleware's bearer check: a token that verifies (with `options`), of a type in `allowed` (`what` they may do,
 * for the 403), then `more` checks of its own.
 */
const guard = (
  hops: number,
  allowed: ReadonlyArray<UserType>,
  what: string,
  options: VerifyOptions = {},
  more: (principal: Principal, limits: AuthLimits) => Effect.Effect<Principal, Forbidden | RateLimited, HttpServerRequest.HttpServerRequest> = Effect.succeed
) =>
  Effect.gen(function*() {
    const limits = yield* AuthLimits
    const tokens = yield* Tokens
    // A token of the wrong type gets its 403 whatever its age: the age limit is checked once the type is right.
    const { maxAge, ...anyAge } = options
    const verified = authenticate(tokens, limits, hops, anyAge)
    const fresh = maxAge === undefined ? undefined : authenticate(tokens, limits, hops, options)
    return {
      bearer: (token: Redacted.Redacted<string>) =>
        verified(token).pipe(
          Effect.flatMap(ofType(allowed, what)),
          Effect.flatMap((principal) => (fresh === undefined ? Effect.succeed(principal) : fresh(token))),
          Effect.flatMap((principal) => more(principal, limits)),
          // Why, on the request's line too: an expired token and a forged one both read 401 there.
          Effect.tapError((e) => Effect.flatMap(CurrentRequest, (served) => served.annotate({ refusal: e.message.slice(0, MAX_LOGGED_REFUSAL) })))
        )
    }
  })

/** The middlewares; they verify tokens with `Tokens`. */
export const layer = Layer.unwrapEffect(Effect.map(TrustedProxyHops, (hops) =>
  Layer.mergeAll(
    Layer.effect(DeviceAuth, guard(hops, ["device"], "device tokens may ingest", {}, asItself)),
    Layer.effect(
      ReaderAuth,
      guard(hops, ["reader"], "reader tokens may read analytics", {}, (principal, limits) =>
        limits.reader(principal).pipe(Effect.catchTag("Limited", tooMany), Effect.as(principal)))
    ),
    Layer.effect(RefreshAuth, guard(hops, ["device", "reader"], "device and reader tokens are refreshed", { ownOnly: true })),
    Layer.effect(
      AdminAuth,
      guard(hops, ["admin"], "admin tokens (minted by `pnpm device` and `pnpm user`) manage accounts", {
        ownOnly: true,
        maxAge: ADMIN_TOKEN_MAX_AGE
      })
    )
  ))).pipe(Layer.provide(AuthLimits.Default))
