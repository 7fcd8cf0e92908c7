import { Command, Options } from "@effect/cli"
import { type Account, type AccountKind, Accounts, Password, Username } from "@telemetry/ingest/auth/Accounts"
import { Name, TimeZoneName } from "@telemetry/ingest/auth/Tokens"
import { Console, Effect, Logger, LogLevel, Option } from "effect"
import { randomBytes } from "node:crypto"
import * as AccountsTarget from "./AccountsTarget.js"
import { columns, decodedBy } from "./Cli.js"

// `pnpm device add|list|disable|enable|passwd` and `pnpm user ...` (reader accounts): one command line per kind of
// account. Messages go to stderr; stdout carries only what a script wants (a generated password, the list).

const username = Options.text("username").pipe(decodedBy(Username), Options.withDescription("the login name"))
const password = Options.text("password").pipe(
  decodedBy(Password),
  Options.optional,
  Options.withDescription("the password (at least 8 characters); without it one is generated and printed, once")
)
const tenant = Options.text("tenant").pipe(decodedBy(Name))

/** 24 characters of base64url: 144 random bits. */
const generated = () => randomBytes(18).toString("base64url")

/** Runs one account operation where the accounts are (AccountsTarget); `--help` needs neither. */
const run = <A, E>(operation: Effect.Effect<A, E, Accounts>) =>
  operation.pipe(
    Effect.provide(AccountsTarget.layer),
    // Migrations and the database log at Info; stdout is for the answer.
    Logger.withMinimumLogLevel(LogLevel.Warning)
  )

/** Prints a password the user did not choose: it is shown this once, and stored only as a hash. */
const showGenerated = (chosen: Option.Option<string>, actual: string) =>
  Option.isSome(chosen) ? Effect.void : Effect.zipRight(
    Console.error("Its password, shown only now (store it in the client; it is kept only as a hash):"),
    Console.log(actual)
  )

export const accountCommand = <const Name extends string>(name: Name, kind: AccountKind) => {
  const what = kind === "device" ? "device" : "reader"
  const timeZone = Options.text("timezone").pipe(
    decodedBy(TimeZoneName),
    Options.optional,
    Options.withDescription("IANA time zone of the device's reading times sent without a zone, e.g. America/Sao_Paulo")
  )

  const add = Command.make(
    "add",
    {
      tenant: tenant.pipe(Options.withDescription(`the tenant whose data the ${what} ${kind === "device" ? "writes" : "reads"}`)),
      username,
      password,
      ...(kind === "device" ? { timeZone } : {})
    },
    (options) =>
      run(Effect.gen(function*() {
        const chosen = options.password
        const secret = Option.getOrElse(chosen, generated)
        const timeZone = "timeZone" in options ? Option.getOrNull(options.timeZone as Option.Option<string>) : null
        const account = yield* (yield* Accounts).add({
          kind,
          tenantId: options.tenant,
          username: options.username,
          password: secret,
          timeZone
        })
        yield* Console.error(
          `Created the ${what} account "${account.username}" of tenant "${account.tenantId}"` +
            (account.timeZone ? `, reading times without a zone in ${account.timeZone}.` : ".")
        )
        yield* showGenerated(chosen, secret)
      }))
  ).pipe(Command.withDescription(`Creates a ${what} account`))

  const list = Command.make(
    "list",
    { tenant: tenant.pipe(Options.optional, Options.withDescription("only this tenant's accounts")) },
    (options) =>
      run(Effect.gen(function*() {
        const accounts = yield* (yield* Accounts).list(kind, options.tenant)
        if (accounts.length === 0) return yield* Console.error(`No ${what} accounts.`)
        const row = (a: Account) => [
          a.username,
          a.tenantId,
          ...(kind === "device" ? [a.timeZone ?? "-"] : []),
          a.disabled ? "disabled" : "enabled",
          a.createdAt.toISOString()
        ]
        const header = ["USERNAME", "TENANT", ...(kind === "device" ? ["TIME ZONE"] : []), "STATUS", "CREATED"]
        yield* Console.log(columns([header, ...accounts.map(row)]))
      }))
  ).pipe(Command.withDescription(`Lists the ${what} accounts`))

  const setDisabled = (disabled: boolean) =>
    Command.make(disabled ? "disable" : "enable", { username }, (options) =>
      run(Effect.gen(function*() {
        const account = yield* (yield* Accounts).setDisabled(kind, options.username, disabled)
        yield* Console.error(
          disabled
            ? `Disabled the ${what} account "${account.username}": its logins and refreshes are refused (tokens it ` +
              "already holds stay valid until they expire)."
            : `Enabled the ${what} account "${account.username}".`
        )
      }))).pipe(Command.withDescription(disabled ? `Disables a ${what} account` : `Enables a disabled ${what} account`))

  const passwd = Command.make("passwd", { username, password }, (options) =>
    run(Effect.gen(function*() {
      const secret = Option.getOrElse(options.password, generated)
      const account = yield* (yield* Accounts).setPassword(kind, options.username, secret)
      yield* Console.error(`Changed the password of the ${what} account "${account.username}".`)
      yield* showGenerated(options.password, secret)
    }))).pipe(Command.withDescription(`Sets a ${what} account's password`))

  return Command.make(name).pipe(
    Command.withDescription(
      `Manages ${what} accounts, which log in with username and password ` +
        (kind === "device" ? "(POST /api/v1/auth/device/login) to ingest" : "(POST /api/v1/auth/login) to read analytics")
    ),
    Command.withSubcommands([add, list, setDisabled(true), setDisabled(false), passwd])
  )
}
