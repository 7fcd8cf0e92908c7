/** What every benchmark needs: progress lines, statistics, child processes, the test bed's stand-ins. */
import * as PostgresDatabase from "@telemetry/testbed/PostgresDatabase"
import { Duration, Effect, Schedule } from "effect"
import { SignJWT } from "jose"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import pg from "pg"

export const root = fileURLToPath(new URL("../", import.meta.url))

const started = Date.now()

/** A progress line, on stderr so that stdout carries only the table. */
export const progress = (message: string) =>
  Effect.sync(() => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}\n`))

/** Linear interpolation between closest ranks, as percentile_cont does. */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const rank = p * (sorted.length - 1)
  const low = Math.floor(rank)
  const high = Math.ceil(rank)
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (rank - low)
}

export const median = (values: ReadonlyArray<number>) => percentile(values, 0.5)

/** Runs `effect` and answers its result with the wall time it took, in milliseconds. */
export const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = performance.now()
    const result = yield* effect
    return [result, performance.now() - start] as const
  })

export const MB = 1_000_000
export const MiB = 1024 * 1024

export { freePort } from "@telemetry/testbed/FreePort"

/** A fresh database on the local PostgreSQL, dropped with the scope. */
export const freshDatabase = Effect.acquireRelease(
  Effect.promise(PostgresDatabase.create),
  (db) => Effect.promise(db.drop)
)

export const psql = (url: string, command: string) =>
  Effect.promise(() => promisify(execFile)("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", command]))

export interface Program {
  readonly pid: number
  readonly output: () => string
  /** Peak resident set size so far (VmHWM), in bytes. */
  readonly peakRss: () => number
}

/** Bytes of a `/proc/<pid>/status` field given in kB. */
const statusBytes = (pid: number, field: string): number => {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"))
  return match ? Number(match[1]) * 1024 : NaN
}

const stop = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000)
    child.once("exit", () => {
      clearTimeout(timer)
      resume(Effect.void)
    })
    child.kill("SIGTERM")
  })

/** `BENCH_VERBOSE=1`: the programs' output goes to stderr too. */
const verbose = process.env["BENCH_VERBOSE"] === "1"

/** Node options for our programs, e.g. `BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof"` to profile them. */
export const nodeFlags = (process.env["BENCH_NODE_FLAGS"] ?? "").split(" ").filter((flag) => flag !== "")

/** A program (TypeScript through tsx, or compiled JavaScript) run as its own OS process (so its memory can be read), stopped with the scope. */
export const program = (entry: string, env: Record<string, string>, flags: ReadonlyArray<string> = []) =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, [...flags, ...(entry.endsWith(".ts") ? ["--import", "tsx"] : []), entry], {
          cwd: root,
          // Only what it is given: settings in the benchmark's own environment (S3_ENDPOINT, ...) would change it.
          env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "", ...env },
          stdio: ["ignore", "pipe", "pipe"]
        })
      ),
      stop
    ),
    (child): Program => {
      let output = ""
      const keep = (data: Buffer) => {
        // The last 64 kB are enough to tell why it failed.
        output = (output + data.toString()).slice(-65_536)
        if (verbose) process.stderr.write(data)
      }
      child.stdout!.on("data", keep)
      child.stderr!.on("data", keep)
      return { pid: child.pid!, output: () => output, peakRss: () => statusBytes(child.pid!, "VmHWM") }
    }
  )

/** Retries `check` every 100 ms until it succeeds, for at most `timeout`. */
export const waitFor = <A, E, R>(what: string, check: Effect.Effect<A, E, R>, timeout = Duration.seconds(90)) =>
  check.pipe(
    Effect.retry(Schedule.spaced(Duration.millis(100))),
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error(`timed out waiting for ${what}`) })
  )

/**
 * Waits for the HTTP server of `app` at `base` to answer `path` (its health check, by default) with a success;
 * on time-out, tells what the process printed.
 */
export const healthy = (app: Program, base: string, path = "/api/v1/health", timeout?: Duration.Duration) =>
  waitFor(
    `${base}${path}`,
    Effect.tryPromise(() => fetch(`${base}${path}`)).pipe(
      Effect.filterOrFail((response) => response.ok, () => new Error("not healthy yet"))
    ),
    timeout
  ).pipe(Effect.mapError((e) => new Error(`${e.message}; the process printed:\n${app.output()}`)))

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat; 0 once it is gone. */
export const cpuSeconds = (pid: number): number => {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    // utime and stime, fields 14 and 15 of stat(5), in clock ticks (USER_HZ, 100 on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}

export const AUTH_SECRET = "bench-secret-with-at-least-32-bytes-of-entropy"

/** A bearer token for the ingest service (HS256 with AUTH_SECRET). */
export const token = (userType: "device" | "reader", subject: string) =>
  Effect.promise(() =>
    new SignJWT({ tenant_id: "default", user_type: userType })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(subject)
      .setExpirationTime("2h")
      .sign(new TextEncoder().encode(AUTH_SECRET))
  )

export const formatRate = (perSecond: number) =>
  perSecond >= 1e6 ? `${(perSecond / 1e6).toFixed(2)} M` : perSecond >= 1e3 ? `${(perSecond / 1e3).toFixed(0)} k` : perSecond.toFixed(0)

/** A connection to `url` for the benchmark's own queries, closed with the scope. */
export const pgClient = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.end())
  )
