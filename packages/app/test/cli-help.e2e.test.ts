import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { runCli } from "./support/cli.js"

// Help and usage errors piped (into a file, `less`, a script) come without colour codes.
const COMMANDS = ["device", "migrate", "replay", "send", "status", "token", "user"]
const ESCAPE = "\x1b["

describe("our command lines without a terminal", () => {
  it.each(COMMANDS)("pnpm %s: --help and a usage error in plain text", async (name) => {
    const help = await runCli(name, ["--help"], {})
    expect(help.code).toBe(0)
    expect(help.stdout).toContain("USAGE")
    expect(help.stdout).not.toContain(ESCAPE)
    const wrong = await runCli(name, ["--no-such-option"], {})
    expect(wrong.code).toBe(1)
    const told = wrong.stdout + wrong.stderr
    expect(told.trim()).not.toBe("")
    expect(told).not.toContain(ESCAPE)
  }, 60_000)
})

describe("our command lines, done", () => {
  it("exit though their work left a timer running", async () => {
    const script = fileURLToPath(new URL("./support/lingering.ts", import.meta.url))
    const run = await new Promise<{ code: number | null; signal: string | null; stdout: string }>((resolve) =>
      execFile(process.execPath, ["--import", "tsx", script], { timeout: 30_000 }, (error, stdout) =>
        resolve({ code: error ? (typeof error.code === "number" ? error.code : null) : 0, signal: error?.signal ?? null, stdout })))
    expect(run).toEqual({ code: 0, signal: null, stdout: "done\n" })
  }, 60_000)
})
