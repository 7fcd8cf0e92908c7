import { NodeRuntime } from "@effect/platform-node"
import { Infrastructure, Shutdown } from "@telemetry/domain"
import { Layer } from "effect"
import * as App from "./App.js"

// Ingest and analytics over HTTP, with a worker unless RUN_WORKER=false; storage, queue and database are the
// ones the environment names, else embedded (`pnpm start`). Requests need bearer tokens (App.authentication).
NodeRuntime.runMain(
  Layer.launch(
    App.layer.pipe(
      Layer.provide(Layer.merge(Infrastructure.fromConfig, App.authentication)),
      Layer.provide(Shutdown.exitByDeadline("ingest"))
    )
  )
)
