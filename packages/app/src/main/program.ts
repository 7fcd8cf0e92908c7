import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer, Option } from "effect"
import * as Logging from "../Logging.js"
import * as Memory from "../Memory.js"
import * as Tracing from "../observability/Tracing.js"
import * as Shutdown from "../Shutdown.js"

/**
 * An error of ours says in its message what stopped the program and what to do; its stack trace, through bundled
 * chunks, would bury that in the line. A defect keeps its trace.
 */
const withoutTrace = (cause: Cause.Cause<unknown>) =>
  Option.match(Cause.failureOption(cause), {
    onNone: () => cause,
    onSome: (error) => (error instanceof Error ? Cause.fail(error.message) : cause)
  })

/**
 * Runs a program (a server, the worker), its services provided, until SIGTERM or SIGINT (Shutdown), traced and
 * logged, with dead ArrayBuffers swept as it collects (Memory).
 */
export const runProgram = <E>(program: string, layer: Layer.Layer<never, E>) => {
  Memory.sweepArrayBuffersOnCollectingThread()
  return NodeRuntime.runMain(
    Layer.launch(
      layer.pipe(
        Layer.provide(Shutdown.exitByDeadline(program)),
        Layer.provide(Tracing.layer(`telemetry-${program}`))
      )
    ).pipe(
      // Said in a line of our own, whose message says what stopped (runMain's has an empty one); a stop by signal,
      // once everything closed, as well (requests cut off at the shutdown deadline are said before).
      Effect.onExit(Exit.match({
        onSuccess: () => Effect.void,
        onFailure: (cause) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.logInfo(`${program}: stopped by signal`)
            : Effect.logError(`${program}: stopped`, withoutTrace(cause))
      })),
      Effect.provide(Logging.layer)
    ),
    // Logging.layer chooses the format: runMain's own pretty logger would print every line a second time.
    { disablePrettyLogger: true, disableErrorReporting: true }
  )
}
