import { type Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import * as CliCommand from "@effect/cli/Command"
import { defaultTeardown } from "@effect/platform/Runtime"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { SingleBar } from "cli-progress"
import { Console, Effect, Layer, ParseResult, Schema } from "effect"
import { stripVTControlCharacters } from "node:util"
import * as Logging from "../Logging.js"
import * as Memory from "../Memory.js"

/**
 * Runs `command` as this process's command line (`pnpm <name> ...`): @effect/cli shows its usage errors itself;
 * our own failures are told in one sentence on stderr, and the process exits 1. Logs go to stderr too: stdout
 * carries the command's result alone.
 */
export const run = <Name extends string, E, A>(command: Command.Command<Name, NodeContext.NodeContext, E, A>, name: string) => {
  // `pnpm replay` loads payloads as a worker does, `pnpm send` streams them.
  Memory.sweepArrayBuffersOnCollectingThread()
  return CliCommand.run(command, { name, version: "1.0.0" })(process.argv).pipe(
    Effect.tapError((error) =>
      ValidationError.isValidationError(error)
        ? Effect.void
        : Console.error(`${name}: ${error instanceof Error ? error.message : String(error)}`)
    ),
    Effect.provide(Layer.merge(NodeContext.layer, Logging.stderrLayer)),
    plainWhereNoTerminal,
    (program) =>
      NodeRuntime.runMain(program, { disableErrorReporting: true, disablePrettyLogger: true, teardown: exitOnceWritten })
  )
}

/**
 * Exits once the command is done and its output written: a client it used may leave a socket or timer behind
 * (kafkajs, after a disconnect cut short by a rebalance), which kept `pnpm status` running for ever after its report.
 */
const exitOnceWritten: typeof defaultTeardown = (exit, onExit) =>
  defaultTeardown(exit, (code) => {
    onExit(code)
    process.stdout.write("", () => process.stderr.write("", () => process.exit(code)))
  })

const colour = (stream: NodeJS.WriteStream) => stream.isTTY === true && process.env.NO_COLOR === undefined
const plain = (stream: NodeJS.WriteStream, parts: ReadonlyArray<unknown>) =>
  colour(stream) ? parts : parts.map((part) => typeof part === "string" ? stripVTControlCharacters(part) : part)

/**
 * `program` with its console's text going without colour codes to a stream that is no terminal (or with `NO_COLOR`
 * set): @effect/cli writes its help and usage errors in colour always, noise in a file or a pipe.
 */
const plainWhereNoTerminal = <A, E, R>(program: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.console, (console) =>
    Effect.withConsole(program, {
      ...console,
      log: (...parts) => console.log(...plain(process.stdout, parts)),
      error: (...parts) => console.error(...plain(process.stderr, parts))
    }))

/**
 * `Options.withSchema`, a failure told by the schema's own message for the first issue ("a password has at least 8
 * characters"), not the tree of refinements and transformations it went through.
 */
export const decodedBy = <A, I>(schema: Schema.Schema<A, I>) => (options: Options.Options<I>): Options.Options<A> =>
  Options.mapEffect(options, (value) =>
    Effect.mapError(Schema.decodeUnknown(schema)(value), (error) =>
      ValidationError.invalidValue(HelpDoc.p(ParseResult.ArrayFormatter.formatErrorSync(error)[0]?.message ?? "invalid"))))

/** Rows as columns, padded to the widest cell, the first row the heading. */
export const columns = (rows: ReadonlyArray<ReadonlyArray<string>>) => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)))
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n")
}

/**
 * A progress bar on stderr (stdout stays for the result), `<name> [bar] value/total <unit> | elapsed`, stopped with
 * the scope; without a terminal, a line every 5 s.
 */
export const progressBar = (name: string, unit: string, total: number) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const bar = new SingleBar({
        stream: process.stderr,
        format: `${name} [{bar}] {value}/{total} ${unit} | {duration_formatted}`,
        noTTYOutput: true,
        notTTYSchedule: 5000
      })
      bar.start(total, 0)
      return bar
    }),
    (bar) => Effect.sync(() => bar.stop())
  )
