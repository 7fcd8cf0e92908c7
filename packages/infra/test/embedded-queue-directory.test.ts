import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { ClaimQueue, ClaimRejected, DeadLetter } from "@telemetry/domain"
import { claim } from "@telemetry/domain/testing"
import { Chunk, Deferred, Effect, Fiber, Layer, Stream } from "effect"
import { spawn, spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as EmbeddedClaimQueue from "../src/queue/embedded/EmbeddedClaimQueue.js"

/** The in-process queue keeping its dead letters and lock in `directory`. */
const queueIn = (directory: string) =>
  EmbeddedClaimQueue.layer({ capacity: 10, publishTimeout: "1 second", directory }).pipe(
    Layer.provide(NodeContext.layer)
  )

const deadLettersIn = (directory: string) =>
  Stream.unwrap(Effect.map(ClaimQueue, (queue) => queue.deadLetters({}))).pipe(
    Stream.runCollect,
    Effect.map(Chunk.toReadonlyArray),
    Effect.provide(queueIn(directory))
  )

describe("the in-process queue's directory", () => {
  it.scoped("keeps the dead letters on disk for the next process that holds it, past a line cut short", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const directory = yield* fs.makeTempDirectoryScoped()
      const [rejected, next] = [claim(), claim()]
      yield* Effect.gen(function*() {
        const queue = yield* ClaimQueue
        yield* queue.publish(rejected)
        yield* queue.publish(next)
        const reached = yield* Deferred.make<void>()
        const consumer = yield* Effect.fork(queue.consume((c) =>
          c.claim_id === rejected.claim_id
            ? Effect.fail(new ClaimRejected({ reason: "invalid_payload", message: "not JSON", attempts: 1 }))
            : Deferred.succeed(reached, undefined)
        ))
        // One claim at a time: once the next one is handled, the first one's dead letter was written.
        yield* Deferred.await(reached)
        yield* Fiber.interrupt(consumer)
        expect(yield* queue.backlog).toMatchObject({ pending: 0 })
      }).pipe(Effect.provide(queueIn(directory)))

      const file = join(directory, "dead-letters.jsonl")
      expect((yield* fs.readFileString(file)).split("\n").filter((line) => line.length > 0)).toHaveLength(1)
      const expected = new DeadLetter({
        claim: rejected,
        reason: "invalid_payload",
        error: "not JSON",
        attempts: 1,
        // The test clock's start.
        failedAt: new Date(0),
        source: "embedded queue"
      })
      expect(yield* deadLettersIn(directory)).toEqual([expected])

      // A process killed while appending leaves part of a line.
      yield* fs.writeFileString(file, `{"claim":{"version":1,"claim_`, { flag: "a" })
      expect(yield* deadLettersIn(directory)).toEqual([expected])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("is refused while another running process holds it, taken over from one that is gone, and let go", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const directory = yield* fs.makeTempDirectoryScoped()
      const lock = join(directory, "owner.pid")

      yield* fs.writeFileString(lock, String(process.ppid))
      expect(yield* Effect.flip(ClaimQueue.pipe(Effect.provide(queueIn(directory))))).toMatchObject({
        _tag: "QueueError",
        operation: "take",
        message: `the embedded queue in ${directory} is in use by process ${process.ppid}; stop that process first`
      })
      expect(yield* fs.readFileString(lock)).toBe(String(process.ppid))

      const gone = spawnSync(process.execPath, ["-e", ""]).pid
      yield* fs.writeFileString(lock, String(gone))
      const holder = yield* fs.readFileString(lock).pipe(Effect.provide(queueIn(directory)))
      // Its pid and its start (Linux's /proc), which tells it from a later process given the same pid.
      expect(holder).toMatch(new RegExp(`^${process.pid} \\d+$`))
      expect(yield* fs.exists(lock)).toBe(false)

      // Naming no process: empty, as a disk full when it was written leaves it, or garbled.
      for (const broken of ["", "0", "-1", "x"]) {
        yield* fs.writeFileString(lock, broken)
        // Older than a lock being written.
        yield* fs.utimes(lock, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000))
        expect(yield* fs.readFileString(lock).pipe(Effect.provide(queueIn(directory)))).toMatch(new RegExp(`^${process.pid} `))
      }

      // Its pid now another's (a running process that started at another time): taken over.
      yield* fs.writeFileString(lock, `${process.ppid} 1`)
      expect(yield* fs.readFileString(lock).pipe(Effect.provide(queueIn(directory)))).toMatch(new RegExp(`^${process.pid} `))

      // Killed, its parent not yet reaping it (a zombie: `sleep 60` never waits for its child).
      const parent = spawn("sh", ["-c", "sleep 0 & echo $!; exec sleep 60"], { stdio: ["ignore", "pipe", "ignore"] })
      yield* Effect.addFinalizer(() => Effect.sync(() => parent.kill()))
      const zombie = yield* Effect.async<string>((resume) => {
        parent.stdout.once("data", (data) => resume(Effect.succeed(String(data).trim())))
      })
      const state = () => readFileSync(`/proc/${zombie}/stat`, "utf8").split(") ")[1]![0]
      // Polled on the real clock (the test's is a TestClock).
      yield* Effect.promise(() =>
        new Promise<void>((resolve) => {
          const poll = setInterval(() => state() === "Z" && (clearInterval(poll), resolve()), 20)
        })
      )
      yield* fs.writeFileString(lock, zombie)
      expect(yield* fs.readFileString(lock).pipe(Effect.provide(queueIn(directory)))).toMatch(new RegExp(`^${process.pid} `))
    }).pipe(Effect.provide(NodeContext.layer)))
})
