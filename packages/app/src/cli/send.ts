import { Args, Command, Options } from "@effect/cli"
import { NodeHttpClient } from "@effect/platform-node"
import { Config, Console, Data, Effect, Option, Redacted, Schema } from "effect"
import * as Cli from "./Cli.js"
import * as Payloads from "./send/Payloads.js"
import * as Sender from "./send/Sender.js"
import * as Summary from "./send/Summary.js"

// `pnpm send <file|dir|-> [--url] [--token] [--concurrency] [--attempts] [--json]`: posts payload files to a
// running server's bulk route, as a device does; the summary on stdout, progress on stderr, exit 1 unless every
// payload was accepted (or already had been).

const source = Args.text({ name: "file|dir|-" }).pipe(
  Args.withDescription("a payload file (JSON, or gzip JSON), a directory of *.json and *.json.gz files, or - for stdin")
)
const url = Options.text("url").pipe(
  Options.withFallbackConfig(Config.string("TELEMETRY_URL")),
  Options.withDefault("http://127.0.0.1:8080"),
  Options.withDescription("the server's base URL (env TELEMETRY_URL)")
)
const token = Options.redacted("token").pipe(
  Options.withFallbackConfig(Config.redacted("TELEMETRY_TOKEN")),
  Options.optional,
  Options.withDescription("a device token, sent as its bearer token (env TELEMETRY_TOKEN; pnpm token mints one)")
)
const positive = Schema.Int.pipe(Schema.positive({ message: () => "must be a whole number of at least 1" }))
const concurrency = Options.integer("concurrency").pipe(
  Cli.decodedBy(positive),
  Options.withDefault(4),
  Options.withDescription("payloads in flight at once")
)
const attempts = Options.integer("attempts").pipe(
  Cli.decodedBy(positive),
  Options.withDefault(5),
  Options.withDescription("tries per payload while the server answers 429 or 503 (honouring Retry-After) or cannot be reached")
)
const json = Options.boolean("json").pipe(Options.withDescription("print the summary as one JSON document on stdout"))

/** Every upload needs a token: a run without one would only collect a 401 per file. */
class NoToken extends Data.TaggedError("NoToken")<{}> {
  override get message() {
    return "no token: pass --token or set TELEMETRY_TOKEN to a device token (pnpm token --type device mints one)"
  }
}

class NotAllAccepted extends Data.TaggedError("NotAllAccepted")<{ readonly notAccepted: number; readonly files: number }> {
  override get message() {
    return `${this.notAccepted} of ${this.files} file(s) were not accepted`
  }
}

/** A payload that could not be read is not sent, and fails the run. */
const unreadable = (e: Payloads.PayloadUnreadable): Sender.Result => ({
  file: e.name,
  outcome: "failed",
  status: null,
  claimId: null,
  readings: 0,
  error: "unreadable",
  message: e.message,
  bytes: 0,
  sentBytes: 0,
  attempts: 0
})

const send = Command.make("send", { source, url, token, concurrency, attempts, json }, (options) =>
  Effect.gen(function*() {
    // An empty one, as an env file may set it, is none: every file would be refused 401.
    const given = Option.filter(options.token, (t) => Redacted.value(t).trim() !== "")
    const token = yield* Option.match(given, { onNone: () => Effect.fail(new NoToken()), onSome: Effect.succeed })
    const names = yield* Payloads.namesOf(options.source)
    const sendOne = yield* Sender.make({ ...options, token })
    const results = yield* Effect.scoped(Effect.gen(function*() {
      const bar = yield* Cli.progressBar("send", "files", names.length)
      return yield* Effect.forEach(names, (name) =>
        Payloads.read(name).pipe(
          Effect.matchEffect({ onFailure: (e) => Effect.succeed(unreadable(e)), onSuccess: sendOne }),
          Effect.tap(() => Effect.sync(() => bar.increment()))
        ), { concurrency: options.concurrency })
    }))
    const summary = Summary.summarize(results)
    yield* Console.log(options.json ? JSON.stringify(summary) : Summary.render(summary))
    const notAccepted = Summary.notAccepted(summary)
    if (notAccepted > 0) return yield* new NotAllAccepted({ notAccepted, files: summary.files })
    // undici: node:http's client, answered before it had sent the body and the connection closed, now and then
    // waited for ever for the body's end to be flushed (2 runs in 40 without a token; 0 in 60 with undici).
  }).pipe(Effect.provide(NodeHttpClient.layerUndici))).pipe(
    Command.withDescription(
      "Posts telemetry payload files to a running server (gzip, one Idempotency-Key per file: a rerun stores nothing twice)"
    )
  )

Cli.run(send, "pnpm send")
