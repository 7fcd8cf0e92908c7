import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { ClaimQueue, ObjectStore } from "@telemetry/domain"
import * as PgliteClient from "@telemetry/infra/db/PgliteClient"
import * as RevokedClaims from "@telemetry/infra/db/RevokedClaims"
import * as Replay from "@telemetry/worker/replay/Replay"
import { readingsPayload, restore, stash } from "@telemetry/worker/testing/claims"
import { Effect, Ref, Stream } from "effect"
import { join } from "node:path"
import { eventually, infrastructure, kafkaDeployment, loaded, tempDir, worker } from "./support/pipeline.js"
import { runCli } from "./support/cli.js"
import { startReplay } from "./support/process.js"

// Received after their readings (readingsPayload: from 2026-11-10): readings more than a day ahead are refused.
const day = (d: number) => new Date(Date.UTC(2026, 10, 10 + d, 12))

const quietly: Replay.Progress = { found: Effect.void, replayed: Effect.void }

/** `pnpm replay <args>` as a process: its exit code and what it printed. */
const replayProcess = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.promise(async () => {
    const cli = startReplay(args, env)
    return { code: await cli.exited, output: cli.output() }
  })

describe("replay", () => {
  it.scopedLive("with Kafka: dead letters and stored payloads in a range are re-published and loaded exactly once", () =>
    Effect.gen(function*() {
      const { committed, env } = yield* kafkaDeployment
      yield* Effect.gen(function*() {
        const queue = yield* ClaimQueue
        const storage = yield* ObjectStore
        // Stored on three days, their claims lost: never published.
        yield* stash(readingsPayload("rp-lost1", 11), { receivedAt: day(1) })
        yield* stash(readingsPayload("rp-lost2", 12), { receivedAt: day(2) })
        yield* stash(readingsPayload("rp-lost3", 13), { receivedAt: day(3) })
        // Its request refused though storage kept its object (it failed as it answered): revoked, never replayed.
        const refused = yield* stash(readingsPayload("rp-refused", 5), { receivedAt: day(2) })
        yield* RevokedClaims.revoke(refused.claim.claim_id)
        // Loaded as usual.
        const good = yield* stash(readingsPayload("rp-good", 30), { receivedAt: day(2) })
        // Its object missing at first: dead-lettered.
        const late = yield* stash(readingsPayload("rp-late", 40), { receivedAt: day(2) })
        yield* storage.delete(late.claim.claim_check)
        yield* queue.publish(good.claim)
        yield* queue.publish(late.claim)
        yield* Effect.forkScoped(worker(env))
        yield* eventually(committed, (n) => n === 2)
        expect(yield* loaded("rp-")).toEqual({ readings: 30, distinct_readings: 30, claims: 1 })

        const deadLetters = (dryRun: boolean) =>
          Effect.flatMap(Ref.make(0), (notClaims) =>
            Replay.replay(Replay.deadLetterClaims({}, notClaims), { dryRun, loadHere: false, progress: quietly }))
        // Its object still gone (deleted on purpose, say): nothing is re-published, to be dead-lettered again.
        expect(yield* deadLetters(false)).toEqual({ candidates: 1, alreadyLoaded: 0, payloadGone: 1, replayed: 0, rejectedAgain: 0 })
        const gone = yield* replayProcess(["dead-letters"], env)
        expect(gone.output).toContain("1 claim(s), 0 already loaded; 1 whose payload is gone from storage, left alone; re-published 0")
        // The object is back: replaying the dead letters loads it.
        yield* restore(late)
        expect(yield* deadLetters(true)).toEqual({ candidates: 1, alreadyLoaded: 0, payloadGone: 0, replayed: 1, rejectedAgain: 0 })
        expect(yield* deadLetters(false)).toEqual({ candidates: 1, alreadyLoaded: 0, payloadGone: 0, replayed: 1, rejectedAgain: 0 })
        yield* eventually(committed, (n) => n === 3)
        expect(yield* loaded("rp-")).toEqual({ readings: 70, distinct_readings: 70, claims: 2 })
        // Once loaded, a dead letter is not replayed again.
        expect(yield* deadLetters(false)).toEqual({ candidates: 1, alreadyLoaded: 1, payloadGone: 0, replayed: 0, rejectedAgain: 0 })
        // And `pnpm status` tells it settled among the dead letters.
        const status = yield* Effect.promise(() => runCli("status", ["--json"], env))
        expect(JSON.parse(status.stdout).dead_letters).toMatchObject({ total: 1, by_reason: { object_not_found: 1 }, claims: 1, loaded_since: 1 })

        // A time without its zone is refused: this machine's zone need not be the one meant.
        const zoneless = yield* replayProcess(["stored", "--from", "2026-11-12T00:00:00", "--dry-run"], env)
        expect(zoneless.code).toBe(1)
        expect(zoneless.output).toContain("expected an ISO-8601 time with its zone")
        // The payloads stored on day 2: two are loaded, one revoked, the lost one is re-published — by the command.
        const range = ["--from", "2026-11-12", "--to", "2026-11-13T00:00:00Z"]
        const dry = yield* replayProcess(["stored", ...range, "--dry-run"], env)
        expect(dry.code).toBe(0)
        expect(dry.output).toContain(
          "stored payloads from 2026-11-12T00:00:00.000Z to 2026-11-13T00:00:00.000Z: 4 claim(s), 3 already loaded; would replay 1"
        )
        expect(yield* committed).toBe(3)
        const real = yield* replayProcess(["stored", ...range], env)
        expect(real.code).toBe(0)
        expect(real.output).toContain("4 claim(s), 3 already loaded; re-published 1")
        expect(real.output).toMatch(/replay \[[=-]+\] 1\/1 claims/)
        yield* eventually(committed, (n) => n === 4)
        expect(yield* loaded("rp-")).toEqual({ readings: 82, distinct_readings: 82, claims: 3 })
        expect(yield* loaded("rp-lost2")).toMatchObject({ readings: 12 })
      }).pipe(Effect.provide(infrastructure(env)))
    }), { timeout: 180_000 })

  it.scopedLive("in-process queue: refuses while the data is in use, then loads the dead letters itself, once", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const env = { STORAGE_DIR: join(dir, "objects"), EMBEDDED_DB_DIR: join(dir, "pg") }

      yield* Effect.scoped(Effect.gen(function*() {
        const queue = yield* ClaimQueue
        const storage = yield* ObjectStore
        const late = yield* stash(readingsPayload("emb-late", 25))
        yield* storage.delete(late.claim.claim_check)
        yield* queue.publish(late.claim)
        yield* Effect.forkScoped(worker(env))
        yield* eventually(Stream.runCount(queue.deadLetters({})), (n) => n === 1)
        yield* restore(late)
        // This process holds the embedded queue and database, as `pnpm start` would.
        const refused = yield* replayProcess(["dead-letters"], env)
        expect(refused.code).toBe(1)
        expect(refused.output).toContain(`is in use by process ${process.pid}; stop that process first`)
      }).pipe(Effect.provide(infrastructure(env))))

      const replayed = yield* replayProcess(["dead-letters"], env)
      expect(replayed.code).toBe(0)
      expect(replayed.output).toContain("1 claim(s), 0 already loaded; handled 1 here: 1 loaded, 0 dead-lettered")
      const again = yield* replayProcess(["dead-letters"], env)
      expect(again.output).toContain("1 claim(s), 1 already loaded; handled 0 here: 0 loaded, 0 dead-lettered")
      expect(yield* loaded("emb-").pipe(Effect.provide(PgliteClient.layer({ dataDir: env.EMBEDDED_DB_DIR })), Effect.provide(NodeContext.layer)))
        .toEqual({ readings: 25, distinct_readings: 25, claims: 1 })
    }), { timeout: 300_000 })
})
