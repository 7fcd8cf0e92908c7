import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Account, AccountKind, Password, Username } from "../auth/Accounts.js"
import { Name, TimeZoneName } from "../auth/Tokens.js"
import { AdminAuth } from "./Auth.js"
import { InvalidBody, NotFound, TooLarge, Unavailable, UnsupportedMediaType } from "./errors.js"

// --- Account administration: what `pnpm device` and `pnpm user` send to a running server that holds the embedded
// database. Admin tokens only; our own command line mints them, valid for a minute. ---

export class AccountConflict extends Schema.Class<AccountConflict>("AccountConflict")(
  { error: Schema.tag("account_exists"), message: Schema.String },
  HttpApiSchema.annotations({ status: 409, description: "An account of that kind already has the username" })
) {}

const optionalKey = <S extends Schema.Schema.Any>(schema: S, key: string) =>
  Schema.optionalWith(schema, { nullable: true }).pipe(Schema.fromKey(key))

const NewAccount = Schema.Struct({
  kind: AccountKind,
  tenantId: Schema.propertySignature(Name).pipe(Schema.fromKey("tenant_id")),
  username: Username,
  password: Password,
  timeZone: optionalKey(TimeZoneName, "time_zone").annotations({
    description: "devices only: IANA zone of the device's naive reading times"
  })
}).annotations({ identifier: "NewAccount" })

const AccountPath = Schema.Struct({ kind: AccountKind, username: Username })

const AccountList = Schema.Struct({ accounts: Schema.Array(Account) }).annotations({ identifier: "AccountList" })

const change = <const Name extends string>(name: Name, action: "disable" | "enable") =>
  HttpApiEndpoint.post(name, `/api/v1/admin/accounts/:kind/:username/${action}`)
    .setPath(AccountPath)
    .addSuccess(Account)
    .addError(NotFound)

export class AdminGroup extends HttpApiGroup.make("admin")
  .add(
    HttpApiEndpoint.get("listAccounts", "/api/v1/admin/accounts")
      .setUrlParams(Schema.Struct({ kind: AccountKind, tenant_id: Schema.optional(Name) }))
      .addSuccess(AccountList)
      .annotate(OpenApi.Summary, "The accounts of a kind, of one tenant or all")
  )
  .add(
    HttpApiEndpoint.post("addAccount", "/api/v1/admin/accounts")
      .setPayload(NewAccount)
      .addSuccess(Account, { status: 201 })
      .addError(InvalidBody)
      .addError(TooLarge)
      .addError(UnsupportedMediaType)
      .addError(AccountConflict)
      .annotate(OpenApi.Summary, "Create an account")
  )
  .add(change("disableAccount", "disable").annotate(OpenApi.Summary, "Disable an account: its logins and refreshes are refused"))
  .add(change("enableAccount", "enable").annotate(OpenApi.Summary, "Enable a disabled account"))
  .add(
    HttpApiEndpoint.put("setPassword", "/api/v1/admin/accounts/:kind/:username/password")
      .setPath(AccountPath)
      .setPayload(Schema.Struct({ password: Password }))
      .addSuccess(Account)
      .addError(InvalidBody)
      .addError(TooLarge)
      .addError(UnsupportedMediaType)
      .addError(NotFound)
      .annotate(OpenApi.Summary, "Set an account's password")
  )
  .addError(Unavailable)
  .middleware(AdminAuth)
  .annotate(OpenApi.Description, "Account administration, for `pnpm device` and `pnpm user`: admin tokens only")
{}
