import { textStorable } from "@telemetry/domain"
import { Clock, Config, DateTime, Duration, Effect, Option, ParseResult, Redacted, Schema } from "effect"
import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JWTVerifyOptions,
  jwtVerify,
  SignJWT
} from "jose"
import * as AuthConfig from "./AuthConfig.js"

/**
 * Device tokens may only ingest (as their device); reader tokens may only read analytics; admin tokens, which
 * only our own command line mints (short-lived), may only manage accounts.
 */
export const UserType = Schema.Literal("device", "reader", "admin")
export type UserType = typeof UserType.Type

/**
 * A tenant or subject: a name, without surrounding blanks, that the database can store as text (no NUL, no lone
 * surrogate): every row and claim carries it, and a token whose uploads could not be loaded is refused up front.
 */
export const Name = Schema.NonEmptyTrimmedString.pipe(Schema.maxLength(256), textStorable)

/** An IANA time zone this runtime knows, decoded to its canonical name (`america/sao_paulo` → `America/Sao_Paulo`). */
export const TimeZoneName = Schema.transformOrFail(Schema.String, Schema.String, {
  strict: true,
  decode: (zone, _, ast) =>
    Option.match(DateTime.zoneMakeNamed(zone), {
      onNone: () => ParseResult.fail(new ParseResult.Type(ast, zone, `"${zone}" is not an IANA time zone, e.g. America/Sao_Paulo`)),
      onSome: (named) => ParseResult.succeed(named.id)
    }),
  encode: ParseResult.succeed
})

/**
 * The claims of a token: whose data (`tenant_id`), what it may do (`user_type`), who (`sub`: a device's id), and
 * for a device account the zone its naive reading times are in (`tz`).
 */
export const Claims = Schema.Struct({
  tenant_id: Name,
  user_type: UserType,
  sub: Name,
  exp: Schema.Number,
  iat: Schema.optional(Schema.Number),
  tz: Schema.optional(TimeZoneName)
})

/** Who a verified token speaks for. The tenant comes from the token alone. */
export interface Principal {
  readonly tenantId: string
  readonly userType: UserType
  readonly subject: string
  /** The IANA zone of the device account's naive reading times; null when the token carries none. */
  readonly timeZone: string | null
}

export class InvalidToken extends Schema.TaggedError<InvalidToken>()("InvalidToken", {
  message: Schema.String,
  /** Ours (its signature verified), only past its lifetime: what a client that logs in again holds. */
  expired: Schema.optional(Schema.Boolean)
}) {}

export class InvalidTokenRequest extends Schema.TaggedError<InvalidTokenRequest>()("InvalidTokenRequest", {
  message: Schema.String
}) {}

export interface TokenRequest {
  readonly userType: UserType
  readonly tenantId: string
  readonly subject: string
  /** A time span as jose reads it: `90m`, `12h`, `30d`, `1y`, `86400 seconds`. */
  readonly expiresIn: string
  readonly timeZone?: string | null | undefined
}

export interface Minted {
  readonly token: string
  readonly expiresAt: Date
}

export interface VerifyOptions {
  /** Only our own HS256 tokens, not the identity provider's (refresh and admin routes). */
  readonly ownOnly?: boolean
  /** The most time since the token's `iat` (which is then required). */
  readonly maxAge?: Duration.Duration
}

/** Our tokens' algorithm; the verifier accepts no other for them (no `none`, no algorithm confusion). */
const ALGORITHM = "HS256"
/** The algorithm of an identity provider's tokens, verified against `AUTH_JWKS_URL`. */
const JWKS_ALGORITHM = "RS256"

/** How far a token's `iat` may lie ahead of our clock (clocks of different hosts differ a little). */
const ClockSkew = Config.duration("AUTH_CLOCK_SKEW").pipe(Config.withDefault(Duration.seconds(60)))

const TokenRequestFields = Schema.Struct({
  userType: UserType,
  tenantId: Name,
  subject: Name,
  timeZone: Schema.optional(Schema.NullOr(TimeZoneName))
})

const firstIssue = (error: ParseResult.ParseError) => {
  const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
  return issue === undefined ? "invalid" : `${issue.path.join(".") || "claims"}: ${issue.message}`
}

/** Why jose rejected a token, in words for the client. */
const rejection = (error: unknown): string => {
  if (error instanceof errors.JWTExpired) return "the token has expired"
  if (error instanceof errors.JWTClaimValidationFailed) {
    return `the token's "${error.claim}" claim is ${error.reason === "missing" ? "missing" : "not satisfied"}`
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return "the token's signature does not verify"
  if (error instanceof errors.JOSEAlgNotAllowed) return "the token is not signed with an accepted algorithm"
  if (error instanceof errors.JWKSNoMatchingKey) return "no key of the identity provider matches the token"
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) return "the token is malformed"
  return "the token cannot be verified"
}

