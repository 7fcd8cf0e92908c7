import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import * as App from "../App.js"
import * as Infrastructure from "../Infrastructure.js"
import * as Logging from "../Logging.js"
import * as Memory from "../Memory.js"
import * as Tracing from "../observability/Tracing.js"
import * as Shutdown from "../Shutdown.js"

/**
 * Runs a server program on the services the environment names, else embedded ones, with bearer-token
 * verification (App.authentication), until SIGTERM or SIGINT (Shutdown).
 */
export const runServer = <E>(program: string, app: Layer.Layer<never, E, Layer.Layer.Context<typeof App.layer>>) => {
  Memory.sweepArrayBuffersOnCollectingThread()
  return NodeRuntime.runMain(
    Layer.launch(
      app.pipe(
        Layer.provide(Layer.merge(Infrastructure.fromConfig, App.authentication)),
        Layer.provide(Shutdown.exitByDeadline(program)),
        Layer.provide(Tracing.layer(`telemetry-${program}`))
      )
    ).pipe(Effect.provide(Logging.layer)),
    // Logging.layer chooses the format: runMain's own pretty logger would print every line a second time.
    { disablePrettyLogger: true }
  )
}
