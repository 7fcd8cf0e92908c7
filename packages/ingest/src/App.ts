import { Worker } from "@telemetry/worker"
import { Config, Effect, Layer } from "effect"
import { Analytics } from "./analytics/Analytics.js"
import * as AuthConfig from "./auth/AuthConfig.js"
import * as LocalTokens from "./auth/LocalTokens.js"
import { Tokens } from "./auth/Tokens.js"
import * as Server from "./http/Server.js"
import { Ingest } from "./Ingest.js"

/** The worker runs in this process unless `RUN_WORKER=false` (an ingest-only node). */
const worker = Layer.unwrapEffect(
  Effect.map(Config.boolean("RUN_WORKER").pipe(Config.withDefault(true)), (run) => (run ? Worker.layer : Layer.empty))
)

/**
 * Token verification with the configured secret — or, embedded, with a secret of its own, whose first tokens it
 * prints. Fails when real services are configured without `AUTH_SECRET`: provide it beside the infrastructure, so
 * that such a process stops before connecting to anything.
 */
export const authentication = LocalTokens.layer.pipe(
  Layer.provideMerge(Tokens.DefaultWithoutDependencies),
  Layer.provideMerge(AuthConfig.layer)
)

/** Ingest and analytics over HTTP, and a worker: needs storage, queue and database layers, and `authentication`. */
export const layer = Layer.mergeAll(Server.layer, worker).pipe(
  Layer.provide(Layer.mergeAll(Ingest.Default, Analytics.Default))
)
