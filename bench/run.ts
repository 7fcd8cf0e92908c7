/**
 * `pnpm bench`: the worker's load rate, ingest latency, memory and analytics latency, each beside a baseline
 * measured in the same run (this machine is shared and noisy: the ratios mean more than the absolute figures).
 * Progress goes to stderr, the markdown table to stdout, everything to bench/results.json.
 *
 *   pnpm bench                      quick sizes (a few minutes)
 *   pnpm bench --full               the large sizes
 *   pnpm bench --only worker,memory a subset (worker, ingest, memory, analytics, login, observability)
 */
import { NodeRuntime } from "@effect/platform-node"
import * as PostgresDatabase from "@telemetry/testbed/PostgresDatabase"
import { Cause, Effect, type Scope } from "effect"
import { writeFile } from "node:fs/promises"
import pg from "pg"
import { analyticsBenchmark } from "./analytics.js"
import { ingestBenchmark } from "./ingest.js"
import { loginBenchmark } from "./login.js"
import { memoryBenchmark } from "./memory.js"
import { observabilityBenchmark } from "./observability.js"
import { machine, markdown, type Results } from "./report.js"
import { s3rver } from "./services.js"
import { MB, progress, root } from "./support.js"
import { workerBenchmark } from "./worker.js"

const sizes = {
  quick: {
    worker: { readings: 2_000_000, rounds: 1 },
    ingest: { payloadBytes: 10 * MB, requests: { 1: 10, 8: 24 }, rounds: 1 },
    memory: { payloadBytes: 200 * MB },
    analytics: { rows: 1_000_000, requests: 40 },
    login: { accounts: 200, cachedLogins: 2_000, uncachedLogins: 60 },
    observability: { readings: 200_000, rounds: 5 }
  },
  full: {
    worker: { readings: 10_000_000, rounds: 3 },
    ingest: { payloadBytes: 10 * MB, requests: { 1: 20, 8: 48 }, rounds: 3 },
    memory: { payloadBytes: 1000 * MB },
    analytics: { rows: 10_000_000, requests: 100 },
    login: { accounts: 1_000, cachedLogins: 10_000, uncachedLogins: 300 },
    observability: { readings: 1_000_000, rounds: 7 }
  }
} as const

const names = ["worker", "ingest", "memory", "analytics", "login", "observability"] as const
type Name = (typeof names)[number]

const args = process.argv.slice(2)
const mode = args.includes("--full") ? "full" : "quick"
const onlyArg = args.find((a) => a.startsWith("--only"))
const only = onlyArg === undefined
  ? names
  : (onlyArg.includes("=") ? onlyArg.split("=")[1]! : args[args.indexOf(onlyArg) + 1] ?? "").split(",")
const unknown = only.filter((name) => !names.includes(name as Name))
if (unknown.length > 0) {
  process.stderr.write(`pnpm bench: unknown benchmark ${unknown.join(", ")}; choose among ${names.join(", ")}\n`)
  process.exit(2)
}
const chosen = (name: Name) => only.includes(name)

const program = Effect.gen(function*() {
  const size = sizes[mode]
  const started = performance.now()
  yield* progress(`pnpm bench (${mode}): ${only.join(", ")}`)
  const postgres = yield* Effect.promise(async () => {
    const client = new pg.Client({ connectionString: PostgresDatabase.serverUrl() })
    await client.connect()
    const version = (await client.query("SHOW server_version")).rows[0].server_version as string
    await client.end()
    return version
  })
  const storage = yield* s3rver
  const errors: Record<string, string> = {}
  const results: { -readonly [K in keyof Results]?: Results[K] } = {}

  // One failing benchmark is reported and the others still run.
  const run = <A, E>(name: Name, benchmark: Effect.Effect<A, E, Scope.Scope>, keep: (a: A) => void) =>
    chosen(name)
      ? Effect.scoped(benchmark).pipe(
        Effect.tap((a) => Effect.sync(() => keep(a))),
        Effect.catchAllCause((cause) => {
          errors[name] = Cause.pretty(cause).split("\n").slice(0, 6).join(" ")
          return progress(`${name}: failed: ${errors[name]}`)
        }),
        Effect.asVoid
      )
      : Effect.void

  const end = Date.now() - 3_600_000
  yield* run(
    "worker",
    workerBenchmark({
      payload: { readings: size.worker.readings, prefix: "worker", end, span: 2 * 86_400_000 },
      rounds: size.worker.rounds,
      storage
    }),
    (w) => (results.worker = w)
  )
  yield* run("ingest", ingestBenchmark({ storage, ...size.ingest }), (i) => (results.ingest = i))
  yield* run("memory", memoryBenchmark({ storage, ...size.memory }), (m) => (results.memory = m))
  yield* run("analytics", analyticsBenchmark(size.analytics), (a) => (results.analytics = a))
  yield* run("login", loginBenchmark(size.login), (l) => (results.login = l))
  yield* run(
    "observability",
    observabilityBenchmark({
      payload: { readings: size.observability.readings, prefix: "observability", end, span: 2 * 86_400_000 },
      rounds: size.observability.rounds,
      storage
    }),
    (o) => (results.observability = o)
  )

  const report: Results = {
    mode,
    date: new Date().toISOString(),
    machine: machine(`PostgreSQL ${postgres}`),
    seconds: (performance.now() - started) / 1000,
    ...results,
    errors
  }
  yield* Effect.promise(() => writeFile(`${root}bench/results.json`, `${JSON.stringify(report, null, 2)}\n`))
  yield* progress("done: bench/results.json")
  process.stdout.write(markdown(report))
})

NodeRuntime.runMain(Effect.scoped(program))
