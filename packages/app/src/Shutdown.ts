import { ShutdownTimeout } from "@telemetry/domain"
import { Duration, Effect, Layer } from "effect"

// After SHUTDOWN_TIMEOUT, closing the clients (rollbacks, offset commits, leaving the group) takes this at most.
const CLOSING_MARGIN = Duration.seconds(5)

/**
 * On SIGTERM or SIGINT the runtime interrupts the program, which stops gracefully within SHUTDOWN_TIMEOUT; should
 * anything hang past that and a margin, the process exits anyway (what it had not acknowledged comes again:
 * nothing is lost).
 */
export const exitByDeadline = (program: string) =>
  Layer.effectDiscard(
    Effect.map(ShutdownTimeout, (timeout) => {
      const deadline = Duration.sum(timeout, CLOSING_MARGIN)
      const arm = () => {
        setTimeout(() => {
          process.stderr.write(`${program}: still stopping ${Duration.format(deadline)} after the signal; exiting\n`)
          process.exit(1)
        }, Duration.toMillis(deadline)).unref()
      }
      process.once("SIGTERM", arm)
      process.once("SIGINT", arm)
    })
  )
