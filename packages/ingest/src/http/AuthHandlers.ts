import { HttpApiBuilder } from "@effect/platform"
import { Effect, Layer } from "effect"
import type { AccountKind } from "../auth/Accounts.js"
import { AuthLimits } from "../auth/AuthLimits.js"
import { CredentialCache } from "../auth/CredentialCache.js"
import { type Issued, Login } from "../auth/Login.js"
import { Passwords } from "../auth/Passwords.js"
import * as SqlAccounts from "../auth/SqlAccounts.js"
import * as AdminHandlers from "./AdminHandlers.js"
import { TelemetryApi } from "./Api.js"
import { clientAddress, CurrentPrincipal, tooMany, TrustedProxyHops } from "./Auth.js"
import { AccountDisabled, InvalidCredentials } from "./AuthApi.js"
import { databaseUnavailable, errorResponse, retryAfterHeader } from "./errors.js"

const answer = (issued: Issued) => ({
  access_token: issued.token,
  token_type: "Bearer" as const,
  expires_in: issued.expiresIn,
  expires_at: issued.expiresAt
})

const disabled = (e: { readonly message: string }) => Effect.fail(new AccountDisabled({ message: e.message }))

const authGroup = HttpApiBuilder.group(TelemetryApi, "auth", (handlers) =>
  Effect.map(Effect.all([Login, TrustedProxyHops]), ([login, hops]) => {
    const logIn = (kind: AccountKind) => ({ payload }: { readonly payload: { readonly username: string; readonly password: string } }) =>
      clientAddress(hops).pipe(
        Effect.flatMap((address) => login.login(kind, payload.username, payload.password, address)),
        Effect.map(answer),
        Effect.catchTags({
          InvalidCredentials: (e) => Effect.fail(new InvalidCredentials({ message: e.message })),
          AccountDisabled: disabled,
          Limited: tooMany,
          PasswordChecksBusy: (e) => Effect.succeed(errorResponse(e, retryAfterHeader(e.retryAfter))),
          AccountsUnavailable: (e) => databaseUnavailable(e)
        })
      )
    return handlers
      .handle("deviceLogin", logIn("device"))
      .handle("readerLogin", logIn("reader"))
      .handle("refresh", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          const { userType } = principal
          // RefreshAuth lets device and reader tokens through only.
          if (userType === "admin") return yield* Effect.dieMessage("an admin token reached refresh")
          return answer(yield* login.refresh({ ...principal, userType }))
        }).pipe(Effect.catchTags({ AccountDisabled: disabled, AccountsUnavailable: (e) => databaseUnavailable(e) })))
  }))

/**
 * Logins, refresh and account administration, over the accounts in the database; needs `Tokens` and a
 * `SqlClient`.
 */
export const layer = Layer.merge(authGroup, AdminHandlers.layer).pipe(
  Layer.provide(
    Login.Default.pipe(
      Layer.provideMerge(Layer.mergeAll(SqlAccounts.layer, Passwords.Default, CredentialCache.Default, AuthLimits.Default))
    )
  )
)
