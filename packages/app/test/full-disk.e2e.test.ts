import { describe, expect, it } from "@effect/vitest"
import { deviceToken } from "@telemetry/ingest/testing/auth"
import { readingsPayload } from "@telemetry/worker/testing/claims"
import { Effect } from "effect"
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { gzipSync } from "node:zlib"
import { healthy, seenBy, started, startPipelineWithDisk } from "./support/process.js"
import { deployment } from "./support/stack.js"
import { postBytes } from "./support/uploads.js"

const KiB = 1024
const DISK = 512 * KiB

/** The stored objects' files under `root` (sidecars and the pending folder left out). */
const objectsUnder = (root: string): ReadonlyArray<string> =>
  (readdirSync(root, { recursive: true, withFileTypes: true }))
    .filter((entry) => entry.isFile() && entry.name.endsWith(".json.gz") && !entry.parentPath.includes(".pending"))
    .map((entry) => entry.name)

const pendingUnder = (root: string): ReadonlyArray<string> =>
  readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.parentPath.includes(".pending"))
    .map((entry) => entry.name)

const getJson = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(url)
    return { status: response.status, json: (await response.json()) as any }
  })

describe("storage on a full disk", () => {
  it.scopedLive("an upload refused for want of space says so, and takes the process out of readiness until one goes through", () =>
    Effect.gen(function*() {
      const { base, env } = yield* deployment("full-disk")
      mkdirSync(env.STORAGE_DIR, { recursive: true })
      const ingest = yield* started(() => startPipelineWithDisk({ ...env, RUN_WORKER: "false" }, env.STORAGE_DIR, DISK))
      yield* Effect.promise(() => healthy(ingest, base))
      const storage = seenBy(ingest, env.STORAGE_DIR)
      // All but 16 KiB taken: the payload (~34 KB of gzip, stored as sent) does not fit.
      const filler = `${storage}/filler`
      writeFileSync(filler, Buffer.alloc(DISK - 16 * KiB))
      const body = gzipSync(JSON.stringify(readingsPayload("full-disk", 10_000)))
      expect(body.length).toBeGreaterThan(16 * KiB)
      const upload = postBytes(base, body, deviceToken(), { "content-encoding": "gzip" })

      const refused = yield* upload
      expect(refused.status).toBe(503)
      expect(refused.json).toMatchObject({ error: "storage_unavailable", message: "object storage is full (no space left), retry later" })
      expect(objectsUnder(storage)).toEqual([])
      expect(pendingUnder(storage)).toEqual([])
      const notReady = yield* getJson(`${base}/api/v1/health/ready`)
      expect(notReady.status).toBe(503)
      expect(notReady.json.reasons).toEqual([expect.stringMatching(/^storage is down: no space left: an upload was refused \d+ s ago \(.*ENOSPC/)])
      const detailed = yield* getJson(`${base}/api/v1/health/detailed`)
      expect(detailed.status).toBe(503)
      expect(detailed.json.checks.storage).toMatchObject({ status: "down", error: expect.stringMatching(/^no space left: /) })

      // Space freed: the next upload goes through, and with it the process is ready again at once.
      rmSync(filler)
      expect((yield* upload).status).toBe(202)
      expect((yield* getJson(`${base}/api/v1/health/ready`)).status).toBe(200)
      expect((yield* getJson(`${base}/api/v1/health/detailed`)).json.checks.storage.status).toBe("up")
      expect(objectsUnder(storage)).toHaveLength(1)
    }), { timeout: 180_000 })
})
