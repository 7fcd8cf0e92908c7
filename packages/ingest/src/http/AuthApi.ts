import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { PasswordChecksBusy } from "../auth/Passwords.js"
import { AdminGroup } from "./AdminApi.js"
import { RefreshAuth } from "./Auth.js"
import { InvalidBody, RateLimited, TooLarge, Unavailable, UnsupportedMediaType } from "./errors.js"

// --- Logins of device and reader accounts, and refresh (contract §6) ---

const Credentials = Schema.Struct({
  // Bounded: whatever is sent is hashed. Not checked against the username rules: an unknown name is just wrong.
  username: Schema.String.pipe(Schema.maxLength(256)),
  // Its own message: the default one would quote the password in the answer.
  password: Schema.String.pipe(Schema.maxLength(1024)).annotations({
    message: () => ({ message: "must be a string of at most 1024 characters", override: true })
  })
}).annotations({
  identifier: "Credentials",
  // Not the default, which quotes what was sent instead: a body the server did not read as JSON, password and all.
  message: () => "must be a JSON object of username and password"
})

const TokenResponse = Schema.Struct({
  access_token: Schema.String.annotations({ description: "send as `Authorization: Bearer <access_token>`" }),
  token_type: Schema.Literal("Bearer"),
  expires_in: Schema.Int.annotations({ description: "seconds until it expires (AUTH_TOKEN_TTL)" }),
  expires_at: Schema.Date
}).annotations({ identifier: "TokenResponse" })

export class InvalidCredentials extends Schema.Class<InvalidCredentials>("InvalidCredentials")(
  { error: Schema.tag("invalid_credentials"), message: Schema.String },
  HttpApiSchema.annotations({ status: 401, description: "Unknown username or wrong password (the same answer for both)" })
) {}

export class AccountDisabled extends Schema.Class<AccountDisabled>("AccountDisabled")(
  { error: Schema.tag("account_disabled"), message: Schema.String },
  HttpApiSchema.annotations({ status: 403, description: "The account is disabled" })
) {}

const login = <const Name extends string>(name: Name, path: `/${string}`, summary: string) =>
  HttpApiEndpoint.post(name, path)
    .setPayload(Credentials)
    .addSuccess(TokenResponse)
    // A body that is not JSON, or over 64 KiB (Server.ts).
    .addError(InvalidBody)
    .addError(TooLarge)
    .addError(UnsupportedMediaType)
    .addError(InvalidCredentials)
    .addError(AccountDisabled)
    .addError(RateLimited)
    .addError(PasswordChecksBusy)
    .addError(Unavailable)
    .annotate(OpenApi.Summary, summary)
    .annotate(
      OpenApi.Description,
      "After LOGIN_MAX_FAILURES failed logins for one username, or from one address, within LOGIN_LOCKOUT_WINDOW, " +
        "logins are refused with 429 and `Retry-After` until the window ends; an account's from an address it logged in " +
        "from in the last 7 days only after as many failures of its own there. When more logins wait for a password " +
        "check than the server can serve within LOGIN_MAX_WAIT, it answers 503 and `Retry-After` at once."
    )

export class AuthGroup extends HttpApiGroup.make("auth")
  .add(login("deviceLogin", "/api/v1/auth/device/login", "Log a device account in: a device token, as `pnpm token` mints"))
  .add(login("readerLogin", "/api/v1/auth/login", "Log a reader account in: a reader token, for dashboards"))
  .add(
    HttpApiEndpoint.post("refresh", "/api/v1/auth/refresh")
      .addSuccess(TokenResponse)
      .addError(AccountDisabled)
      .middleware(RefreshAuth)
      .annotate(OpenApi.Summary, "A fresh token of the same principal, for a valid (unexpired) device or reader token")
  )
{}

/** Logins and account administration, added to the API as one (Api.ts). */
export class AuthApi extends HttpApi.make("auth").add(AuthGroup).add(AdminGroup) {}
