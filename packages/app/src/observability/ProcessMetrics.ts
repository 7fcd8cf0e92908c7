import { Effect, Metric, MetricBoundaries, Ref, Runtime } from "effect"
import {
  constants,
  monitorEventLoopDelay,
  type NodeGCPerformanceDetail,
  performance,
  type PerformanceEntry,
  PerformanceObserver
} from "node:perf_hooks"

// The standard process and Node metrics, under the names Prometheus' own client libraries give them (the Pipeline
// dashboard queries these). Counters get `_total` from the exporter.

const residentMemory = Metric.gauge("process_resident_memory_bytes", { description: "Resident memory size in bytes" })

const cpuSeconds = Metric.counter("process_cpu_seconds", {
  description: "User and system CPU time spent in seconds",
  incremental: true
})

const startTime = Metric.gauge("process_start_time_seconds", { description: "Start time of the process since the Unix epoch in seconds" })

const heapUsed = Metric.gauge("nodejs_heap_size_used_bytes", { description: "V8 heap size used in bytes" })

const heapTotal = Metric.gauge("nodejs_heap_size_total_bytes", { description: "V8 heap size in bytes" })

const eventLoopLag = Metric.gauge("nodejs_eventloop_lag_seconds", {
  description: "Mean event loop delay in seconds since the previous scrape"
})

const eventLoopLagP99 = Metric.gauge("nodejs_eventloop_lag_p99_seconds", {
  description: "99th percentile of the event loop delay in seconds since the previous scrape"
})

const gcDuration = Metric.histogram(
  "nodejs_gc_duration_seconds",
  MetricBoundaries.fromIterable([0.001, 0.01, 0.1, 1, 2, 5]),
  "Garbage collection duration by kind (minor, major, incremental, weakcb)"
)

/** The histogram of each kind of collection, by the kind's number in a "gc" entry. */
const gcByKind = new Map(
  ([
    [constants.NODE_PERFORMANCE_GC_MINOR, "minor"],
    [constants.NODE_PERFORMANCE_GC_MAJOR, "major"],
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL, "incremental"],
    [constants.NODE_PERFORMANCE_GC_WEAKCB, "weakcb"]
  ] as const).map(([kind, label]) => [kind as number, Metric.tagged(gcDuration, "kind", label)])
)

/** Each garbage collection into `nodejs_gc_duration_seconds`, for as long as the scope lives. */
const observeGc = Effect.gen(function*() {
  const runSync = Runtime.runSync(yield* Effect.runtime<never>())
  yield* Effect.acquireRelease(
    Effect.sync(() => {
      const observer = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
          // A "gc" entry's detail says which collection it was (Node's types leave it off PerformanceEntry).
          const detail = (entry as PerformanceEntry & { readonly detail?: NodeGCPerformanceDetail }).detail
          const metric = gcByKind.get(detail?.kind ?? -1)
          if (metric !== undefined) runSync(Metric.update(metric, entry.duration / 1000))
        }
      })
      observer.observe({ entryTypes: ["gc"] })
      return observer
    }),
    (observer) => Effect.sync(() => observer.disconnect())
  )
})

/** Node's event-loop delay histogram, sampled every 10 ms, for as long as the scope lives. */
const monitorEventLoop = Effect.acquireRelease(
  Effect.sync(() => {
    const histogram = monitorEventLoopDelay({ resolution: 10 })
    histogram.enable()
    return histogram
  }),
  (histogram) => Effect.sync(() => histogram.disable())
)

/**
 * Observes garbage collections and the event loop for the scope, and gives the effect that sets the other process
 * metrics to their current values: run on each scrape, so that they cost nothing between scrapes.
 */
export const make = Effect.gen(function*() {
  yield* observeGc
  const eventLoop = yield* monitorEventLoop
  // CPU time counted so far, in microseconds: the counter grows by what was spent since.
  const counted = yield* Ref.make(0)
  yield* Metric.set(startTime, performance.timeOrigin / 1000)
  return Effect.gen(function*() {
    const memory = process.memoryUsage()
    yield* Metric.set(residentMemory, memory.rss)
    yield* Metric.set(heapUsed, memory.heapUsed)
    yield* Metric.set(heapTotal, memory.heapTotal)
    const cpu = process.cpuUsage()
    const since = yield* Ref.modify(counted, (before) => [cpu.user + cpu.system - before, cpu.user + cpu.system])
    yield* Metric.update(cpuSeconds, since / 1e6)
    // No delay recorded since the last reset (a scrape right after another): the gauges keep their values.
    if (eventLoop.count > 0) {
      yield* Metric.set(eventLoopLag, eventLoop.mean / 1e9)
      yield* Metric.set(eventLoopLagP99, eventLoop.percentile(99) / 1e9)
      eventLoop.reset()
    }
  })
})
