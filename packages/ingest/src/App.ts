import { Worker } from "@telemetry/worker"
import { Config, Effect, Layer } from "effect"
import { Analytics } from "./analytics/Analytics.js"
import * as Server from "./http/Server.js"
import { Ingest } from "./Ingest.js"

/** The worker runs in this process unless `RUN_WORKER=false` (an ingest-only node). */
const worker = Layer.unwrapEffect(
  Effect.map(Config.boolean("RUN_WORKER").pipe(Config.withDefault(true)), (run) => (run ? Worker.layer : Layer.empty))
)

/** Ingest and analytics over HTTP, and a worker: needs storage, queue and database layers. */
export const layer = Layer.mergeAll(Server.layer, worker).pipe(
  Layer.provide(Layer.mergeAll(Ingest.Default, Analytics.Default))
)
