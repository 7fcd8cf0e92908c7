import type * as SqlClient from "@effect/sql/SqlClient"
import { EmbeddedClaimQueue, MemoryObjectStore } from "@telemetry/domain"
import { ConfigProvider, Layer } from "effect"
import { Analytics } from "../../src/analytics/Analytics.js"
import * as Server from "../../src/http/Server.js"
import { Ingest } from "../../src/Ingest.js"

/** The HTTP server alone on `port`, over the given database, with storage and queue in memory (no worker). */
export const serverOn = <E>(database: Layer.Layer<SqlClient.SqlClient, E>, port: number) =>
  Server.layer.pipe(
    Layer.provide(Layer.mergeAll(Ingest.Default, Analytics.Default)),
    Layer.provide(MemoryObjectStore.layer("telemetry-raw")),
    Layer.provide(EmbeddedClaimQueue.layer({ capacity: 10, publishTimeout: "1 second" })),
    Layer.provide(database),
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["PORT", String(port)]]))))
  )
