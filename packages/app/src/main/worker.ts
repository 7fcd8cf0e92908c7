import { NodeRuntime } from "@effect/platform-node"
import * as Worker from "@telemetry/worker/Worker"
import { Config, Effect, Layer } from "effect"
import * as Infrastructure from "../Infrastructure.js"
import * as Logging from "../Logging.js"
import * as Memory from "../Memory.js"
import * as Metrics from "../observability/Metrics.js"
import * as Tracing from "../observability/Tracing.js"
import * as WorkerServer from "../observability/WorkerServer.js"
import * as Shutdown from "../Shutdown.js"

// A worker process of its own only makes sense with a shared queue: the embedded one lives inside `pnpm start`.
const requireKafka = Layer.effectDiscard(
  Config.string("KAFKA_BROKERS").pipe(
    Effect.orElseFail(() => new Error("the worker process needs KAFKA_BROKERS (for one process on embedded parts, run `pnpm start`)"))
  )
)

// `pnpm worker`: consumes claims from Kafka and loads them, and serves its metrics and health on METRICS_PORT.
Memory.sweepArrayBuffersOnCollectingThread()
NodeRuntime.runMain(
  Layer.launch(
    Layer.merge(Worker.layer, WorkerServer.layer.pipe(Layer.provide(Metrics.layer))).pipe(
      Layer.provide(Infrastructure.fromConfig),
      Layer.provide(requireKafka),
      Layer.provide(Shutdown.exitByDeadline("worker")),
      Layer.provide(Tracing.layer("telemetry-worker"))
    )
  ).pipe(Effect.provide(Logging.layer)),
  // Logging.layer chooses the format: runMain's own pretty logger would print every line a second time.
  { disablePrettyLogger: true }
)
