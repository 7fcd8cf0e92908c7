import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { runCli } from "./support/cli.js"
import { tempDir } from "./support/pipeline.js"

// The commands that look at a deployment, run where none is (a mistyped directory, or on the host of a compose
// stack whose variables live in its containers), used to make a new empty one and report on it: "0 claim(s)",
// every dependency up, 15 migrations pending.

describe("pnpm status, migrate status and replay where no deployment is", () => {
  it.scopedLive("refuse, naming the directory, and create nothing; once a database exists there, they run", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const root = join(dir, "mistyped")
      const database = join(root, "pg")
      const env = {
        EMBEDDED_DB_DIR: database,
        STORAGE_DIR: join(root, "objects"),
        EMBEDDED_QUEUE_DIR: join(root, "queue")
      }
      const commands = [["status", ["--json"]], ["migrate", ["status"]], ["replay", ["stored", "--dry-run"]]] as const
      for (const [name, args] of commands) {
        const run = yield* Effect.promise(() => runCli(name, args, env))
        expect([name, run.code, run.stdout]).toEqual([name, 1, ""])
        expect(run.stderr).toContain(`pnpm ${name}: no embedded database in ${database} (EMBEDDED_DB_DIR`)
      }
      expect(existsSync(root)).toBe(false)

      // `migrate up` creates it; then `migrate status` reads it.
      const up = yield* Effect.promise(() => runCli("migrate", ["up"], env))
      expect(up.code).toBe(0)
      const status = yield* Effect.promise(() => runCli("migrate", ["status"], env))
      expect([status.code, status.stdout]).toEqual([0, expect.stringMatching(/ applied, 0 pending\n$/)])
    }), { timeout: 120_000 })
})
