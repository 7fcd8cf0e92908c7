import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { setFlagsFromString } from "node:v8"
import * as App from "../App.js"
import * as Infrastructure from "../Infrastructure.js"
import * as Logging from "../Logging.js"
import * as Tracing from "../observability/Tracing.js"
import * as Shutdown from "../Shutdown.js"

/**
 * Runs a server program on the services the environment names, else embedded ones, with bearer-token
 * verification (App.authentication), until SIGTERM or SIGINT (Shutdown).
 */
export const runServer = <E>(program: string, app: Layer.Layer<never, E, Layer.Layer.Context<typeof App.layer>>) => {
  // V8 frees dead ArrayBuffers' memory on a helper thread, which falls behind the buffers a large payload passes
  // through when the cores are busy: the worker's peak with 1 GB and one core taken by a busy loop was 180–190 MiB,
  // 111 with the sweep on the thread that collects (README, "Footprint"). A flag Node takes on its command line
  // only, not in NODE_OPTIONS; read by V8 at each sweep.
  setFlagsFromString("--no-concurrent-array-buffer-sweeping")
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
