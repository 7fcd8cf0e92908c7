/**
 * A validation thread's entry: validates the uploads it is given (see protocol.ts), several at once, interleaved.
 * Its own module, so that it loads as the thread's entry from the sources (through tsx) and, once compiled, as an
 * entry point of its own (`dist/threads/validation.js`, see scripts/build.mjs).
 */
import { Cause, Effect, Exit, Fiber, Schema, Stream } from "effect"
import { parentPort } from "node:worker_threads"
import { type FromThread, Refusal, type Start, type ToThread } from "./protocol.js"
import { validate } from "./validate.js"

const run = ({ job, port }: Start) => {
  const send = (message: FromThread) => port.postMessage(message)
  const body = Stream.async<Uint8Array>((emit) => {
    port.on("message", (message: ToThread) => {
      if (message._tag === "Chunk") void emit.single(message.bytes)
      else void emit.end()
    })
  }, "unbounded").pipe(Stream.tap(() => Effect.sync(() => send({ _tag: "Taken" }))))
  const fiber = Effect.runFork(validate(body, job, (bytes) => Effect.sync(() => send({ _tag: "Decompressed", bytes }))))
  fiber.addObserver((exit) => {
    if (Exit.isSuccess(exit)) return send({ _tag: "Valid", validated: exit.value })
    const failure = Cause.failureOption(exit.cause)
    if (failure._tag === "Some") return send({ _tag: "Invalid", error: Schema.encodeSync(Refusal)(failure.value) })
    if (!Cause.isInterruptedOnly(exit.cause)) send({ _tag: "Defect", message: Cause.pretty(exit.cause) })
  })
  // The main thread closes the port once the upload is answered or cut off: whatever still runs stops.
  port.on("close", () => Effect.runFork(Fiber.interrupt(fiber)))
}

parentPort!.on("message", run)
// Loaded: the pool waits for this before the server takes uploads.
parentPort!.postMessage("ready")
