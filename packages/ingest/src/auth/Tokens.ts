import { Effect, Option, ParseResult, Redacted, Schema } from "effect"
import { createRemoteJWKSet, decodeJwt, errors, type JWTVerifyGetKey, jwtVerify, SignJWT } from "jose"
import * as AuthConfig from "./AuthConfig.js"

/** Device tokens may only ingest (as their device); reader tokens may only read analytics. */
export const UserType = Schema.Literal("device", "reader")
export type UserType = typeof UserType.Type

/** A tenant or subject: a name, without surrounding blanks. */
const Name = Schema.NonEmptyTrimmedString.pipe(Schema.maxLength(256))

/** The claims of a token: whose data (`tenant_id`), what it may do (`user_type`), who (`sub`: a device's id). */
export const Claims = Schema.Struct({
  tenant_id: Name,
  user_type: UserType,
  sub: Name,
  exp: Schema.Number,
  iat: Schema.optional(Schema.Number)
})

/** Who a verified token speaks for. The tenant comes from the token alone. */
export interface Principal {
  readonly tenantId: string
  readonly userType: UserType
  readonly subject: string
}

export class InvalidToken extends Schema.TaggedError<InvalidToken>()("InvalidToken", { message: Schema.String }) {}

export class InvalidTokenRequest extends Schema.TaggedError<InvalidTokenRequest>()("InvalidTokenRequest", {
  message: Schema.String
}) {}

export interface TokenRequest {
  readonly userType: UserType
  readonly tenantId: string
  readonly subject: string
  /** A time span as jose reads it: `90m`, `12h`, `30d`, `1y`. */
  readonly expiresIn: string
}

export interface Minted {
  readonly token: string
  readonly expiresAt: Date
}

/** Our tokens' algorithm; the verifier accepts no other for them (no `none`, no algorithm confusion). */
const ALGORITHM = "HS256"
/** The algorithm of an identity provider's tokens, verified against `AUTH_JWKS_URL`. */
const JWKS_ALGORITHM = "RS256"

const TokenRequestFields = Schema.Struct({ userType: UserType, tenantId: Name, subject: Name })

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

/** Mints and verifies the bearer tokens (JWTs) of the API. */
export class Tokens extends Effect.Service<Tokens>()("@telemetry/Tokens", {
  effect: Effect.gen(function*() {
    const keys = yield* AuthConfig.AuthKeys
    const secret = Redacted.value(keys.secret)
    const jwks = Option.map(keys.jwksUrl, (url) => createRemoteJWKSet(url))
    const algorithms = Option.isSome(jwks) ? [ALGORITHM, JWKS_ALGORITHM] : [ALGORITHM]
    // HS256 tokens are always checked against our secret, so a public key of the JWKS never serves as a MAC key.
    const key: JWTVerifyGetKey = (header, token) =>
      header.alg === ALGORITHM || Option.isNone(jwks) ? secret : jwks.value(header, token)
    const decodeClaims = Schema.decodeUnknown(Claims)

    const verify = (token: string): Effect.Effect<Principal, InvalidToken> =>
      Effect.tryPromise({
        try: () => jwtVerify(token, key, { algorithms, requiredClaims: ["exp"] }),
        catch: (error) => new InvalidToken({ message: rejection(error) })
      }).pipe(
        Effect.flatMap(({ payload }) => decodeClaims(payload)),
        Effect.catchTag("ParseError", (e) => new InvalidToken({ message: `the token's claims are invalid: ${firstIssue(e)}` })),
        Effect.map((claims) => ({ tenantId: claims.tenant_id, userType: claims.user_type, subject: claims.sub }))
      )

    const mint = (request: TokenRequest): Effect.Effect<Minted, InvalidTokenRequest> =>
      Schema.decodeUnknown(TokenRequestFields)(request).pipe(
        Effect.mapError((e) => new InvalidTokenRequest({ message: firstIssue(e) })),
        Effect.zipRight(Effect.tryPromise({
          try: () =>
            new SignJWT({ tenant_id: request.tenantId, user_type: request.userType })
              .setProtectedHeader({ alg: ALGORITHM, typ: "JWT" })
              .setSubject(request.subject)
              .setIssuedAt()
              .setExpirationTime(request.expiresIn)
              .sign(secret),
          catch: (error) =>
            new InvalidTokenRequest({ message: `expiry "${request.expiresIn}": ${(error as Error).message}` })
        })),
        Effect.map((token) => ({ token, expiresAt: new Date(decodeJwt(token).exp! * 1000) }))
      )

    return { mint, verify } as const
  }),
  dependencies: [AuthConfig.layer]
}) {}
