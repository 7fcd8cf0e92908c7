/**
 * 6. What metrics and tracing cost the worker: the load rate of one stored payload through the worker's real path
 * (as in worker.ts) with (a) no metrics exporter and no tracer, (b) the Prometheus exporter registered and scraped
 * every second, (c) an OpenTelemetry tracer recording every span (exported to nowhere), alternated round by round
 * on one fresh database. Effect's in-memory metric updates happen in all three: only the exporter can be left out.
 */
import { NodeContext } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { ClaimCheck } from "@telemetry/domain"
import { MetricsExposition } from "@telemetry/ingest/http/MetricsExposition"
import * as ClaimProcessor from "@telemetry/worker/ClaimProcessor"
import { ConfigProvider, Duration, Effect, Layer, Logger, LogLevel, Schedule } from "effect"
import { randomUUID } from "node:crypto"
import * as Infrastructure from "../packages/app/src/Infrastructure.js"
import * as Metrics from "../packages/app/src/observability/Metrics.js"
import * as Tracing from "../packages/app/src/observability/Tracing.js"
import { largePayloads } from "./services.js"
import { formatRate, freshDatabase, median, progress, timed } from "./support.js"
import { type LoadRounds, type Rates, storedPayload } from "./worker.js"

export const VARIANTS = ["plain", "metrics", "tracing"] as const
export type Variant = (typeof VARIANTS)[number]

export interface ObservabilityResult {
  readonly readings: number
  /** Rows per second of each round, and their median, per variant. */
  readonly rates: Readonly<Record<Variant, Rates>>
  /** CPU microseconds per reading in this process (median of the rounds), per variant: less noisy than rates. */
  readonly cpu: Readonly<Record<Variant, number>>
  /**
   * Throughput lost and CPU added against `plain`, in percent: the median over the rounds of each round's ratio, as
   * the loads of one round ran close together, under the same load of the machine (negative: noise).
   */
  readonly overhead: { readonly metrics: number; readonly tracing: number }
  readonly cpuOverhead: { readonly metrics: number; readonly tracing: number }
  /** Evidence that the variants did their work: scrapes served, spans ended. */
  readonly scrapes: number
  readonly spans: number
  /**
   * The scrapes' wall time in percent of the metrics variant's load time: an upper bound of what they took from the
   * load, steadier than the rates on a busy machine.
   */
  readonly scrapeShare: number
}

type SpanExporter = Parameters<typeof Tracing.layerExporter>[1]

/** A span exporter that only counts: spans are recorded and ended as with OTLP, and go nowhere. */
const countingExporter = () => {
  let spans = 0
  const exporter: SpanExporter = {
    export: (batch, done) => {
      spans += batch.length
      done({ code: 0 })
    },
    shutdown: () => Promise.resolve()
  }
  return { exporter, spans: () => spans }
}

/** `1 − other ÷ base` in percent, the median of the rounds' ratios. */
const lost = (base: ReadonlyArray<number>, other: ReadonlyArray<number>) =>
  (1 - median(other.map((x, round) => x / base[round]!))) * 100

export const observabilityBenchmark = (options: LoadRounds) =>
  Effect.gen(function*() {
    const { payload, rounds } = options
    const db = yield* freshDatabase
    const env = { ...options.storage, ...largePayloads, DATABASE_URL: db.url, DATABASE_POOL_SIZE: "4" }
    const spans = countingExporter()
    let scrapes = 0
    let scrapeMs = 0
    let metricsLoadMs = 0

    /** `load` as each variant runs it; the variant's set-up (exporter, tracer) is outside the timed part. */
    const within = {
      plain: <A, E, R>(load: Effect.Effect<A, E, R>) => load,
      metrics: <A, E, R>(load: Effect.Effect<A, E, R>) =>
        Effect.gen(function*() {
          const exposition = yield* MetricsExposition
          yield* timed(exposition.scrape).pipe(
            Effect.tap(([, ms]) => {
              scrapes++
              scrapeMs += ms
            }),
            Effect.repeat(Schedule.spaced(Duration.seconds(1))),
            Effect.forkScoped
          )
          return yield* load
        }).pipe(Effect.scoped, Effect.provide(Metrics.layer)),
      tracing: <A, E, R>(load: Effect.Effect<A, E, R>) =>
        load.pipe(Effect.provide(Tracing.layerExporter("bench-worker", spans.exporter)))
    }

    return yield* Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const processClaim = yield* ClaimProcessor.make

      yield* progress(`observability: storing a payload of ${payload.readings.toLocaleString("en")} readings`)
      const { stored } = yield* storedPayload(payload)

      const fresh = Effect.zipRight(sql`TRUNCATE telemetry_data, claim_ledger`, sql`CHECKPOINT`)
      const count = Effect.map(sql<{ n: number }>`SELECT count(*)::int AS n FROM telemetry_data`, (r) => r[0]!.n)
      const rates: Record<Variant, Array<number>> = { plain: [], metrics: [], tracing: [] }
      const cpu: Record<Variant, Array<number>> = { plain: [], metrics: [], tracing: [] }

      for (let round = 0; round < rounds; round++) {
        // Each round starts with another variant, so that none always runs right after the same one.
        const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]!)
        for (const variant of order) {
          yield* fresh
          const claim = new ClaimCheck({ ...stored, claim_id: randomUUID() })
          const [[, ms], used] = yield* within[variant](
            Effect.gen(function*() {
              const before = process.cpuUsage()
              const result = yield* timed(processClaim(claim))
              return [result, process.cpuUsage(before)] as const
            })
          )
          const n = yield* count
          if (n !== payload.readings) return yield* Effect.dieMessage(`${variant} loaded ${n} rows, not ${payload.readings}`)
          rates[variant].push(payload.readings / (ms / 1000))
          if (variant === "metrics") metricsLoadMs += ms
          cpu[variant].push((used.user + used.system) / payload.readings)
        }
        yield* progress(
          `observability: round ${round + 1}/${rounds}: ` +
            VARIANTS.map((v) => `${v} ${formatRate(rates[v].at(-1)!)} rows/s`).join(", ")
        )
      }
      if (scrapes === 0 || spans.spans() === 0) {
        return yield* Effect.dieMessage(`the variants did not run: ${scrapes} scrapes, ${spans.spans()} spans`)
      }
      const ratesOf = (v: Variant): Rates => ({ rounds: rates[v], median: median(rates[v]) })
      const result: ObservabilityResult = {
        readings: payload.readings,
        rates: { plain: ratesOf("plain"), metrics: ratesOf("metrics"), tracing: ratesOf("tracing") },
        cpu: { plain: median(cpu.plain), metrics: median(cpu.metrics), tracing: median(cpu.tracing) },
        overhead: { metrics: lost(rates.plain, rates.metrics), tracing: lost(rates.plain, rates.tracing) },
        cpuOverhead: { metrics: -lost(cpu.plain, cpu.metrics), tracing: -lost(cpu.plain, cpu.tracing) },
        scrapes,
        spans: spans.spans(),
        scrapeShare: (scrapeMs / metricsLoadMs) * 100
      }
      return result
    }).pipe(
      Effect.provide(
        Layer.mergeAll(Infrastructure.objectStore, Infrastructure.telemetryStore).pipe(Layer.provide(NodeContext.layer))
      ),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
      Logger.withMinimumLogLevel(LogLevel.Warning)
    )
  })
