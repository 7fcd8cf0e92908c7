import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { runCli } from "./support/cli.js"
import { freshDatabase } from "./support/pipeline.js"

describe("pnpm migrate --json", () => {
  it.scopedLive("prints one JSON document on stdout, its logs on stderr, and applies what it lists", () =>
    Effect.gen(function*() {
      const database = yield* freshDatabase
      const env = { ...database.env, LOG_FORMAT: "json" }
      const up = yield* Effect.promise(() => runCli("migrate", ["up", "--json"], env))
      expect(up.code).toBe(0)
      const applied = JSON.parse(up.stdout)
      expect(applied.pending).toEqual([])
      expect(applied.applied.length).toBeGreaterThan(0)
      expect(up.stderr).toContain("\"message\":\"migrations:")

      const status = yield* Effect.promise(() => runCli("migrate", ["status", "--json"], env))
      expect(JSON.parse(status.stdout).applied.map((m: { name: string }) => m.name))
        .toEqual(applied.applied.map((m: { name: string }) => m.name))
    }), { timeout: 120_000 })

  it.live("a malformed DATABASE_URL is refused as the servers refuse it, not looked up as a host", () =>
    Effect.gen(function*() {
      const refused = yield* Effect.promise(() => runCli("migrate", ["status"], { DATABASE_URL: "notaurl" }))
      expect([refused.code, refused.stdout]).toEqual([1, ""])
      expect(refused.stderr).toContain("DATABASE_URL: \"must be a postgres:// or postgresql:// URL\"")
    }), { timeout: 60_000 })
})
