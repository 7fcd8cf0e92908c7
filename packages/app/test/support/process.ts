import { freePort } from "@telemetry/testbed/FreePort"
import { imageEnvironment } from "@telemetry/testbed/ImageEnvironment"
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { fixtureEnv } from "./fixtures.js"

const root = fileURLToPath(new URL("../../../../", import.meta.url))

export interface PipelineProcess {
  readonly child: ChildProcess
  readonly output: () => string
  /** Resolves with the exit code or signal once all the process printed has been read. */
  readonly exited: Promise<number | string>
}

/**
 * A program of ours as a separate OS process, so a test can SIGKILL it: a TypeScript source through tsx, or a build;
 * through `launcher` (a command that runs its arguments) if given.
 */
const startProgram = (
  entry: string,
  env: Record<string, string>,
  args: ReadonlyArray<string> = [],
  launcher: ReadonlyArray<string> = []
): PipelineProcess => {
  const [file, ...rest] = [...launcher, process.execPath, ...(entry.endsWith(".ts") ? ["--import", "tsx"] : []), entry, ...args]
  const child = spawn(file!, rest, {
    cwd: root,
    env: { ...process.env, ...fixtureEnv, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout!.on("data", (d) => (output += d))
  child.stderr!.on("data", (d) => (output += d))
  // "close", not "exit": at "exit" the last of its output may still be in the pipes.
  const exited = new Promise<number | string>((resolve) => child.on("close", (code, signal) => resolve(code ?? signal ?? -1)))
  return { child, output: () => output, exited }
}

/** A program of ours started with `start`, SIGKILLed with the scope if it is still running. */
export const started = (start: () => PipelineProcess) =>
  Effect.acquireRelease(Effect.sync(start), (p) => Effect.sync(() => p.child.kill("SIGKILL")))

/** `pnpm start`'s program: ingest and analytics over HTTP, and a worker unless `RUN_WORKER=false`. */
export const startPipeline = (env: Record<string, string>) => startProgram("packages/app/src/main/start.ts", env)

/**
 * `pnpm start`'s program with `dir` on a file system of its own, `bytes` large (tmpfs, in a mount namespace of the
 * process: nothing to unmount). The test reaches that file system through `/proc/<pid>/root` (`seenBy`).
 */
export const startPipelineWithDisk = (env: Record<string, string>, dir: string, bytes: number) =>
  startProgram("packages/app/src/main/start.ts", env, [], [
    "unshare",
    "--mount",
    "sh",
    "-c",
    `mount -t tmpfs -o size=${bytes} tmpfs "$0" && exec "$@"`,
    dir
  ])

/** `path` as `program` sees it, in its own mount namespace. */
export const seenBy = (program: PipelineProcess, path: string) => `/proc/${program.child.pid}/root${path}`

/** `pnpm ingest`'s program: ingest and analytics over HTTP, without a worker. */
export const startIngestOnly = (env: Record<string, string>) => startProgram("packages/app/src/main/ingest.ts", env)

/** `pnpm worker`'s program; its metrics server on any free port unless `env` names one (workers run side by side). */
export const startWorker = (env: Record<string, string>) =>
  startProgram("packages/app/src/main/worker.ts", { METRICS_PORT: "0", ...env })

/** A program of `pnpm build`, as the image runs it: `dist/<entry>` (e.g. `main/ingest.js`) in its environment. */
export const startCompiled = (entry: string, env: Record<string, string>) =>
  startProgram(`dist/${entry}`, { ...imageEnvironment, ...env })

/** `pnpm replay <args>`'s program. */
export const startReplay = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  startProgram("packages/app/src/cli/replay.ts", env, args)

/** Polls `check` until it returns true, or fails after `timeoutMs` with what the process printed. */
export const until = async (pipeline: PipelineProcess, check: () => Promise<boolean>, timeoutMs: number, what: string) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`timed out waiting for ${what}; the process printed:\n${pipeline.output()}`)
}

/** Opening a new embedded database takes a minute on a loaded 2-core machine: startup gets twice that. */
export const healthy = (pipeline: PipelineProcess, base: string) =>
  until(pipeline, async () => (await fetch(`${base}/api/v1/health`)).ok, 120_000, "health")

/**
 * `pnpm start`'s program without its worker (`RUN_WORKER=false`) on a free port, with `env`, SIGKILLed with the
 * scope; once it answers health.
 */
export const startedIngest = (env: Record<string, string>) =>
  Effect.gen(function*() {
    const port = yield* Effect.promise(freePort)
    const base = `http://127.0.0.1:${port}`
    const ingest = yield* started(() => startPipeline({ ...env, PORT: String(port), RUN_WORKER: "false" }))
    yield* Effect.promise(() => healthy(ingest, base))
    return { ingest, base }
  })
