import { portSetting } from "@telemetry/domain"
import * as SqlAccounts from "@telemetry/ingest/auth/SqlAccounts"
import { Tokens } from "@telemetry/ingest/auth/Tokens"
import { Config, Console, Effect, Layer, Option } from "effect"
import * as Infrastructure from "../Infrastructure.js"
import * as RemoteAccounts from "./RemoteAccounts.js"

// The accounts in the database, migrated first so that a new database gets the table.
const inPostgres = SqlAccounts.layer.pipe(Layer.provide(Infrastructure.postgres))
const inEmbedded = SqlAccounts.layer.pipe(Layer.provide(Infrastructure.embeddedDatabase))

/** The server on this host that holds the embedded database, reached on `PORT`. */
const throughServer = Layer.unwrapEffect(Effect.gen(function*() {
  const port = yield* portSetting("PORT", 8080)
  const baseUrl = `http://127.0.0.1:${port}`
  yield* Console.error(`The embedded database is held by a running server: sending the command to it at ${baseUrl}.`)
  return RemoteAccounts.layer(baseUrl).pipe(Layer.provide(Tokens.Default))
}))

/**
 * A new embedded database is made for the accounts (a first account before the first `pnpm start`), said on stderr:
 * where the directory is mistyped, or a deployment's variables are not set in this shell (a compose stack's live in
 * its containers), the account would go where no server looks.
 */
const announceNew = Effect.gen(function*() {
  const directory = yield* Infrastructure.embeddedDatabaseDir
  if (!(yield* Infrastructure.embeddedDatabaseIn(directory))) {
    yield* Console.error(
      `No embedded database in ${directory} (EMBEDDED_DB_DIR) yet: creating it, for the \`pnpm start\` of this directory. ` +
        "For another deployment, set its variables (DATABASE_URL; in a compose stack, run the command inside a container: " +
        "docker compose exec ingest node dist/cli/<command>.js ...)."
    )
  }
})

/** Embedded: the lock first (the one `pnpm start` holds, beside the queue), and the database only once it is ours. */
const embedded = inEmbedded.pipe(
  Layer.provide(Infrastructure.embeddedClaimQueue),
  Layer.provide(Layer.effectDiscard(announceNew)),
  Layer.catchAll((error) =>
    Layer.unwrapEffect(
      error._tag === "QueueError" && error.operation === "take" ? Effect.succeed(throughServer) : Effect.fail(error)
    )
  )
)

/**
 * Where `pnpm device` and `pnpm user` manage accounts. With `DATABASE_URL`, in that database, which any number of
 * processes share. Embedded, the database may be opened by one process only: the command opens it itself when no
 * server holds it, else sends the operation to that server, which runs it with the same code (SqlAccounts).
 */
export const layer = Layer.unwrapEffect(
  Effect.map(Config.option(Config.string("DATABASE_URL")), (url) => Option.isSome(url) ? inPostgres : embedded)
)
