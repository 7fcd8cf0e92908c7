import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { textStorable } from "@telemetry/domain"
import { Context, Effect, Layer, Option, Schema } from "effect"
import {
  type Account,
  AccountCredentials,
  AccountExists,
  type AccountKind,
  AccountNotFound,
  Accounts,
  AccountsUnavailable
} from "./Accounts.js"
import { Passwords } from "./Passwords.js"

interface Row {
  readonly kind: AccountKind
  readonly tenant_id: string
  readonly username: string
  readonly time_zone: string | null
  readonly disabled: boolean
  readonly created_at: Date
  readonly updated_at: Date
  readonly password_hash: string
}

const toAccount = (row: Row): Account => ({
  kind: row.kind,
  tenantId: row.tenant_id,
  username: row.username,
  timeZone: row.time_zone,
  disabled: row.disabled,
  createdAt: new Date(row.created_at),
  updatedAt: new Date(row.updated_at)
})

/** A name the database can hold: a login's is not checked against the username rules (an unknown name is wrong). */
const storableName = Schema.is(textStorable(Schema.String))

const unavailable = (error: SqlError) =>
  new AccountsUnavailable({ message: `the accounts table cannot be used: ${error.message}`, cause: error })

/** Accounts in the `accounts` table (migration 0007), passwords hashed by `Passwords`. */
const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const passwords = yield* Passwords
  const columns = sql`kind, tenant_id, username, time_zone, disabled, created_at, updated_at, password_hash`

  const one = (kind: AccountKind, username: string, rows: Effect.Effect<ReadonlyArray<Row>, SqlError>) =>
    rows.pipe(
      Effect.mapError(unavailable),
      Effect.flatMap((found) =>
        found[0] === undefined ? Effect.fail(new AccountNotFound({ kind, username })) : Effect.succeed(toAccount(found[0]))
      )
    )

  const accounts = Accounts.of({
    add: (account) =>
      Effect.gen(function*() {
        const hash = yield* passwords.hash(account.password)
        // A taken name inserts nothing rather than failing, on PostgreSQL and PGlite alike.
        const [row] = yield* sql<Row>`INSERT INTO accounts (kind, tenant_id, username, password_hash, time_zone)
          VALUES (${account.kind}, ${account.tenantId}, ${account.username}, ${hash}, ${account.timeZone})
          ON CONFLICT (kind, username) DO NOTHING
          RETURNING ${columns}`.pipe(Effect.mapError(unavailable))
        if (row === undefined) return yield* new AccountExists({ kind: account.kind, username: account.username })
        return toAccount(row)
      }),
    list: (kind, tenantId) =>
      sql<Row>`SELECT ${columns} FROM accounts
        WHERE ${sql.and([sql`kind = ${kind}`, ...Option.toArray(Option.map(tenantId, (t) => sql`tenant_id = ${t}`))])}
        ORDER BY tenant_id, username`.pipe(Effect.map((rows) => rows.map(toAccount)), Effect.mapError(unavailable)),
    setDisabled: (kind, username, disabled) =>
      one(
        kind,
        username,
        sql<Row>`UPDATE accounts SET disabled = ${disabled}, updated_at = now()
          WHERE kind = ${kind} AND username = ${username} RETURNING ${columns}`
      ),
    setPassword: (kind, username, password) =>
      Effect.flatMap(passwords.hash(password), (hash) =>
        one(
          kind,
          username,
          sql<Row>`UPDATE accounts SET password_hash = ${hash}, updated_at = now()
            WHERE kind = ${kind} AND username = ${username} RETURNING ${columns}`
        ))
  })

  const credentials = AccountCredentials.of({
    find: (kind, username) =>
      // No account has a name the database cannot hold (a NUL): asked, it would fail as if it were down.
      !storableName(username)
        ? Effect.succeedNone
        : sql<Row>`SELECT ${columns} FROM accounts WHERE kind = ${kind} AND username = ${username}`.pipe(
          Effect.map((rows) =>
            Option.map(Option.fromNullable(rows[0]), (row) => ({ account: toAccount(row), passwordHash: row.password_hash }))
          ),
          Effect.mapError(unavailable)
        )
  })

  return Context.make(Accounts, accounts).pipe(Context.add(AccountCredentials, credentials))
})

/** `Accounts` and `AccountCredentials` over the database of `SqlClient`. */
export const layer = Layer.effectContext(make).pipe(Layer.provide(Passwords.Default))
