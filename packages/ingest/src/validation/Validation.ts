import { integerSetting, type InvalidPayload, type PayloadTooLarge } from "@telemetry/domain"
import { Config, Duration, Effect, Metric, Queue, Runtime, Schema, Stream } from "effect"
import { createRequire } from "node:module"
import { availableParallelism } from "node:os"
import { pathToFileURL } from "node:url"
import { MessageChannel, Worker } from "node:worker_threads"
import * as Metrics from "../metrics.js"
import { CHUNKS_AHEAD, type FromThread, Refusal, type Start, type ToThread } from "./protocol.js"
import { type Job, validate, type Validated } from "./validate.js"

/** Reads a body to its end and answers its facts, or why it is refused (or the body's own failure). */
export type Validate = <E, R>(
  body: Stream.Stream<Uint8Array, E, R>,
  job: Job
) => Effect.Effect<Validated, E | InvalidPayload | PayloadTooLarge, R>

/**
 * Threads that validate uploads (gunzip, scan, decode, count), at most one per core by default; 0 validates on the
 * main thread. Admission (slots, rates) and storage stay on the main thread: one place for the limits of the process.
 */
const ValidationThreads = integerSetting("INGEST_PROCESSES", availableParallelism(), { min: 0 })

/**
 * How long a thread may go without an upload before it stops, while another remains: each costs ~25 MiB even idle,
 * and one is enough for uploads that do not overlap; uploads that do start the others again.
 */
const ThreadIdleTimeout = Config.duration("INGEST_THREAD_IDLE_TIMEOUT").pipe(Config.withDefault(Duration.minutes(1)))

/** The thread's module: its TypeScript source, or its compiled bundle (`pnpm build` rewrites this URL). */
const threadModule = new URL("./thread.ts", import.meta.url)

/**
 * A thread's young generation: V8 grows it to 32 MiB under the parse's allocations and keeps it, which was most of
 * a thread's growth during an upload (its heap 15 → 46 MiB with a 200 MB body; 23 with this), at no cost in speed
 * measured (10 MB uploads, one or eight at once).
 */
const resourceLimits = { maxYoungGenerationSizeMb: 8 }

/**
 * A new validation thread. From the sources, the thread loads its module through tsx (a worker does not take the
 * `--import tsx` hooks of its process on Node 20); compiled, it runs the bundle.
 */
const spawn = () => {
  if (!threadModule.pathname.endsWith(".ts")) return new Worker(threadModule, { resourceLimits })
  // tsx's ESM API (its `import` condition: the `require` one does not register from here), then the module.
  const require = createRequire(import.meta.url)
  const manifest = require.resolve("tsx/package.json")
  const api = new URL(require(manifest).exports["./esm/api"].import.default, pathToFileURL(manifest)).href
  return new Worker(
    `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(threadModule.href)}) })`,
    { eval: true, execArgv: [], resourceLimits }
  )
}

/** Waits for a new thread's first message, which it posts once its module is loaded. */
const ready = (worker: Worker) =>
  Effect.async<void>((resume) => {
    const stop = () => {
      worker.off("message", loaded)
      worker.off("exit", exited)
    }
    const loaded = () => {
      stop()
      resume(Effect.void)
    }
    const exited = (code: number) => {
      stop()
      resume(Effect.dieMessage(`a validation thread exited (code ${code}) before it was ready`))
    }
    worker.on("message", loaded)
    worker.on("exit", exited)
    return Effect.sync(stop)
  })

interface Thread {
  worker: Worker
  /** Loaded: it takes uploads. */
  ready: boolean
  /** The uploads it validates now, each by what fails it should the thread exit. */
  readonly uploads: Set<() => void>
  /** Its stop, due once it has gone INGEST_THREAD_IDLE_TIMEOUT without an upload. */
  idle: ReturnType<typeof setTimeout> | undefined
}

type Received = FromThread | { readonly _tag: "Exited" }

const countDecompressed = (bytes: number) => Metric.incrementBy(Metrics.decompressedBytes, bytes)

/**
 * Validates uploads on a pool of up to INGEST_PROCESSES threads, each upload on the least busy thread. One thread is
 * loaded before the server listens; another starts when an upload finds every thread busy, and takes uploads once
 * loaded (no upload waits for a thread to load: its body would seem to stall meanwhile); one left idle stops.
 */
