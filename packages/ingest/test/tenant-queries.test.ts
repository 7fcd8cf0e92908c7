import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Deferred, Effect, Fiber } from "effect"
import { TenantQueries } from "../src/analytics/TenantQueries.js"

describe("a tenant's analytics queries in turn", () => {
  it.live("two of a tenant's queries run at once, the rest wait, another tenant's go ahead; a waiter interrupted never runs", () =>
    Effect.gen(function*() {
      const { inTurn } = yield* TenantQueries
      const started: Array<string> = []
      const release = yield* Deferred.make<void>()
      const query = (name: string) => Effect.zipRight(Effect.sync(() => started.push(name)), Deferred.await(release))
      const heavy = yield* Effect.forEach(["a1", "a2", "a3", "a4"], (name) => Effect.fork(inTurn("tenant-a")(query(name))))
      const gone = yield* Effect.fork(inTurn("tenant-a")(query("a-gone")))
      const other = yield* Effect.fork(inTurn("tenant-b")(query("b1")))
      yield* Effect.sleep("100 millis")
      expect([...started].sort()).toEqual(["a1", "a2", "b1"])
      // Its client hung up while it waited.
      yield* Fiber.interrupt(gone)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.joinAll([...heavy, other])
      expect([...started].sort()).toEqual(["a1", "a2", "a3", "a4", "b1"])
    }).pipe(
      Effect.provide(TenantQueries.Default),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["ANALYTICS_QUERIES_PER_TENANT", "2"]])))
    ))
})
