import { NodeRuntime } from "@effect/platform-node"
import { Infrastructure, Shutdown } from "@telemetry/domain"
import { Config, Effect, Layer } from "effect"
import * as Worker from "./Worker.js"

// A worker process of its own only makes sense with a shared queue: the embedded one lives inside `pnpm start`.
const requireKafka = Layer.effectDiscard(
  Config.string("KAFKA_BROKERS").pipe(
    Effect.orElseFail(() => new Error("the worker process needs KAFKA_BROKERS (for one process on embedded parts, run `pnpm start`)"))
  )
)

NodeRuntime.runMain(
  Layer.launch(
    Worker.layer.pipe(
      Layer.provide(Infrastructure.fromConfig),
      Layer.provide(requireKafka),
      Layer.provide(Shutdown.exitByDeadline("worker"))
    )
  )
)
