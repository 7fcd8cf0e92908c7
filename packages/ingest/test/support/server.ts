import type * as SqlClient from "@effect/sql/SqlClient"
import * as EmbeddedClaimQueue from "@telemetry/infra/queue/embedded/EmbeddedClaimQueue"
import * as MemoryObjectStore from "@telemetry/infra/storage/MemoryObjectStore"
import { ConfigProvider, Effect, Layer } from "effect"
import { Analytics } from "../../src/analytics/Analytics.js"
import { Tokens } from "../../src/auth/Tokens.js"
import * as Server from "../../src/http/Server.js"
import { Ingest } from "../../src/Ingest.js"
import { MetricsExposition } from "../../src/http/MetricsExposition.js"
import { authEnv } from "./auth.js"

/** Ingest has no metrics exporter of its own (the app brings OpenTelemetry's): its tests scrape nothing. */
const noExporter = Layer.succeed(MetricsExposition, { scrape: Effect.succeed("") })

/**
 * The HTTP server alone on `port`, over the given database, with storage and queue in memory (no worker), which
 * the tests get to look at. It
 * verifies tokens with the test secret (support/auth.ts); `env` adds or overrides configuration.
 */
export const serverOn = <E>(database: Layer.Layer<SqlClient.SqlClient, E>, port: number, env: Record<string, string> = {}) =>
  Server.layer.pipe(
    Layer.provide(Layer.mergeAll(Ingest.Default, Analytics.Default, Tokens.Default, noExporter)),
    Layer.provideMerge(MemoryObjectStore.layer("telemetry-raw")),
    Layer.provideMerge(EmbeddedClaimQueue.layer({ capacity: 10, publishTimeout: "1 second" })),
    Layer.provideMerge(database),
    Layer.provide(
      Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({ PORT: String(port), ...authEnv, ...env }))))
    )
  )
