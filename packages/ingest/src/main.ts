import { NodeRuntime } from "@effect/platform-node"
import { Infrastructure } from "@telemetry/domain"
import { Worker } from "@telemetry/worker"
import { Config, Effect, Layer } from "effect"
import { History } from "./analytics/History.js"
import * as Server from "./http/Server.js"
import { Ingest } from "./Ingest.js"

/** The worker runs in this process unless `RUN_WORKER=false` (an ingest-only node). */
const worker = Layer.unwrapEffect(
  Effect.map(Config.boolean("RUN_WORKER").pipe(Config.withDefault(true)), (run) => (run ? Worker.layer : Layer.empty))
)

/** Ingest, analytics and a worker in one process, on embedded storage, queue and TimescaleDB. */
const Main = Layer.mergeAll(Server.layer, worker).pipe(
  Layer.provide(Layer.mergeAll(Ingest.Default, History.Default)),
  Layer.provide(Infrastructure.embedded)
)

NodeRuntime.runMain(Layer.launch(Main))
