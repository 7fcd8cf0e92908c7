import { Command, Options } from "@effect/cli"
import * as AuthConfig from "@telemetry/ingest/auth/AuthConfig"
import { Tokens } from "@telemetry/ingest/auth/Tokens"
import { Console, Effect, Layer, Option } from "effect"
import * as Cli from "./Cli.js"

// `pnpm token --type device|reader --tenant <t> --subject <s> [--expires 30d] [--timezone <zone>]`: prints a bearer
// token signed with the secret the server uses (AUTH_SECRET, else an embedded pipeline's AUTH_SECRET_FILE). The
// token alone goes to stdout, for `TOKEN=$(pnpm -s token ...)`; what it grants goes to stderr.

const type = Options.choice("type", ["device", "reader"]).pipe(
  Options.withDescription("device: may only ingest, as the device --subject; reader: may only read analytics")
)
const tenant = Options.text("tenant").pipe(Options.withDescription("the tenant whose data the token writes or reads"))
const subject = Options.text("subject").pipe(
  Options.withDescription("the device id (device tokens: it keys the device's claims and limits), or the reader's name")
)
const expires = Options.text("expires").pipe(
  Options.withDefault("30d"),
  Options.withDescription("lifetime: e.g. 90m, 12h, 30d, 1y")
)

const timeZone = Options.text("timezone").pipe(
  Options.optional,
  Options.withDescription("device tokens: IANA time zone of the device's reading times sent without a zone")
)

const command = Command.make("token", { type, tenant, subject, expires, timeZone }, (options) =>
  Effect.gen(function*() {
    const tokens = yield* Tokens
    const minted = yield* tokens.mint({
      userType: options.type,
      tenantId: options.tenant,
      subject: options.subject,
      expiresIn: options.expires,
      timeZone: Option.getOrNull(options.timeZone)
    })
    yield* Console.error(
      `${options.type} token of tenant "${options.tenant}" for "${options.subject}", valid until ` +
        minted.expiresAt.toISOString()
    )
    yield* Console.log(minted.token)
    const { source } = yield* AuthConfig.AuthKeys
    if (source._tag === "File" && source.created) {
      yield* Console.error(
        `warning: AUTH_SECRET is not set and ${source.path} did not exist: a new secret was generated there, which no ` +
          "running server knows: run this in the server's directory, or set AUTH_SECRET as the server has it"
      )
    }
    // Resolved only here, so that --help neither needs the secret nor creates its file.
  }).pipe(Effect.provide(Tokens.DefaultWithoutDependencies.pipe(Layer.provideMerge(AuthConfig.layer))))).pipe(Command.withDescription("Mints a bearer token (JWT) that the ingest server accepts"))

Cli.run(command, "pnpm token")
