import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { describe, expect, it } from "@effect/vitest"
import { LoadError } from "@telemetry/domain"
import { freePort } from "@telemetry/testbed/FreePort"
import { Duration, Effect, Layer, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import { type AddressInfo, createServer, type Server, type Socket } from "node:net"
import * as DatabaseErrors from "../src/db/DatabaseErrors.js"
import * as PostgresClient from "../src/db/PostgresClient.js"
import { databases } from "./support/databases.js"

/** How the statement fails: its SQLSTATE, and whether loading again may succeed. */
const verdict = <A, E>(statement: Effect.Effect<A, E>) =>
  Effect.map(Effect.flip(statement), (cause) => ({ state: DatabaseErrors.sqlStateOf(cause), transient: DatabaseErrors.isTransient(cause) }))

for (const database of databases) {
  describe(`database errors on ${database.name}`, () => {
    it.layer(database.fresh, { timeout: 120_000 })((it) => {
      it.effect("data the database refuses is permanent: NUL, a too large index row, out of range, a duplicate key", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* sql`CREATE TABLE t (u text PRIMARY KEY, n int)`
          yield* sql`INSERT INTO t VALUES ('taken', 1)`
          expect(yield* verdict(sql`INSERT INTO t VALUES (${"a\u0000b"}, 1)`)).toEqual({ state: "22021", transient: false })
          // Random, so that it cannot be compressed under the limit.
          const long = randomBytes(30_000).toString("hex")
          expect(yield* verdict(sql`INSERT INTO t VALUES (${long}, 1)`)).toEqual({ state: "54000", transient: false })
          expect(yield* verdict(sql`INSERT INTO t VALUES ('big', ${2 ** 40})`)).toEqual({ state: "22003", transient: false })
          expect(yield* verdict(sql`INSERT INTO t VALUES ('taken', 1)`)).toEqual({ state: "23505", transient: false })
          // The message names what the database said, not only the client's "Failed to execute statement".
          const refused = yield* Effect.flip(sql`INSERT INTO t VALUES ('big', ${2 ** 40})`)
          expect(DatabaseErrors.explain(new LoadError({ claimId: "c", message: refused.message, transient: false, cause: refused })))
            .toMatch(/out of range for type integer.*\(SQLSTATE 22003\)$/)
        }))
    })
  })
}

describe("database errors of the connection", () => {
  it.effect("a server that does not answer is transient (no SQLSTATE)", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const unreachable = PostgresClient.layer({ url: Redacted.make(`postgres://postgres@127.0.0.1:${port}/none`), poolSize: 1 })
      expect(yield* verdict(Effect.scoped(Layer.build(unreachable)))).toEqual({ state: undefined, transient: true })
      expect(DatabaseErrors.isEndedByServer(yield* Effect.flip(Effect.scoped(Layer.build(unreachable))))).toBe(false)
    }))

  it("a failure without the server's answer is explained by the words of its deepest cause", () => {
    // As @effect/sql-pg fails a statement whose pool cannot connect: the socket's error is its cause.
    const refused = new SqlError({
      message: "Failed to acquire connection",
      cause: Object.assign(new Error("connect ECONNREFUSED 10.0.0.5:5432"), { code: "ECONNREFUSED" })
    })
    expect(DatabaseErrors.explain(refused)).toBe("Failed to acquire connection: connect ECONNREFUSED 10.0.0.5:5432")
    // Words already said are not said twice.
    expect(DatabaseErrors.explain(new SqlError({ message: "Cannot connect: read ECONNRESET", cause: new Error("read ECONNRESET") })))
      .toBe("Cannot connect: read ECONNRESET")
  })

  it.effect("a server that accepts connections and never answers fails within the connect timeout, transient", () =>
    Effect.gen(function*() {
      const silent = yield* Effect.acquireRelease(
        Effect.promise(() => {
          const sockets = new Set<Socket>()
          const server = createServer((socket) => void sockets.add(socket))
          return new Promise<{ server: Server; sockets: Set<Socket> }>((resolve) =>
            server.listen(0, "127.0.0.1", () => resolve({ server, sockets }))
          )
        }),
        ({ server, sockets }) =>
          Effect.promise(() => {
            sockets.forEach((socket) => socket.destroy())
            return new Promise<void>((resolve) => server.close(() => resolve()))
          })
      )
      const { port } = silent.server.address() as AddressInfo
      const hung = PostgresClient.layer({
        url: Redacted.make(`postgres://postgres@127.0.0.1:${port}/none`),
        poolSize: 1,
        connectTimeout: Duration.millis(300)
      })
      expect(yield* verdict(Effect.scoped(Layer.build(hung)))).toEqual({ state: undefined, transient: true })
      expect(silent.sockets.size).toBe(1)
    }).pipe(Effect.scoped))

  it.layer(databases[1]!.fresh, { timeout: 120_000 })("on PostgreSQL", (it) => {
    it.effect("a connection the server terminated (57P01, an administrator or a restart) is transient", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const terminated = yield* Effect.flip(sql`SELECT pg_terminate_backend(pg_backend_pid())`)
        expect([DatabaseErrors.sqlStateOf(terminated), DatabaseErrors.isTransient(terminated)]).toEqual(["57P01", true])
        // Ended by the server itself, whatever the statement held: no claim is to blame for it.
        expect(DatabaseErrors.isEndedByServer(terminated)).toBe(true)
      }))
  })
})
