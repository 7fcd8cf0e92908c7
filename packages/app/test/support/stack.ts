import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { authEnv } from "@telemetry/ingest/testing/auth"
import { freePort } from "@telemetry/testbed/FreePort"
import { ConfigProvider, Duration, Effect, Layer, Schedule } from "effect"
import { join } from "node:path"
import * as App from "../../src/App.js"
import * as Infrastructure from "../../src/Infrastructure.js"
import { fixtureEnv } from "./fixtures.js"

export { freePort }

/** A directory removed again when the scope closes. */
export const tempDir = (prefix: string) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: `telemetry-${prefix}-` })).pipe(
    Effect.provide(NodeContext.layer)
  )

/**
 * A port (free unless given) and a fresh data directory, as the pipeline's environment, with the test secret
 * (support/auth.ts) to verify tokens; removed with the scope.
 */
export const deployment = (name: string, port?: number) =>
  Effect.gen(function*() {
    const dir = yield* tempDir(name)
    const chosen = port ?? (yield* Effect.promise(freePort))
    const dataDir = join(dir, "pg")
    const env = { PORT: String(chosen), STORAGE_DIR: join(dir, "objects"), EMBEDDED_DB_DIR: dataDir, ...authEnv, ...fixtureEnv }
    return { base: `http://127.0.0.1:${chosen}`, dataDir, env }
  })

/**
 * The whole pipeline in this process, in a fresh directory, serving HTTP on `port`: on embedded parts (files,
 * in-process queue, PGlite TimescaleDB) unless `env` names real ones, verifying tokens with the test secret. The
 * tests also get the storage, database and Tokens services to look at.
 */
export const embeddedStack = (port: number, env: Record<string, string> = {}) =>
  Layer.unwrapScoped(Effect.gen(function*() {
    const deployed = yield* deployment("stack", port)
    const config = ConfigProvider.fromMap(new Map(Object.entries({ ...deployed.env, ...env })))
    return App.layer.pipe(
      Layer.provideMerge(Layer.merge(Infrastructure.fromConfig, App.authentication)),
      Layer.provideMerge(NodeContext.layer),
      Layer.provide(Layer.setConfigProvider(config))
    )
  }))

/** Runs `query` until `done` holds for its result (the pipeline is asynchronous after the 202). */
export const eventually = <A, E, R>(query: Effect.Effect<A, E, R>, done: (a: A) => boolean, timeout = Duration.seconds(30)) =>
  query.pipe(
    Effect.repeat({ schedule: Schedule.spaced(Duration.millis(100)), until: done }),
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error("condition not reached in time") })
  )
