import { NodeRuntime } from "@effect/platform-node"
import { Infrastructure } from "@telemetry/domain"
import { Layer } from "effect"
import * as App from "./App.js"

// One process on embedded storage, queue and TimescaleDB: `pnpm start`.
NodeRuntime.runMain(Layer.launch(App.layer.pipe(Layer.provide(Infrastructure.embedded))))