export class Validation extends Effect.Service<Validation>()("@telemetry/Validation", {
  scoped: Effect.gen(function*() {
    const count = yield* ValidationThreads
    if (count <= 0) {
      const inProcess: Validate = (body, job) => validate(body, job, countDecompressed)
      return { validate: inProcess }
    }
    const idleTimeout = Duration.toMillis(yield* ThreadIdleTimeout)

    const runtime = yield* Effect.runtime<never>()
    const scope = yield* Effect.scope
    let closing = false
    const threads: Array<Thread> = []
    const counted = () => Metrics.validationThreads.unsafeUpdate(threads.length, [])
    const start = (): Worker => {
      const worker = spawn()
      worker.on("error", (e) => Runtime.runFork(runtime)(Effect.logError("a validation thread failed", e)))
      return worker
    }
    const remove = (thread: Thread) => {
      threads.splice(threads.indexOf(thread), 1)
      counted()
    }
    const add = (): Thread => {
      const thread: Thread = { worker: start(), ready: false, uploads: new Set(), idle: undefined }
      // A thread that died (out of memory, say) fails its uploads and is replaced; one that had not loaded yet, or
      // was stopped, is not.
      const exited = () => {
        for (const fail of thread.uploads) fail()
        if (closing || !threads.includes(thread)) return
        if (!thread.ready) return remove(thread)
        thread.worker = start()
        thread.worker.once("exit", exited)
      }
      thread.worker.once("exit", exited)
      threads.push(thread)
      counted()
      return thread
    }
    /** Counts down to the thread's stop while it has no upload, unless it is the only one loaded. */
    const idle = (thread: Thread) => {
      if (thread.uploads.size > 0) return
      thread.idle = setTimeout(() => {
        thread.idle = undefined
        if (thread.uploads.size > 0 || closing || !threads.some((other) => other !== thread && other.ready)) return
        remove(thread)
        void thread.worker.terminate()
      }, idleTimeout).unref()
    }
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => {
        closing = true
        for (const thread of threads) clearTimeout(thread.idle)
        return Promise.all(threads.map((thread) => thread.worker.terminate()))
      })
    )
    const first = add()
    yield* ready(first.worker)
    first.ready = true
    /** Another thread, in the background; it takes uploads once loaded. */
    const grow = Effect.suspend(() => {
      const thread = add()
      return ready(thread.worker).pipe(
        Effect.tap(() =>
          Effect.sync(() => {
            thread.ready = true
            idle(thread)
          })
        ),
        Effect.catchAllCause((cause) => Effect.logWarning("a validation thread did not start", cause)),
        Effect.forkIn(scope)
      )
    })
    const leastBusy = () =>
      threads.reduce<Thread | undefined>(
        (least, thread) => (thread.ready && (least === undefined || thread.uploads.size < least.uploads.size) ? thread : least),
        undefined
      )!

    const onThread: Validate = (body, job) =>
      Effect.gen(function*() {
        const thread = leastBusy()
        if (thread.uploads.size > 0 && threads.length < count) yield* grow
        const received = yield* Queue.unbounded<Received>()
        const exited = () => received.unsafeOffer({ _tag: "Exited" })
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            clearTimeout(thread.idle)
            thread.uploads.add(exited)
          }),
          () =>
            Effect.sync(() => {
              thread.uploads.delete(exited)
              idle(thread)
            })
        )
        const { port1: port, port2 } = yield* Effect.acquireRelease(
          Effect.sync(() => new MessageChannel()),
          ({ port1 }) => Effect.sync(() => port1.close())
        )
        port.on("message", (message: FromThread) => received.unsafeOffer(message))
        thread.worker.postMessage({ job, port: port2 } satisfies Start, [port2])
        const send = (message: ToThread, transfer: ReadonlyArray<ArrayBuffer> = []) =>
          Effect.sync(() => port.postMessage(message, transfer))

        const ahead = yield* Effect.makeSemaphore(CHUNKS_AHEAD)
        const sending = body.pipe(
          Stream.runForEach((bytes) => {
            // A copy of its own: the same bytes are on their way to storage meanwhile.
            const copy = new Uint8Array(bytes)
            return Effect.zipRight(ahead.take(1), send({ _tag: "Chunk", bytes: copy }, [copy.buffer]))
          }),
          Effect.zipRight(send({ _tag: "End" }))
        )
        const answer = Effect.gen(function*() {
          while (true) {
            const message = yield* Queue.take(received)
            switch (message._tag) {
              case "Taken":
                yield* ahead.release(1)
                break
              case "Decompressed":
                yield* countDecompressed(message.bytes)
                break
              case "Valid":
                return message.validated
              case "Invalid":
                return yield* Schema.decode(Refusal)(message.error).pipe(Effect.orDie, Effect.flip)
              case "Defect":
                return yield* Effect.dieMessage(`validation failed: ${message.message}`)
              case "Exited":
                return yield* Effect.dieMessage("the validation thread exited")
            }
          }
        })
        // Whichever fails first ends the upload: the body (cut, too slow, too large) or its validation.
        return yield* Effect.zipRight(sending, answer, { concurrent: true })
      }).pipe(Effect.scoped)

    return { validate: onThread }
  })
}) {}
