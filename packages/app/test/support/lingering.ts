import { Command } from "@effect/cli"
import { Console, Effect } from "effect"
import * as Cli from "../../src/cli/Cli.js"

// A command whose work leaves a timer running, as a client library may (kafkajs): it must exit all the same.
Cli.run(
  Command.make("lingering", {}, () => Effect.zipRight(Effect.sync(() => setInterval(() => undefined, 1000)), Console.log("done"))),
  "lingering"
)
