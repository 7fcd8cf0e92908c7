import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../../../../", import.meta.url))

export interface PipelineProcess {
  readonly child: ChildProcess
  readonly output: () => string
  /** Resolves with the exit code or signal. */
  readonly exited: Promise<number | string>
}

/** `pnpm start`'s program as a separate OS process, so a test can SIGKILL it. */
export const startPipeline = (env: Record<string, string>): PipelineProcess => {
  const child = spawn(process.execPath, ["--import", "tsx", "packages/ingest/src/main.ts"], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout!.on("data", (d) => (output += d))
  child.stderr!.on("data", (d) => (output += d))
  const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)))
  return { child, output: () => output, exited }
}

/** Polls `check` until it returns true, or fails after `timeoutMs` with what the process printed. */
export const until = async (pipeline: PipelineProcess, check: () => Promise<boolean>, timeoutMs: number, what: string) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`timed out waiting for ${what}; the process printed:\n${pipeline.output()}`)
}

export const healthy = (pipeline: PipelineProcess, base: string) =>
  until(pipeline, async () => (await fetch(`${base}/api/v1/health`)).ok, 60_000, "health")