/** The `alg` of a token's header; undefined when there is no readable header (jwtVerify then says why). */
const algorithmOf = (token: string): string | undefined => {
  try {
    return decodeProtectedHeader(token).alg
  } catch {
    return undefined
  }
}

/** Mints and verifies the bearer tokens (JWTs) of the API. */
export class Tokens extends Effect.Service<Tokens>()("@telemetry/Tokens", {
  effect: Effect.gen(function*() {
    const keys = yield* AuthConfig.AuthKeys
    const skew = yield* ClockSkew
    const secret = Redacted.value(keys.secret)
    const provider = Option.map(keys.provider, (p) => ({
      keys: createRemoteJWKSet(p.jwksUrl),
      checks: {
        ...Option.match(p.issuer, { onNone: () => ({}), onSome: (issuer) => ({ issuer }) }),
        ...Option.match(p.audience, { onNone: () => ({}), onSome: (audience) => ({ audience }) })
      }
    }))
    const decodeClaims = Schema.decodeUnknown(Claims)

    /**
     * RS256 tokens go to the identity provider's keys, with its issuer and audience checked; everything else to
     * our secret with HS256 alone, so that a public key of the JWKS never serves as a MAC key. Our own tokens need
     * no issuer or audience: only this deployment holds the secret that signs them.
     */
    const verifySignature = (token: string, now: Date, options: VerifyOptions) =>
      Effect.tryPromise({
        try: () => {
          const common: JWTVerifyOptions = {
            requiredClaims: ["exp"],
            currentDate: now,
            ...(options.maxAge ? { maxTokenAge: `${Duration.toSeconds(options.maxAge)} seconds` } : {})
          }
          return algorithmOf(token) === JWKS_ALGORITHM && Option.isSome(provider) && !options.ownOnly
            ? jwtVerify(token, provider.value.keys, { ...common, ...provider.value.checks, algorithms: [JWKS_ALGORITHM] })
            : jwtVerify(token, secret, { ...common, algorithms: [ALGORITHM] })
        },
        // jose checks the claims after the signature: an expired token is a genuine one.
        catch: (error) => new InvalidToken({ message: rejection(error), ...(error instanceof errors.JWTExpired ? { expired: true } : {}) })
      })

    const verify = (token: string, options: VerifyOptions = {}): Effect.Effect<Principal, InvalidToken> =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const { payload } = yield* verifySignature(token, new Date(now), options)
        const claims = yield* decodeClaims(payload).pipe(
          Effect.mapError((e) => new InvalidToken({ message: `the token's claims are invalid: ${firstIssue(e)}` }))
        )
        // A token "issued" in the future was minted by a clock far ahead, or made to outlive its lifetime.
        if (claims.iat !== undefined && claims.iat * 1000 > now + Duration.toMillis(skew)) {
          return yield* new InvalidToken({ message: "the token's \"iat\" claim lies in the future" })
        }
        return {
          tenantId: claims.tenant_id,
          userType: claims.user_type,
          subject: claims.sub,
          timeZone: claims.tz ?? null
        }
      })

    const mint = (request: TokenRequest): Effect.Effect<Minted, InvalidTokenRequest> =>
      Schema.decodeUnknown(TokenRequestFields)(request).pipe(
        Effect.mapError((e) => new InvalidTokenRequest({ message: firstIssue(e) })),
        Effect.flatMap((fields) =>
          Effect.tryPromise({
            try: () =>
              new SignJWT({
                tenant_id: fields.tenantId,
                user_type: fields.userType,
                ...(fields.timeZone ? { tz: fields.timeZone } : {})
              })
                .setProtectedHeader({ alg: ALGORITHM, typ: "JWT" })
                .setSubject(fields.subject)
                .setIssuedAt()
                .setExpirationTime(request.expiresIn)
                .sign(secret),
            catch: (error) =>
              new InvalidTokenRequest({ message: `expiry "${request.expiresIn}": ${(error as Error).message}` })
          })
        ),
        Effect.flatMap((token) => {
          const { exp, iat } = decodeJwt(token)
          // "0s" or "-5m" would mint a token no server accepts.
          return exp! > iat!
            ? Effect.succeed({ token, expiresAt: new Date(exp! * 1000) })
            : Effect.fail(new InvalidTokenRequest({ message: `expiry "${request.expiresIn}": the token would be expired when minted` }))
        })
      )

    return { mint, verify } as const
  }),
  dependencies: [AuthConfig.layer]
}) {}
