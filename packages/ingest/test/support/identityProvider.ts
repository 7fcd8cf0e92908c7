import { Context, Effect, Layer } from "effect"
import { exportJWK, generateKeyPair, SignJWT } from "jose"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"

export const ISSUER = "https://idp.example.test"
export const AUDIENCE = "telemetry-api"

export interface IdentityProviderShape {
  /** `AUTH_JWKS_URL`, `AUTH_ISSUER` and `AUTH_AUDIENCE` of a server that trusts this provider. */
  readonly env: Readonly<Record<string, string>>
  readonly jwksUrl: string
  /** An RS256 token of the provider, with its issuer and our audience unless `claims` say otherwise. */
  readonly token: (claims: Record<string, unknown>) => Promise<string>
}

export class IdentityProvider extends Context.Tag("test/IdentityProvider")<IdentityProvider, IdentityProviderShape>() {}

/** An identity provider in this process: its RS256 public key served as a JSON Web Key Set, for the scope. */
export const layer = Layer.scoped(
  IdentityProvider,
  Effect.gen(function*() {
    const { privateKey, publicKey } = yield* Effect.promise(() => generateKeyPair("RS256"))
    const keys = [{ ...(yield* Effect.promise(() => exportJWK(publicKey))), kid: "idp-1", alg: "RS256", use: "sig" }]
    const server = yield* Effect.acquireRelease(
      Effect.promise(async () => {
        const server = createServer((_, response) => {
          response.setHeader("content-type", "application/json")
          response.end(JSON.stringify({ keys }))
        })
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
        return server
      }),
      (server) => Effect.promise(() => new Promise((resolve) => server.close(resolve)))
    )
    const jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`
    return {
      env: { AUTH_JWKS_URL: jwksUrl, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE },
      jwksUrl,
      token: (claims) =>
        new SignJWT({ iss: ISSUER, aud: AUDIENCE, ...claims }).setProtectedHeader({ alg: "RS256", kid: "idp-1" }).sign(privateKey)
    }
  })
)
