import { describe, expect, it } from "@effect/vitest"
import * as MemoryObjectStore from "@telemetry/infra/storage/MemoryObjectStore"
import { inMemoryStore } from "@telemetry/infra/testing"
import { ConfigProvider, Effect, Layer, Metric, TestClock } from "effect"
import { randomUUID } from "node:crypto"
import * as ClaimProcessor from "../src/ClaimProcessor.js"
import * as Metrics from "../src/metrics.js"
import { stash } from "./support/claims.js"

const TestLayer = inMemoryStore(2).pipe(Layer.provideMerge(MemoryObjectStore.layer()))

const makeProcessor = ClaimProcessor.make.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map())))

const count = (counter: Metric.Metric.Counter<number>) => Effect.map(Metric.value(counter), (s) => s.count)

/** The worker's counters, read together, to compare before and after (metrics are global to the process). */
const counters = Effect.all({
  loaded: count(Metrics.claimHandled("loaded")),
  alreadyLoaded: count(Metrics.claimHandled("already_loaded")),
  deadLettered: count(Metrics.claimHandled("dead_lettered")),
  invalid: count(Metrics.deadLettered("invalid_payload")),
  readings: count(Metrics.readingsLoaded),
  duplicates: count(Metrics.readingsDuplicate),
  loads: Effect.map(Metric.value(Metrics.loadDuration), (s) => s.count)
})

const since = (before: Effect.Effect.Success<typeof counters>) =>
  Effect.map(counters, (after) =>
    Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k as keyof typeof before]])))

describe("worker metrics", () => {
  it.layer(TestLayer, { timeout: 120_000 })("one in-memory database", (it) => {
    it.effect("count claims loaded, already loaded, duplicate readings and dead letters as they happened", () =>
      Effect.gen(function*() {
        const process = yield* makeProcessor
        const p = `m-${randomUUID()}`
        const readings = [{
          equip_uuid: `${p}-fridge`,
          sensor: [
            { sensor_uuid: `${p}-temp`, valor: 4, sensor_datahora_coleta: "2026-11-20T11:00:00Z" },
            { sensor_uuid: `${p}-temp`, valor: 4.5, sensor_datahora_coleta: "2026-11-20T11:01:00Z" }
          ]
        }]
        const before = yield* counters
        const now = Date.parse("2026-12-03T10:00:00Z")
        yield* TestClock.setTime(now)

        const first = yield* stash(readings)
        yield* process(first.claim)
        expect(yield* since(before)).toMatchObject({ loaded: 1, readings: 2, duplicates: 0, loads: 1 })

        // The same claim again: already loaded; the same readings in another claim: duplicates.
        yield* process(first.claim)
        const second = yield* stash(readings)
        yield* process(second.claim)
        expect(yield* since(before)).toMatchObject({ loaded: 2, alreadyLoaded: 1, readings: 2, duplicates: 2 })

        const bad = yield* stash([{ equip_uuid: `${p}-bad`, sensor: [{ valor: 1 }] }])
        yield* Effect.flip(process(bad.claim))
        expect(yield* since(before)).toMatchObject({ deadLettered: 1, invalid: 1, loaded: 2 })

        const last = yield* Metric.value(Metrics.lastLoadTimestamp)
        expect(last.value).toBe(now / 1000)
      }))
  })
})
