/** The test bed's stand-ins and our programs as child processes, each for the scope it is started in. */
import { imageEnvironment } from "@telemetry/testbed/ImageEnvironment"
import * as KafkaMock from "@telemetry/testbed/KafkaMock"
import { Duration, Effect } from "effect"
import { execFile } from "node:child_process"
import { promisify } from "node:util"
import { AUTH_SECRET, freePort, healthy, nodeFlags, program, root, waitFor } from "./support.js"

/** s3rver in its own process; answers the environment that points a program at it. */
export const s3rver = Effect.gen(function*() {
  const server = yield* program("bench/s3rver.ts", {})
  const line = yield* waitFor(
    "s3rver",
    Effect.suspend(() => {
      const first = server.output().split("\n")[0]!
      return first.startsWith("{") && server.output().includes("\n")
        ? Effect.succeed(first)
        : Effect.fail(new Error("not started yet"))
    })
  )
  return JSON.parse(line) as Record<string, string>
})

/** librdkafka's mock cluster with the topic of the claims, as compose creates it (3 partitions). */
export const kafka = Effect.map(KafkaMock.start({ topics: { "telemetry.raw": 3 } }), (cluster) => cluster.env)

/**
 * The secret of the benchmark's tokens, and limits (per device, per reader, uploads in flight) that would otherwise
 * throttle its clients: the full analytics run asks one reader's 100 requests a route.
 */
const unthrottled = {
  AUTH_SECRET,
  RATE_LIMIT_PER_DEVICE: "100000",
  RATE_LIMIT_PER_READER: "1000000",
  MAX_INFLIGHT_UPLOADS: "64"
}

/** Limits that let the full sizes through (a 10 M-reading payload is 2.2 GB of JSON, over the 2 GiB default). */
export const largePayloads = {
  MAX_BODY_BYTES: String(8 * 1024 ** 3),
  MAX_DECOMPRESSED_BYTES: String(8 * 1024 ** 3),
  MAX_ITEMS: "100000"
}

/**
 * `pnpm start`'s program compiled, as production runs it (ingest and analytics; no worker), on `env`'s services,
 * once ready.
 */
export const ingestApp = (env: Record<string, string>) =>
  Effect.gen(function*() {
    yield* build
    const port = yield* Effect.promise(freePort)
    const base = local(port)
    const { app } = yield* compiled("main/start.js", { ...env, ...unthrottled, PORT: String(port), RUN_WORKER: "false" }, base)
    return { app, base }
  })

/** `pnpm worker`'s program on `env`'s services; its metrics server on any free port (workers run side by side). */
export const workerApp = (env: Record<string, string>) =>
  program("packages/app/src/main/worker.ts", { METRICS_PORT: "0", ...env }, nodeFlags)

/** `pnpm build`: dist/ as the image has it; once per benchmark run. */
export const build = Effect.runSync(
  Effect.cached(Effect.promise(() => promisify(execFile)(process.execPath, ["scripts/build.mjs"], { cwd: root })))
)

/**
 * A compiled program on `env`, run as the image runs it, and the seconds from its spawn until
 * `GET <base>/api/v1/health/ready` answers 200.
 */
export const compiled = (entry: string, env: Record<string, string>, base: string) =>
  Effect.gen(function*() {
    const start = performance.now()
    const app = yield* program(`dist/${entry}`, { ...imageEnvironment, ...env }, nodeFlags)
    yield* healthy(app, base, "/api/v1/health/ready", Duration.minutes(5))
    return { app, seconds: (performance.now() - start) / 1000 }
  })

export const local = (port: number) => `http://127.0.0.1:${port}`
