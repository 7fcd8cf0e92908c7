import * as SqlClient from "@effect/sql/SqlClient"
import { expect, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import * as PgliteClient from "../src/db/PgliteClient.js"

layer(PgliteClient.layer({}), { timeout: 120_000, excludeTestServices: true })("PgliteClient", (it) => {
  it.effect("its one session goes to statements in turn: given back, to the longest waiter, not to its holder", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const order: Array<string> = []
      const holding = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(Effect.gen(function*() {
        yield* sql.withTransaction(
          Effect.zipRight(sql`SELECT 1`, Effect.zipRight(Deferred.succeed(holding, undefined), Deferred.await(gate)))
        )
        // Straight back for the session, as a load committing batch by batch does.
        yield* sql`SELECT 2`
        order.push("holder")
      }))
      yield* Deferred.await(holding)
      const waiter = yield* Effect.fork(Effect.zipRight(sql`SELECT 3`, Effect.sync(() => order.push("waiter"))))
      // Long enough for the waiter to be waiting for the session.
      yield* Effect.sleep("100 millis")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.join(waiter)
      expect(order).toEqual(["waiter", "holder"])
    }))
})
