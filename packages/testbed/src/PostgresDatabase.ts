import { Context, Effect, Layer } from "effect"
import { randomBytes } from "node:crypto"
import pg from "pg"

/** The server the tests use: the local PostgreSQL (trust auth), or `TEST_DATABASE_URL`. */
export const serverUrl = (): string =>
  process.env["TEST_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"

export interface FreshDatabase {
  /** Its name, unique to this run. */
  readonly name: string
  /** Connection URL of the database, for clients in this process or in child processes. */
  readonly url: string
  /** `DATABASE_URL` for a child process. */
  readonly env: Readonly<Record<string, string>>
  /** Drops the database, ending any connection still open to it. */
  readonly drop: () => Promise<void>
}

const onServer = async <A>(f: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString: serverUrl() })
  await client.connect()
  try {
    return await f(client)
  } finally {
    await client.end()
  }
}

/** Creates an empty database with a unique name on the test server. */
export const create = async (): Promise<FreshDatabase> => {
  const name = `telemetry_test_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`
  await onServer((client) => client.query(`CREATE DATABASE ${name}`))
  const url = new URL(serverUrl())
  url.pathname = `/${name}`
  return {
    name,
    url: url.toString(),
    env: { DATABASE_URL: url.toString() },
    // FORCE (PostgreSQL 13+): a pool a test left open must not keep the database alive.
    drop: () => onServer((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined)
  }
}

/**
 * Takes the database `name` of the test server down — no new connections, the open ones cut — and up again, as an
 * outage would; through a connection to the server's own database.
 */
export const outage = (name: string) => ({
  down: () =>
    onServer(async (client) => {
      await client.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`)
      await client.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [name])
    }),
  up: () => onServer((client) => client.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`)).then(() => undefined)
})

export class PostgresDatabase extends Context.Tag("@telemetry/testbed/PostgresDatabase")<PostgresDatabase, FreshDatabase>() {}

/** A fresh database for the scope of the layer, dropped at its end. */
export const layer: Layer.Layer<PostgresDatabase> = Layer.scoped(
  PostgresDatabase,
  Effect.acquireRelease(Effect.promise(create), (database) => Effect.promise(database.drop))
)
