import { FetchHttpClient, HttpApiClient, HttpClient, HttpClientRequest } from "@effect/platform"
import {
  AccountExists,
  type AccountKind,
  AccountNotFound,
  Accounts,
  AccountsUnavailable
} from "@telemetry/ingest/auth/Accounts"
import { Tokens } from "@telemetry/ingest/auth/Tokens"
import { AccountConflict } from "@telemetry/ingest/http/AdminApi"
import { AuthApi } from "@telemetry/ingest/http/AuthApi"
import { NotFound, Unauthorized } from "@telemetry/ingest/http/errors"
import { Effect, Layer, Option } from "effect"

/** An admin token lives long enough for one command; the server accepts none older than five minutes. */
const ADMIN_TOKEN_LIFETIME = "60 seconds"

/** What went wrong, said so that the user knows what to check. */
const unavailable = (baseUrl: string) => (error: unknown) =>
  new AccountsUnavailable({
    message: error instanceof Unauthorized
      ? `the server at ${baseUrl} refused the admin token (${error.message}): run the command with the server's ` +
        "AUTH_SECRET, or in its directory so that it reads the same AUTH_SECRET_FILE"
      : (error as { _tag?: string })._tag === "RequestError"
      ? `the server at ${baseUrl} cannot be reached: set PORT to the port it listens on`
      : `the server at ${baseUrl} failed: ${(error as Error)?.message ?? String(error)}`,
    cause: error
  })

/**
 * `Accounts` through the admin routes of a running server on this host (`http://127.0.0.1:<port>`), with an
 * admin token signed with the secret the server verifies tokens with: for while that server holds the embedded
 * database, which no other process may open.
 */
export const layer = (baseUrl: string) =>
  Layer.effect(
    Accounts,
    Effect.gen(function*() {
      const tokens = yield* Tokens
      const admin = yield* Effect.orDie(
        tokens.mint({ userType: "admin", tenantId: "*", subject: "pnpm-cli", expiresIn: ADMIN_TOKEN_LIFETIME })
      )
      const client = yield* HttpApiClient.make(AuthApi, {
        baseUrl,
        transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(admin.token))
      })
      const failed = unavailable(baseUrl)
      const missing = (kind: AccountKind, username: string) => (error: unknown) =>
        error instanceof NotFound ? new AccountNotFound({ kind, username }) : failed(error)

      return Accounts.of({
        add: (account) =>
          client.admin.addAccount({
            payload: {
              kind: account.kind,
              tenantId: account.tenantId,
              username: account.username,
              password: account.password,
              ...(account.timeZone === null ? {} : { timeZone: account.timeZone })
            }
          }).pipe(
            Effect.mapError((error) =>
              error instanceof AccountConflict ? new AccountExists({ kind: account.kind, username: account.username }) : failed(error)
            )
          ),
        list: (kind, tenantId) =>
          client.admin.listAccounts({
            urlParams: { kind, ...Option.match(tenantId, { onNone: () => ({}), onSome: (tenant_id) => ({ tenant_id }) }) }
          }).pipe(Effect.map((answer) => answer.accounts), Effect.mapError(failed)),
        setDisabled: (kind, username, disabled) =>
          (disabled ? client.admin.disableAccount : client.admin.enableAccount)({ path: { kind, username } }).pipe(
            Effect.mapError(missing(kind, username))
          ),
        setPassword: (kind, username, password) =>
          client.admin.setPassword({ path: { kind, username }, payload: { password } }).pipe(
            Effect.mapError(missing(kind, username))
          )
      })
    })
  ).pipe(Layer.provide(FetchHttpClient.layer))
