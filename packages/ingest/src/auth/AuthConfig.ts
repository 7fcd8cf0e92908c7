import { FileSystem } from "@effect/platform"
import { NodeFileSystem } from "@effect/platform-node"
import { Config, Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { randomBytes } from "node:crypto"
import { dirname } from "node:path"

/** An HS256 key is only as strong as its secret: shorter secrets are refused. */
const MIN_SECRET_LENGTH = 32

/** The variables that select a real service (Infrastructure.ts); with none of them set the process runs embedded. */
const REAL_SERVICES = ["DATABASE_URL", "KAFKA_BROKERS", "S3_ENDPOINT"] as const

/** Where the signing secret came from: the environment, or the file an embedded pipeline keeps it in. */
export type SecretSource =
  | { readonly _tag: "Environment" }
  | { readonly _tag: "File"; readonly path: string; readonly created: boolean }

/**
 * An identity provider whose RS256 tokens are accepted too: verified with the keys of its JSON Web Key Set, and
 * only when they name its issuer and our audience (at least one of the two is required), so that a token it
 * issued for another application is not taken for one of ours.
 */
export interface IdentityProvider {
  readonly jwksUrl: URL
  readonly issuer: Option.Option<string>
  readonly audience: Option.Option<string>
}

/** The keys tokens are signed and verified with. */
export class AuthKeys extends Context.Tag("@telemetry/AuthKeys")<AuthKeys, {
  /** The HS256 key of our own tokens (`pnpm token`, logins, the tokens an embedded pipeline prints). */
  readonly secret: Redacted.Redacted<Uint8Array>
  readonly provider: Option.Option<IdentityProvider>
  readonly source: SecretSource
}>() {}

export class AuthConfigError extends Schema.TaggedError<AuthConfigError>()("AuthConfigError", {
  message: Schema.String
}) {}

const checked = (secret: string, origin: string) =>
  secret.length >= MIN_SECRET_LENGTH
    ? Effect.succeed(Redacted.make(new TextEncoder().encode(secret)))
    : Effect.fail(
      new AuthConfigError({
        message: `${origin} holds ${secret.length} characters; an HS256 secret needs at least ${MIN_SECRET_LENGTH} ` +
          "(e.g. `openssl rand -base64 32`)"
      })
    )

/**
 * The secret in `path`, created with a random one (readable by its owner only) if missing. It is written under a
 * temporary name and linked into place, so that processes starting together agree on one secret.
 */
const fileSecret = (path: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    let created = false
    if (!(yield* fs.exists(path))) {
      yield* fs.makeDirectory(dirname(path), { recursive: true })
      const temporary = `${path}.${process.pid}.tmp`
      yield* fs.writeFileString(temporary, `${randomBytes(32).toString("base64url")}\n`, { mode: 0o600 })
      created = yield* fs.link(temporary, path).pipe(
        Effect.as(true),
        Effect.catchIf((e) => e._tag === "SystemError" && e.reason === "AlreadyExists", () => Effect.succeed(false)),
        Effect.ensuring(Effect.ignore(fs.remove(temporary)))
      )
    }
    return { secret: (yield* fs.readFileString(path)).trim(), created }
  }).pipe(
    Effect.mapError((e) => new AuthConfigError({ message: `the auth secret file ${path} cannot be used: ${e.message}` }))
  )

/** `AUTH_JWKS_URL` with `AUTH_ISSUER` and/or `AUTH_AUDIENCE`; the URL alone is refused. */
const identityProvider = Effect.gen(function*() {
  const jwksUrl = yield* Config.option(Config.url("AUTH_JWKS_URL"))
  const issuer = yield* Config.option(Config.nonEmptyString("AUTH_ISSUER"))
  const audience = yield* Config.option(Config.nonEmptyString("AUTH_AUDIENCE"))
  if (Option.isNone(jwksUrl)) return Option.none<IdentityProvider>()
  if (Option.isNone(issuer) && Option.isNone(audience)) {
    return yield* new AuthConfigError({
      message: "AUTH_JWKS_URL is set without AUTH_ISSUER or AUTH_AUDIENCE: any token signed by a key of that set would " +
        "be accepted, also one the identity provider issued for another application. Set AUTH_ISSUER to its issuer " +
        "(`iss`) and/or AUTH_AUDIENCE to the audience (`aud`) its tokens for this API carry."
    })
  }
  return Option.some<IdentityProvider>({ jwksUrl: jwksUrl.value, issuer, audience })
})

/**
 * `AUTH_SECRET` when set. Without it, an embedded pipeline (no real service configured) uses the secret in
 * `AUTH_SECRET_FILE` (default `./data/auth-secret`), generated on first start; a process configured for real
 * services refuses to start, since its secret must be shared with the other processes and `pnpm token`.
 * `AUTH_JWKS_URL` adds an identity provider's RS256 keys.
 */
export const layer = Layer.effect(
  AuthKeys,
  Effect.gen(function*() {
    const provider = yield* identityProvider
    const configured = yield* Config.option(Config.redacted("AUTH_SECRET"))
    if (Option.isSome(configured)) {
      const secret = yield* checked(Redacted.value(configured.value), "AUTH_SECRET")
      return { secret, provider, source: { _tag: "Environment" } as const }
    }
    const services = yield* Effect.forEach(REAL_SERVICES, (name) => Config.option(Config.string(name)))
    const real = REAL_SERVICES.filter((_, i) => Option.isSome(services[i]!))
    if (real.length > 0) {
      return yield* new AuthConfigError({
        message: `AUTH_SECRET is not set, but ${real.join(", ")} ${real.length > 1 ? "are" : "is"}: set AUTH_SECRET to a ` +
          `random secret of at least ${MIN_SECRET_LENGTH} characters (e.g. \`openssl rand -base64 32\`), the same for ` +
          "every ingest process and for `pnpm token`. Only an embedded pipeline (none of " +
          `${REAL_SERVICES.join(", ")} set) generates a secret of its own.`
      })
    }
    const path = yield* Config.string("AUTH_SECRET_FILE").pipe(Config.withDefault("./data/auth-secret"))
    const { created, secret } = yield* fileSecret(path)
    return { secret: yield* checked(secret, path), provider, source: { _tag: "File", path, created } as const }
  })
).pipe(Layer.provide(NodeFileSystem.layer))
