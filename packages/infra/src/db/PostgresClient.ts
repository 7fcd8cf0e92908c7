import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import { Config, type ConfigError, Context, Duration, Effect, Layer, Option, Redacted } from "effect"
import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import pg from "pg"
import { from as copyFrom } from "pg-copy-streams"
import { BulkCopy } from "./BulkCopy.js"
import * as DbMetrics from "./DbMetrics.js"

/**
 * PostgreSQL (any server, with or without TimescaleDB) over one `pg.Pool`, shared by the `@effect/sql` client and
 * the COPY loader, which runs on the connection of the surrounding transaction.
 */
export interface PostgresOptions {
  readonly url: Redacted.Redacted
  /** Connections in the pool. */
  readonly poolSize: number
  /**
   * How long opening a connection may take. A server that accepts connections and never answers (or a host that
   * drops packets) would otherwise hold every statement waiting for one until the system's TCP timeout, minutes.
   */
  readonly connectTimeout?: Duration.Duration
}

const DEFAULT_CONNECT_TIMEOUT = Duration.seconds(10)

// Small rows go out gathered into COPY messages of about this size, large enough to be cheap; rows already a
// quarter of it go out as they are (copying them together would cost more than the messages it saves).
const COPY_PIECE_BYTES = 256 * 1024

const INT8_OID = 20

/**
 * Counts (bigint) as JS numbers, as PGlite returns them, so the same query gives the same rows on both; they stay
 * far below 2^53.
 */
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID && format !== "binary"
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format as "text")) as pg.CustomTypesConfig["getTypeParser"]
}

/**
 * The `pg` client under a transaction's connection. @effect/sql-pg 0.53 keeps it in the `pg` field of its
 * connection object, outside the `Connection` interface and with no other way to reach it; checked at run time
 * so an upgrade that moves it fails loudly instead of copying outside the transaction.
 */
const transactionClient = (connection: Connection): pg.PoolClient | undefined => {
  const client = (connection as { readonly pg?: unknown }).pg
  return client instanceof pg.Client ? client as pg.PoolClient : undefined
}

/** The rows as the COPY messages' bytes. */
function* pieces(rows: Iterable<string | Uint8Array>): Generator<Uint8Array> {
  let piece: Array<Uint8Array> = []
  let size = 0
  for (const row of rows) {
    const bytes = typeof row === "string" ? Buffer.from(row) : row
    if (bytes.length >= COPY_PIECE_BYTES / 4) {
      if (size > 0) yield Buffer.concat(piece, size)
      piece = []
      size = 0
      yield bytes
      continue
    }
    piece.push(bytes)
    size += bytes.length
    if (size >= COPY_PIECE_BYTES) {
      yield Buffer.concat(piece, size)
      piece = []
      size = 0
    }
  }
  if (size > 0) yield Buffer.concat(piece, size)
}

/**
 * `COPY ... FROM STDIN` on `client`. The pipeline makes and writes a piece only once the socket took the previous
 * ones (`drain`), so the server loads one piece while the next is made; interruption aborts it, which sends
 * CopyFail, so the COPY loads nothing and the connection stays usable for the ROLLBACK.
 */
const copyIn = (
  client: pg.PoolClient,
  table: string,
  columns: ReadonlyArray<string>,
  rows: Iterable<string | Uint8Array>
) =>
  Effect.tryPromise({
    try: (signal) =>
      pipeline(
        // One piece read ahead, not Readable.from's default of 16, which would make them all before sending any.
        Readable.from(pieces(rows), { highWaterMark: 1 }),
        client.query(copyFrom(`COPY ${table} (${columns.join(", ")}) FROM STDIN`)),
        { signal }
      ),
    catch: (cause) => new SqlError({ message: `COPY into ${table} failed: ${(cause as Error)?.message ?? cause}`, cause })
  })

export const make = (options: PostgresOptions) =>
  Effect.gen(function*() {
    const pool = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new pg.Pool({
          connectionString: Redacted.value(options.url),
          max: options.poolSize,
          connectionTimeoutMillis: Duration.toMillis(options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT),
          // Timestamps are compared and bucketed in UTC everywhere, as on the embedded database.
          options: "-c TimeZone=UTC",
          types
        })
      ),
      (pool) => Effect.promise(() => pool.end())
    )
    // An idle client that loses its server emits `error` on the pool; without a listener that would crash the
    // process. The next query on it fails and is retried by its caller.
    pool.on("error", () => {})
    yield* Effect.tryPromise({
      try: () => pool.query("SELECT 1"),
      catch: (cause) => new SqlError({ message: `Cannot connect to PostgreSQL: ${(cause as Error)?.message}`, cause })
    })
    // node-postgres tells no event when a request starts waiting for a connection: sampled.
    yield* DbMetrics.samplePool(() => ({
      inUse: pool.totalCount - pool.idleCount,
      idle: pool.idleCount,
      waiting: pool.waitingCount
    }))
    const client = yield* PgClient.fromPool({ acquire: Effect.succeed(pool) })
    const bulkCopy = BulkCopy.of({
      copyText: (table, columns, rows) =>
        Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (tx) => {
          const pgClient = Option.isSome(tx) ? transactionClient(tx.value[0]) : undefined
          return pgClient !== undefined
            ? copyIn(pgClient, table, columns, rows)
            : Effect.dieMessage("BulkCopy.copyText must run inside a transaction of this PostgreSQL client")
        })
    })
    return { client, bulkCopy }
  })

export const layer = (
  options: PostgresOptions
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient | BulkCopy, SqlError> =>
  Layer.scopedContext(
    Effect.map(make(options), ({ bulkCopy, client }) =>
      Context.make(PgClient.PgClient, client).pipe(
        Context.add(SqlClient.SqlClient, client),
        Context.add(BulkCopy, bulkCopy)
      ))
  ).pipe(Layer.provide(Reactivity.layer))

/** `layer` with its options read from `config`. */
export const layerConfig = (
  config: Config.Config.Wrap<PostgresOptions>
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient | BulkCopy, SqlError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))
