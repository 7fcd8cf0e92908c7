import { ClaimQueue } from "@telemetry/domain"
import { Effect, Layer } from "effect"
import * as ClaimProcessor from "./ClaimProcessor.js"

/** Consumes claims for as long as the layer lives. */
export const run = Effect.gen(function*() {
  const queue = yield* ClaimQueue
  const process = yield* ClaimProcessor.make
  yield* Effect.logInfo("worker: consuming claims")
  return yield* queue.consume(process)
})

export const layer = Layer.scopedDiscard(Effect.forkScoped(run))
