import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../../../../", import.meta.url))

export interface CliResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/**
 * One of our command lines (`packages/app/src/cli/<name>.ts`, as `pnpm <name>` runs it) as a child process, given
 * `input` on its standard input if any.
 */
export const runCli = (name: string, args: ReadonlyArray<string>, env: Record<string, string>, input?: Uint8Array) =>
  new Promise<CliResult>((resolve) => {
    const child = execFile(
      process.execPath,
      ["--import", "tsx", `packages/app/src/cli/${name}.ts`, ...args],
      { cwd: root, env: { ...process.env, ...env } },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr })
    )
    if (input !== undefined) child.stdin?.end(input)
  })
