import { Analytics } from "@telemetry/ingest/analytics/Analytics"
import * as AuthConfig from "@telemetry/ingest/auth/AuthConfig"
import * as LocalTokens from "@telemetry/ingest/auth/LocalTokens"
import { Tokens } from "@telemetry/ingest/auth/Tokens"
import * as Server from "@telemetry/ingest/http/Server"
import { Ingest } from "@telemetry/ingest/Ingest"
import * as Worker from "@telemetry/worker/Worker"
import { Config, Effect, Layer, Option } from "effect"
import * as Metrics from "./observability/Metrics.js"

/**
 * Without Kafka, the claims of an ingest-only process (`pnpm ingest`, or `RUN_WORKER=false`) wait in its in-process
 * queue, which no other process reads: said at start, since they load only once it runs with its worker again.
 */
const waitingClaims = Layer.unwrapEffect(
  Effect.map(Config.option(Config.string("KAFKA_BROKERS")), (kafka) =>
    Option.isSome(kafka) ? Layer.empty : Layer.effectDiscard(Effect.logWarning(
      "ingest only (pnpm ingest, or RUN_WORKER=false) without KAFKA_BROKERS: accepted uploads wait in this process's " +
        "embedded queue and load only once `pnpm start` runs with its worker on the same data (RUN_WORKER unset)"
    )))
)

/** The worker runs in this process unless `RUN_WORKER=false` (an ingest-only node). */
const worker = Layer.unwrapEffect(
  Effect.map(Config.boolean("RUN_WORKER").pipe(Config.withDefault(true)), (run) => run ? Worker.layer : waitingClaims)
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

/**
 * Ingest and analytics over HTTP, and the process's metrics on GET /metrics: needs storage, queue and database
 * layers, and `authentication`.
 */
export const http = Server.layer.pipe(Layer.provide(Layer.mergeAll(Ingest.Default, Analytics.Default, Metrics.layer)))

/** The HTTP API and a worker (unless `RUN_WORKER=false`): the whole pipeline in one process. */
export const layer = Layer.merge(http, worker)

/** The HTTP API alone, for workers of their own on Kafka. */
export const ingestOnly = Layer.merge(http, waitingClaims)
