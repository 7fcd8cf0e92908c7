import { NodeRuntime } from "@effect/platform-node"
import { Infrastructure, ShutdownTimeout } from "@telemetry/domain"
import { Config, Duration, Effect, Layer } from "effect"
import * as Worker from "./Worker.js"

// A worker process of its own only makes sense with a shared queue: the embedded one lives inside `pnpm start`.
const requireKafka = Layer.effectDiscard(
  Config.string("KAFKA_BROKERS").pipe(
    Effect.orElseFail(() => new Error("the worker process needs KAFKA_BROKERS (for one process on embedded parts, run `pnpm start`)"))
  )
)

// After the loads' deadline, closing the clients (rollbacks, offset commits, leaving the group) takes this at most.
const CLOSING_MARGIN = Duration.seconds(5)

/**
 * On SIGTERM or SIGINT the runtime interrupts the worker, which stops gracefully within SHUTDOWN_TIMEOUT; should
 * anything hang past that and the margin, the process exits anyway (its claims come again: nothing is lost).
 */
const exitByDeadline = Layer.effectDiscard(
  Effect.map(ShutdownTimeout, (timeout) => {
    const arm = () => {
      setTimeout(() => {
        process.stderr.write(`worker: still stopping ${Duration.format(Duration.sum(timeout, CLOSING_MARGIN))} after the signal; exiting\n`)
        process.exit(1)
      }, Duration.toMillis(Duration.sum(timeout, CLOSING_MARGIN))).unref()
    }
    process.once("SIGTERM", arm)
    process.once("SIGINT", arm)
  })
)

NodeRuntime.runMain(
  Layer.launch(
    Worker.layer.pipe(Layer.provide(Infrastructure.fromConfig), Layer.provide(requireKafka), Layer.provide(exitByDeadline))
  )
)
