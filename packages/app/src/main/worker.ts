import * as Worker from "@telemetry/worker/Worker"
import { Config, Effect, Layer } from "effect"
import * as Infrastructure from "../Infrastructure.js"
import * as Metrics from "../observability/Metrics.js"
import * as WorkerServer from "../observability/WorkerServer.js"
import { runProgram } from "./program.js"

// A worker process of its own only makes sense with a shared queue: the embedded one lives inside `pnpm start`.
const requireKafka = Layer.effectDiscard(
  Config.string("KAFKA_BROKERS").pipe(
    Effect.orElseFail(() => new Error("the worker process needs KAFKA_BROKERS (for one process on embedded parts, run `pnpm start`)"))
  )
)

// `pnpm worker`: consumes claims from Kafka and loads them, and serves its metrics and health on METRICS_PORT.
runProgram(
  "worker",
  Layer.merge(Worker.layer, WorkerServer.layer.pipe(Layer.provide(Metrics.layer))).pipe(
    Layer.provide(Infrastructure.fromConfig),
    Layer.provide(requireKafka)
  )
)
