import { Context, type Effect, type Option, Schema } from "effect"

/** Device accounts get device tokens (they may ingest); reader accounts get reader tokens (analytics). */
export const AccountKind = Schema.Literal("device", "reader")
export type AccountKind = typeof AccountKind.Type

/**
 * A username: it becomes the token's `sub`, i.e. the device id that keys claims and limits, and is typed into
 * clients' setup forms, so it is kept to letters, digits and `. _ @ -`.
 */
export const Username = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/, {
    message: () => "a username is 1 to 128 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
  })
)

const MIN_PASSWORD_LENGTH = 8
/** Long enough for any passphrase; a bound, since every character is hashed. */
const MAX_PASSWORD_LENGTH = 1024

export const Password = Schema.String.pipe(
  Schema.minLength(MIN_PASSWORD_LENGTH, { message: () => `a password has at least ${MIN_PASSWORD_LENGTH} characters` }),
  Schema.maxLength(MAX_PASSWORD_LENGTH)
)

const fromKey = <S extends Schema.Schema.Any>(schema: S, key: string) =>
  Schema.propertySignature(schema).pipe(Schema.fromKey(key))

/** An account as listed and answered (snake_case on the wire); never its password hash. */
export const Account = Schema.Struct({
  kind: AccountKind,
  tenantId: fromKey(Schema.String, "tenant_id"),
  username: Schema.String,
  timeZone: fromKey(Schema.NullOr(Schema.String), "time_zone"),
  disabled: Schema.Boolean,
  createdAt: fromKey(Schema.Date, "created_at"),
  updatedAt: fromKey(Schema.Date, "updated_at")
}).annotations({ identifier: "Account" })
export type Account = typeof Account.Type

export interface NewAccount {
  readonly kind: AccountKind
  readonly tenantId: string
  readonly username: string
  readonly password: string
  /** Devices only: the zone of their naive reading times. */
  readonly timeZone: string | null
}

export class AccountExists extends Schema.TaggedError<AccountExists>()("AccountExists", {
  kind: AccountKind,
  username: Schema.String
}) {
  override get message() {
    return `a ${this.kind} account named "${this.username}" already exists`
  }
}

export class AccountNotFound extends Schema.TaggedError<AccountNotFound>()("AccountNotFound", {
  kind: AccountKind,
  username: Schema.String
}) {
  override get message() {
    return `no ${this.kind} account is named "${this.username}"`
  }
}

/** The accounts could not be read or written: the database, or the server the command went to, failed. */
export class AccountsUnavailable extends Schema.TaggedError<AccountsUnavailable>()("AccountsUnavailable", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/**
 * Managing accounts: the command line and the admin routes use it alike. Kept in the database (SqlAccounts), or,
 * while a running server holds the embedded database, reached through that server (cli/RemoteAccounts).
 */
export class Accounts extends Context.Tag("@telemetry/Accounts")<Accounts, {
  readonly add: (account: NewAccount) => Effect.Effect<Account, AccountExists | AccountsUnavailable>
  /** The accounts of `kind`, of one tenant or all, by tenant and username. */
  readonly list: (kind: AccountKind, tenantId: Option.Option<string>) => Effect.Effect<ReadonlyArray<Account>, AccountsUnavailable>
  readonly setDisabled: (
    kind: AccountKind,
    username: string,
    disabled: boolean
  ) => Effect.Effect<Account, AccountNotFound | AccountsUnavailable>
  readonly setPassword: (
    kind: AccountKind,
    username: string,
    password: string
  ) => Effect.Effect<Account, AccountNotFound | AccountsUnavailable>
}>() {}

/** What a login checks: the account and its stored password hash. */
export interface StoredCredentials {
  readonly account: Account
  readonly passwordHash: string
}

export class AccountCredentials extends Context.Tag("@telemetry/AccountCredentials")<AccountCredentials, {
  readonly find: (kind: AccountKind, username: string) => Effect.Effect<Option.Option<StoredCredentials>, AccountsUnavailable>
}>() {}
