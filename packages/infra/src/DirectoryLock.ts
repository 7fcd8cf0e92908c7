import { FileSystem } from "@effect/platform"
import { Data, Duration, Effect, Option } from "effect"

/** The lock not taken: another live process holds it, or its file could not be written. */
export class LockError extends Data.TaggedError("LockError")<{ readonly message: string; readonly cause?: unknown }> {}

const exists = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== "ESRCH"
  }
}

/** A process's state and start (clock ticks after boot) from Linux's /proc; none elsewhere, or once it is gone. */
const statOf = (fs: FileSystem.FileSystem, pid: number) =>
  fs.readFileString(`/proc/${pid}/stat`).pipe(
    Effect.map((stat) => {
      // Fields after the command's name, which may hold spaces and parentheses: the 3rd (state) to the 22nd (start).
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      return { state: fields[0], start: fields[19] }
    }),
    Effect.orElseSucceed(() => undefined)
  )

/**
 * Holds `file` (the holder's pid and start) for the scope, so one process at a time owns what lies beside it. A
 * lock left by a process that is gone (killed, even while its parent has not yet reaped it) is taken over, also when
 * another process has since been given its pid (after a reboot, say), and so is one that names no process: empty,
 * as a full disk or a power cut leaves it once created (read as pid 0, it was "in use by process 0" for ever),
 * unless created a moment ago: its process is writing it (taken for broken, two processes held the lock).
 */
export const hold = (file: string, what: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const owner = fs.readFileString(file).pipe(
      Effect.map((text) => {
        const [pid = "", start] = text.trim().split(/\s+/)
        return { pid: /^[1-9]\d*$/.test(pid) ? Number(pid) : NaN, start, empty: text === "" }
      }),
      Effect.orElseSucceed(() => ({ pid: NaN, start: undefined, empty: false }))
    )
    // An empty lock created a moment ago is being written by the process that created it: not a broken one.
    const beingWritten = fs.stat(file).pipe(
      Effect.map((info) => Option.exists(info.mtime, (mtime) => Date.now() - mtime.getTime() < 2_000)),
      Effect.orElseSucceed(() => false)
    )
    const holds = (holder: { readonly pid: number; readonly start: string | undefined }) =>
      Effect.map(statOf(fs, holder.pid), (stat) =>
        exists(holder.pid) &&
        (stat === undefined || (stat.state !== "Z" && (holder.start === undefined || holder.start === stat.start))))
    const self = (yield* statOf(fs, process.pid))?.start
    // Created only if no lock exists, so that of two processes starting together one takes it.
    const taken = fs.writeFileString(file, self === undefined ? String(process.pid) : `${process.pid} ${self}`, { flag: "wx" })
      .pipe(
        Effect.as(true),
        Effect.catchIf((e) => e._tag === "SystemError" && e.reason === "AlreadyExists", () => Effect.succeed(false))
      )
    const take: Effect.Effect<void, LockError> = Effect.gen(function*() {
      while (!(yield* taken)) {
        const holder = yield* owner
        if (holder.empty && (yield* beingWritten)) {
          yield* Effect.sleep(Duration.millis(20))
          continue
        }
        if (holder.pid !== process.pid && Number.isInteger(holder.pid) && (yield* holds(holder))) {
          return yield* new LockError({ message: `${what} is in use by process ${holder.pid}; stop that process first` })
        }
        yield* fs.remove(file, { force: true })
      }
    }).pipe(
      Effect.catchTag("SystemError", "BadArgument", (cause) =>
        Effect.fail(new LockError({ message: `cannot lock ${file}: ${cause.message}`, cause })))
    )
    yield* Effect.acquireRelease(take, () =>
      Effect.flatMap(owner, (holder) => holder.pid === process.pid ? fs.remove(file, { force: true }) : Effect.void).pipe(
        Effect.orDie
      ))
  })
