import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { spawn } from "node:child_process"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as DirectoryLock from "../src/DirectoryLock.js"

const root = fileURLToPath(new URL("../../../", import.meta.url))

const LOCKS = 200

/**
 * `support/lock-holder.ts` in a process of its own, trying the locks in `directory` from `start`: what it said of
 * each, once it tried them all, and the means to let them go (its stdin ended) and await its exit.
 */
const contender = (directory: string, start: number) =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, ["--import", "tsx", "packages/infra/test/support/lock-holder.ts", directory, String(LOCKS), String(start)], {
          cwd: root,
          stdio: ["pipe", "pipe", "inherit"]
        })
      ),
      (child) => Effect.sync(() => child.kill("SIGKILL"))
    )
    const exited = new Promise<void>((resolve) => child.on("close", () => resolve()))
    const lines = yield* Effect.async<ReadonlyArray<string>>((resume) => {
      let out = ""
      child.stdout.on("data", (d) => {
        out += d
        const said = out.split("\n").filter((line) => line !== "")
        if (said.length === LOCKS) resume(Effect.succeed(said))
      })
    })
    return { lines, letGo: Effect.promise(() => (child.stdin.end(), exited)) }
  })

describe("DirectoryLock", () => {
  // Created empty, then written: taken for a broken lock meanwhile, it was removed and taken by a second process
  // (CI saw two holders of one lock in the test below).
  it.live("an empty lock created a moment ago is waited for, as its process is writing it", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const directory = yield* fs.makeTempDirectoryScoped()
      const lock = join(directory, "owner.pid")
      yield* fs.writeFileString(lock, "")
      const taking = yield* Effect.fork(Effect.scoped(DirectoryLock.hold(lock, "the directory")))
      yield* Effect.sleep("100 millis")
      // Its creator, a running process, writes its pid.
      yield* fs.writeFileString(lock, String(process.ppid))
      expect(yield* Effect.flip(Fiber.join(taking))).toMatchObject({
        _tag: "LockError",
        message: `the directory is in use by process ${process.ppid}; stop that process first`
      })
      expect(yield* fs.readFileString(lock)).toBe(String(process.ppid))
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)))

  // As two `pnpm start`s on one data directory, started together: the embedded database must have one holder.
  it.live("of processes trying it at once, exactly one takes it, the others told who holds it", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const directory = yield* fs.makeTempDirectoryScoped()
      // Once every process has started.
      const start = Date.now() + 4_000
      const contenders = yield* Effect.all(Array.from({ length: 3 }, () => contender(directory, start)), { concurrency: "unbounded" })
      for (let i = 0; i < LOCKS; i++) {
        const said = contenders.map(({ lines }) => lines.find((line) => line.startsWith(`${i} `)))
        expect(said.filter((line) => line === `${i} took`), said.join(" | ")).toHaveLength(1)
        for (const line of said.filter((line) => line !== `${i} took`)) {
          expect(line).toMatch(new RegExp(`^${i} refused: lock ${i} is in use by process \\d+; stop that process first$`))
        }
      }
      // Let go, and nothing left behind.
      yield* Effect.forEach(contenders, (c) => c.letGo)
      expect(yield* fs.readDirectory(directory)).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)), { timeout: 60_000 })
})
