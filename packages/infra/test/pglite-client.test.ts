import * as SqlClient from "@effect/sql/SqlClient"
import { expect, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { createServer } from "node:http"
import { type AddressInfo, connect } from "node:net"
import * as DatabaseErrors from "../src/db/DatabaseErrors.js"
import * as PgliteClient from "../src/db/PgliteClient.js"

layer(PgliteClient.layer({}), { timeout: 120_000, excludeTestServices: true })("PgliteClient", (it) => {
  it.effect("a statement binding more parameters than it may is refused for good, and the session goes on", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const ids = Array.from({ length: 40_000 }, (_, i) => i)
      const refused = yield* Effect.flip(sql`SELECT count(*)::int AS n FROM generate_series(1, 10) g WHERE g IN ${sql.in(ids)}`)
      expect(refused.message).toContain("40000 parameters")
      expect(DatabaseErrors.isTransient(refused)).toBe(false)
      // The same ids as one array, and the session answers as before.
      expect(yield* sql`SELECT count(*)::int AS n FROM generate_series(1, 10) g WHERE g = ANY(${ids}::int[])`).toEqual([{ n: 10 }])
    }))

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

  it.effect("between two statements the event loop reads its sockets: a request that came during the first is served before the second", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const order: Array<string> = []
      const server = createServer((_, response) => {
        order.push("request served")
        response.end()
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.sync(() => server.close())
      )
      const { port } = server.address() as AddressInfo
      const client = connect(port, "127.0.0.1")
      yield* Effect.async<void>((resume) => void client.once("connect", () => resume(Effect.void)))
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const first = yield* Effect.fork(sql.withTransaction(Effect.zipRight(
        // The request reaches the server's socket while the statement holds this thread.
        Effect.sync(() => client.write("GET / HTTP/1.1\r\nhost: test\r\n\r\n")),
        Effect.zipRight(sql`SELECT pg_sleep(0.3)`, Effect.sync(() => order.push("first statement")))
      )))
      const second = yield* Effect.fork(Effect.zipRight(sql`SELECT 1`, Effect.sync(() => order.push("second statement"))))
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      expect(order).toEqual(["first statement", "request served", "second statement"])
    }).pipe(Effect.scoped))
})
