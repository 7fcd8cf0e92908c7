import { Command, Options } from "@effect/cli"
import { NodeContext } from "@effect/platform-node"
import { type ClaimCheck, type TimeRange } from "@telemetry/domain"
import * as Replay from "@telemetry/worker/replay/Replay"
import { Config, Console, Effect, Layer, Logger, LogLevel, Option, Ref, type Stream } from "effect"
import * as Infrastructure from "../Infrastructure.js"
import * as Cli from "./Cli.js"

// `pnpm replay dead-letters|stored [--from <ISO>] [--to <ISO>] [--dry-run]`: puts claims back on the queue, with the
// configuration of the worker (the same variables). With Kafka the workers load them; with the in-process queue
// (no KAFKA_BROKERS) there is no other consumer, so this process loads them itself and needs the embedded data
// to itself: it refuses while `pnpm start` runs on it.

const kafkaBrokers = Config.option(Config.string("KAFKA_BROKERS"))

// The queue first: the in-process one takes its lock before the embedded database is opened. Without recovery:
// this replays the range asked for, not every payload left unloaded.
const infrastructure = Layer.mergeAll(Infrastructure.objectStore, Infrastructure.telemetryStore).pipe(
  Layer.provideMerge(Infrastructure.claimQueueWithoutRecovery),
  Layer.provide(NodeContext.layer)
)

// A time with its zone, or a day (from its UTC midnight): a time without one would be read in this machine's zone,
// which need not be the one its operator has in mind.
const INSTANT = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))?$/i

const instant = (name: string, description: string) =>
  Options.text(name).pipe(
    Options.withPseudoName("time"),
    Options.filterMap(
      (text) => (INSTANT.test(text) && !Number.isNaN(Date.parse(text)) ? Option.some(new Date(text)) : Option.none()),
      "expected an ISO-8601 time with its zone, e.g. 2026-11-20T00:00:00Z or 2026-11-20T00:00-03:00, or a day, e.g. 2026-11-20 (from 00:00 UTC)"
    ),
    Options.optional,
    Options.withDescription(description)
  )

const from = instant("from", "start of the range, inclusive (e.g. 2026-11-20T00:00:00Z); default: the beginning")
const to = instant("to", "end of the range, exclusive (e.g. 2026-11-21, from 00:00 UTC); default: now")
const dryRun = Options.boolean("dry-run").pipe(Options.withDescription("count what would be replayed, replay nothing"))

interface RangeOptions {
  readonly from: Option.Option<Date>
  readonly to: Option.Option<Date>
  readonly dryRun: boolean
}

const rangeOf = (options: RangeOptions): TimeRange => ({
  from: Option.getOrUndefined(options.from),
  to: Option.getOrElse(options.to, () => new Date())
})

const describe = (range: TimeRange) => `from ${range.from?.toISOString() ?? "the beginning"} to ${range.to?.toISOString()}`

const execute = <E, R>(
  what: string,
  candidates: (range: TimeRange) => Stream.Stream<ClaimCheck, E, R>,
  options: RangeOptions,
  report: (summary: Replay.Summary) => Effect.Effect<string>
) =>
  Effect.gen(function*() {
    const range = rangeOf(options)
    const loadHere = Option.isNone(yield* kafkaBrokers)
    const summary = yield* Effect.scoped(Effect.gen(function*() {
      // Its total grows as claims to replay are found.
      const bar = yield* Cli.progressBar("replay", "claims", 0)
      return yield* Replay.replay(candidates(range), {
        dryRun: options.dryRun,
        loadHere,
        progress: {
          found: Effect.sync(() => bar.setTotal(bar.getTotal() + 1)),
          replayed: Effect.sync(() => bar.increment())
        }
      })
    }))
    const replayed = options.dryRun
      ? `would replay ${summary.replayed}`
      : loadHere
      ? `handled ${summary.replayed} here: ${summary.replayed - summary.rejectedAgain} loaded, ${summary.rejectedAgain} dead-lettered`
      : `re-published ${summary.replayed}`
    yield* Console.log(
      `${what} ${describe(range)}: ${summary.candidates} claim(s)${yield* report(summary)}, ` +
        `${summary.alreadyLoaded} already loaded; ` +
        `${summary.payloadGone > 0 ? `${summary.payloadGone} whose payload is gone from storage, left alone; ` : ""}${replayed}`
    )
  }).pipe(
    Effect.provide(infrastructure),
    // Not in a new empty deployment: it would find nothing to replay, and say so.
    (program) => Effect.zipRight(Infrastructure.existingDatabase, program),
    // Per-claim lines would tear the progress bar apart; warnings and errors still show.
    Logger.withMinimumLogLevel(LogLevel.Warning)
  )

const deadLetters = Command.make("dead-letters", { from, to, dryRun }, (options) =>
  Effect.flatMap(Ref.make(0), (notClaims) =>
    execute(
      "dead letters",
      (range) => Replay.deadLetterClaims(range, notClaims),
      options,
      () => Effect.map(Ref.get(notClaims), (n) => (n > 0 ? ` (and ${n} message(s) that are not claims, left alone)` : ""))
    ))).pipe(Command.withDescription("Re-publishes the claims of the dead letters kept in the range (by failure time)"))

const stored = Command.make("stored", { from, to, dryRun }, (options) =>
  execute("stored payloads", Replay.storedClaims, options, () => Effect.succeed(""))).pipe(
    Command.withDescription("Re-publishes the claims of the payloads stored in the range (by receive time) that are not loaded")
  )

const replay = Command.make("replay").pipe(
  Command.withDescription("Puts claims back on the queue; the ledger keeps any claim from loading twice"),
  Command.withSubcommands([deadLetters, stored])
)

Cli.run(replay, "pnpm replay")
