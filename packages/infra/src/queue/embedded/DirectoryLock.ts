import { FileSystem } from "@effect/platform"
import { QueueError } from "@telemetry/domain"
import { Effect } from "effect"
import { queueError } from "../QueueErrors.js"

const isRunning = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== "ESRCH"
  }
}

/**
 * Holds `file` (the holder's pid) for the scope, so one process at a time owns what lies beside it. A lock left by
 * a process that is gone (killed) is taken over.
 */
export const hold = (file: string, what: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const owner = fs.readFileString(file).pipe(
      Effect.map((text) => Number(text.trim())),
      Effect.orElseSucceed(() => NaN)
    )
    // Created only if no lock exists, so that of two processes starting together one takes it.
    const taken = fs.writeFileString(file, String(process.pid), { flag: "wx" }).pipe(
      Effect.as(true),
      Effect.catchIf((e) => e._tag === "SystemError" && e.reason === "AlreadyExists", () => Effect.succeed(false))
    )
    const take: Effect.Effect<void, QueueError> = Effect.gen(function*() {
      while (!(yield* taken)) {
        const holder = yield* owner
        if (holder !== process.pid && Number.isInteger(holder) && isRunning(holder)) {
          return yield* new QueueError({
            operation: "take",
            message: `${what} is in use by process ${holder}; stop that process first`
          })
        }
        yield* fs.remove(file, { force: true })
      }
    }).pipe(Effect.catchTag("SystemError", "BadArgument", queueError("take", `cannot lock ${file}`)))
    yield* Effect.acquireRelease(take, () =>
      Effect.flatMap(owner, (holder) => holder === process.pid ? fs.remove(file, { force: true }) : Effect.void).pipe(
        Effect.orDie
      ))
  })
