import { Command, Options } from "@effect/cli"
import { Console, Data, Duration, Effect, Logger, LogLevel } from "effect"
import * as Infrastructure from "../Infrastructure.js"
import * as Cli from "./Cli.js"
import * as StatusReport from "./StatusReport.js"

// `pnpm status [--since <duration>] [--json]`: the pipeline as the services see it, with their configuration (the
// same variables). The report goes to stdout; logs to stderr. Exits 1 when a dependency is down, after printing.

class DependenciesDown extends Data.TaggedError("DependenciesDown")<{ readonly names: ReadonlyArray<string> }> {
  override get message() {
    return `${this.names.join(", ")} ${this.names.length === 1 ? "is" : "are"} down`
  }
}

const json = Options.boolean("json").pipe(Options.withDescription("print one JSON document on stdout"))
const since = Options.text("since").pipe(
  Options.withPseudoName("duration"),
  Options.withDefault("24 hours"),
  Options.filterMap((text) => Duration.decodeUnknown(text), "expected a duration, e.g. \"24 hours\" or \"30 minutes\""),
  Options.withDescription("count the dead letters kept within this long (default 24 hours)")
)

const status = Command.make("status", { json, since }, ({ json, since }) =>
  Effect.gen(function*() {
    yield* Infrastructure.existingDatabase
    const report = yield* StatusReport.gather(since)
    yield* Console.log(json ? JSON.stringify(report) : StatusReport.render(report))
    const names = report.dependencies.filter((d) => d.status === "down").map((d) => d.name)
    if (names.length > 0) return yield* new DependenciesDown({ names })
  }).pipe(
    // Logs (Kafka's, storage's, the migrations'), warnings and worse.
    Logger.withMinimumLogLevel(LogLevel.Warning)
  )).pipe(Command.withDescription("Shows the dependencies' health, consumer lag, dead letters, maintenance jobs and watermarks"))

Cli.run(status, "pnpm status")
