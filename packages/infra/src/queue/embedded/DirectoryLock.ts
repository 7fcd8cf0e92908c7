import { QueueError } from "@telemetry/domain"
import { Effect } from "effect"
import { readFile, rm, writeFile } from "node:fs/promises"

const isRunning = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== "ESRCH"
  }
}

const ownerOf = (file: string) =>
  readFile(file, "utf8").then((text) => Number(text.trim()), () => NaN)

/**
 * Holds `file` (the holder's pid) for the scope, so one process at a time owns what lies beside it. A lock left by
 * a process that is gone (killed) is taken over.
 */
export const hold = (file: string, what: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        for (;;) {
          const taken = await writeFile(file, String(process.pid), { flag: "wx" }).then(
            () => true,
            (e) => (e?.code === "EEXIST" ? false : Promise.reject(e))
          )
          if (taken) return
          const owner = await ownerOf(file)
          if (owner !== process.pid && Number.isInteger(owner) && isRunning(owner)) {
            throw new Error(`${what} is in use by process ${owner}; stop that process first`)
          }
          await rm(file, { force: true })
        }
      },
      catch: (cause) => new QueueError({ operation: "take", message: (cause as Error)?.message ?? String(cause), cause })
    }),
    () =>
      Effect.promise(async () => {
        if ((await ownerOf(file)) === process.pid) await rm(file, { force: true })
      })
  )
