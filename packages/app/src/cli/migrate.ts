import { Args, Command, Options } from "@effect/cli"
import * as Migrator from "@telemetry/infra/db/Migrator"
import * as PgliteClient from "@telemetry/infra/db/PgliteClient"
import * as PostgresClient from "@telemetry/infra/db/PostgresClient"
import { Config, Console, Effect, Layer, Option } from "effect"
import * as Infrastructure from "../Infrastructure.js"
import * as Cli from "./Cli.js"

// `pnpm migrate [status|up] [--json]`: the schema of DATABASE_URL, else of the embedded database. Not through
// Infrastructure's database layers: those apply the migrations when built, and `status` must change nothing.

const postgres = PostgresClient.layerConfig({
  url: Infrastructure.databaseUrl,
  poolSize: Config.succeed(1)
})

// Embedded: the lock that `pnpm start` holds first, so that this never opens a database a server has open.
const embedded = PgliteClient.layerConfig({ dataDir: Infrastructure.embeddedDatabaseDir }).pipe(
  Layer.provide(Infrastructure.embeddedClaimQueue)
)

const database = Layer.unwrapEffect(
  Effect.map(Config.option(Config.string("DATABASE_URL")), (url) => Option.isSome(url) ? postgres : embedded)
)

const action = Args.choice([["status", "status"], ["up", "up"]] as const).pipe(
  Args.withDefault("status" as const),
  Args.withDescription("status: applied and pending migrations; up: apply the pending ones")
)
const json = Options.boolean("json").pipe(Options.withDescription("print one JSON document on stdout"))

const report = (status: Migrator.MigrationStatus, asJson: boolean) =>
  asJson
    ? Console.log(JSON.stringify(status))
    : Console.log(
      [
        ...status.applied.map((m) =>
          `applied  ${m.name}  ${m.appliedAt.toISOString()}${m.changed ? "  CHANGED since applied" : ""}`
        ),
        ...status.pending.map((m) => `pending  ${m.name}`),
        `${status.applied.length} applied, ${status.pending.length} pending`
      ].join("\n")
    )

const migrate = Command.make("migrate", { action, json }, ({ action, json }) =>
  Effect.gen(function*() {
    const dir = yield* Migrator.MigrationsDir
    if (action === "up") yield* Migrator.migrate(dir)
    yield* report(yield* Migrator.status(dir), json)
  }).pipe(
    Effect.provide(database),
    // `status` changes nothing: not even by creating the database it was pointed at. `up` may.
    (program) => action === "status" ? Effect.zipRight(Infrastructure.existingDatabase, program) : program
  )).pipe(
    Command.withDescription("Shows or applies the database migrations (DATABASE_URL, else the embedded database)")
  )

Cli.run(migrate, "pnpm migrate")
