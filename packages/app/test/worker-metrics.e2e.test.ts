import { describe, expect, it } from "@effect/vitest"
import { bulkPayload, claim } from "@telemetry/domain/testing"
import { toMessage } from "@telemetry/infra/queue/kafka/KafkaMessages"
import { freePort } from "@telemetry/testbed/FreePort"
import { Effect } from "effect"
import { gzipSync } from "node:zlib"
import { countOf, samplesOf } from "./support/exposition.js"
import { started, startedIngest, startWorker, until } from "./support/process.js"
import { runningStandIns, standIns } from "./support/standIns.js"
import { postGzipAs } from "./support/uploads.js"

// Issue 14: the worker process serves its own /metrics and health on METRICS_PORT. After a known load through
// Kafka, S3 and PostgreSQL its counters say what it did, and the consumer lag per partition goes to 0.

const TOPIC = "telemetry.raw"
const TOKEN = "worker-scrape-secret"
const PAYLOADS = 6
const ITEMS = 2
const READINGS_PER_ITEM = 25

/** `telemetry_queue_lag` of the claims' topic, by partition. */
const lagOf = (text: string) =>
  Object.fromEntries(
    samplesOf(text, "telemetry_queue_lag").filter((m) => m.labels?.topic === TOPIC).map((m) => [m.labels!.partition!, Number(m.value)])
  )

const scrape = (base: string, token = TOKEN) =>
  fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } }).then(async (r) => ({ status: r.status, text: await r.text() }))

describe("the worker process's metrics and health server", () => {
  it.scopedLive("counts what it loaded and dead-lettered, and its consumer lag per partition goes to 0", () =>
    Effect.gen(function*() {
      const { env: standInsEnv, kafka, s3 } = yield* runningStandIns
      // One try a delivery: a claim whose storage is down is left queued at once (below).
      const env = { ...standInsEnv, METRICS_TOKEN: TOKEN, KAFKA_LAG_INTERVAL: "300 millis", WORKER_RETRY_ATTEMPTS: "1" }
      // Ingest validates on its main thread: this test is about the worker, and the machine is small.
      const { base: ingestBase, ingest } = yield* startedIngest({ ...env, INGEST_PROCESSES: "0" })

      // Claims wait on Kafka while no worker runs: N payloads from three devices, and a claim whose object is gone.
      const bodies = Array.from({ length: PAYLOADS }, (_, i) =>
        gzipSync(JSON.stringify(bulkPayload(ITEMS, READINGS_PER_ITEM, Date.UTC(2026, 10, 1), `wm${i}`))))
      const statuses = yield* Effect.promise(() => Promise.all(bodies.map((body, i) => postGzipAs(ingestBase, body, `device-${i % 3}`))))
      expect(statuses).toEqual(bodies.map(() => 202))
      yield* kafka.produce(TOPIC, [toMessage(claim())])

      // Ingest reads the group's lag too: per partition, every claim on it (nothing is committed yet).
      const onTopic = yield* kafka.messages(TOPIC)
      const waiting = Object.fromEntries(
        [0, 1, 2].map((p) => [String(p), onTopic.filter((m) => m.partition === p).length])
      )
      expect(onTopic).toHaveLength(PAYLOADS + 1)
      yield* Effect.promise(() =>
        until(ingest, async () => JSON.stringify(lagOf((await scrape(ingestBase)).text)) === JSON.stringify(waiting), 30_000, "ingest's lag")
      )

      const port = yield* Effect.promise(freePort)
      const base = `http://127.0.0.1:${port}`
      const worker = yield* started(() => startWorker({ ...env, METRICS_PORT: String(port) }))
      const waitUntil = (check: () => Promise<boolean>, what: string) =>
        Effect.promise(() => until(worker, check, 120_000, what))

      yield* waitUntil(async () => (await fetch(`${base}/api/v1/health/ready`)).status === 200, "the worker ready")
      const ready = yield* Effect.promise(() => fetch(`${base}/api/v1/health/ready`).then((r) => r.json()))
      expect(ready).toMatchObject({
        status: "ready",
        service: "telemetry-worker",
        checks: { storage: { status: "up" }, queue: { status: "up" }, database: { status: "up" } }
      })
      const alive = yield* Effect.promise(() => fetch(`${base}/api/v1/health`))
      expect([alive.status, (yield* Effect.promise(() => alive.json())).status]).toEqual([200, "healthy"])

      const handled = (text: string) =>
        countOf(text, "telemetry_worker_claims_total", { outcome: "loaded" }) +
        countOf(text, "telemetry_worker_claims_total", { outcome: "dead_lettered" })
      yield* waitUntil(async () => handled((await scrape(base)).text) === PAYLOADS + 1, "every claim handled")
      // And its lag, read after the last commit, is 0 on every partition.
      yield* waitUntil(async () => JSON.stringify(lagOf((await scrape(base)).text)) === JSON.stringify({ 0: 0, 1: 0, 2: 0 }), "no lag")

      const { status, text } = yield* Effect.promise(() => scrape(base))
      expect(status).toBe(200)
      expect(countOf(text, "telemetry_worker_claims_total", { outcome: "loaded" })).toBe(PAYLOADS)
      expect(countOf(text, "telemetry_worker_claims_total", { outcome: "dead_lettered" })).toBe(1)
      expect(countOf(text, "telemetry_worker_claims_total", { outcome: "retried" })).toBe(0)
      expect(countOf(text, "telemetry_worker_readings_loaded_total")).toBe(PAYLOADS * ITEMS * READINGS_PER_ITEM)
      expect(countOf(text, "telemetry_worker_readings_duplicate_total")).toBe(0)
      expect(countOf(text, "telemetry_worker_dead_letters_total", { reason: "object_not_found" })).toBe(1)
      expect(samplesOf(text, "telemetry_worker_dead_letters_total")).toHaveLength(1)
      expect(text).toContain(`telemetry_worker_load_duration_seconds_count ${PAYLOADS}\n`)
      // None of ingest's counters: this is the worker's process.
      expect(countOf(text, "telemetry_ingest_payloads_accepted_total")).toBe(0)

      // The process metrics, sane.
      expect(countOf(text, "process_resident_memory_bytes")).toBeGreaterThan(10 * 1024 * 1024)
      const heapUsed = countOf(text, "nodejs_heap_size_used_bytes")
      expect(heapUsed).toBeGreaterThan(0)
      expect(countOf(text, "nodejs_heap_size_total_bytes")).toBeGreaterThanOrEqual(heapUsed)
      expect(countOf(text, "process_cpu_seconds_total")).toBeGreaterThan(0)
      const startedAt = countOf(text, "process_start_time_seconds")
      expect(startedAt).toBeGreaterThan(Date.now() / 1000 - 600)
      expect(startedAt).toBeLessThanOrEqual(Date.now() / 1000)
      const eventLoopLag = countOf(text, "nodejs_eventloop_lag_seconds")
      expect(eventLoopLag).toBeGreaterThan(0)
      expect(eventLoopLag).toBeLessThan(10)
      // Loading allocated enough for the young generation to be collected at least once.
      expect(Number(/^nodejs_gc_duration_seconds_count\{kind="minor"\} (\d+)$/m.exec(text)?.[1] ?? 0)).toBeGreaterThan(0)

      // Ingest's scrape shows the lag gone too, and the CPU it spent.
      const ingestText = (yield* Effect.promise(() => scrape(ingestBase))).text
      expect(countOf(ingestText, "process_cpu_seconds_total")).toBeGreaterThan(0)
      yield* Effect.promise(() =>
        until(ingest, async () => JSON.stringify(lagOf((await scrape(ingestBase)).text)) === JSON.stringify({ 0: 0, 1: 0, 2: 0 }), 30_000, "ingest's lag 0")
      )

      // /metrics follows the METRICS_TOKEN rule.
      expect((yield* Effect.promise(() => scrape(base, "wrong"))).status).toBe(401)

      // In detail, as ingest says it, with its worker: nothing failed.
      const detailed = () => fetch(`${base}/api/v1/health/detailed`).then(async (r) => ({ code: r.status, ...(await r.json()) }))
      expect(yield* Effect.promise(detailed)).toMatchObject({
        code: 200,
        status: "healthy",
        service: "telemetry-worker",
        checks: {
          storage: { status: "up" },
          queue: { status: "up", backlog: { pending: 0, stalled_seconds: 0 } },
          database: { status: "up" },
          worker: { status: "up", restarts: 0, failed_deliveries: 0, last_handled_at: expect.any(String), busy_since: null }
        }
      })

      // Storage down: a claim's delivery fails and the claim is left queued, counted in its metrics and its health.
      yield* Effect.promise(() => s3.down())
      yield* kafka.produce(TOPIC, [toMessage(claim())])
      yield* waitUntil(
        async () => countOf((await scrape(base)).text, "telemetry_worker_claims_total", { outcome: "left_queued" }) >= 2,
        "a claim left queued twice"
      )
      const failing = yield* Effect.promise(detailed)
      expect(failing).toMatchObject({ code: 503, status: "unhealthy", checks: { storage: { status: "down" }, worker: { restarts: 0 } } })
      expect(failing.checks.worker.failed_deliveries).toBeGreaterThanOrEqual(2)
      yield* Effect.promise(() => s3.up())
      // Its object never was: once storage answers, it is dead-lettered.
      yield* waitUntil(
        async () => countOf((await scrape(base)).text, "telemetry_worker_dead_letters_total", { reason: "object_not_found" }) === 2,
        "the claim dead-lettered"
      )

      // The queue down: not ready, naming it.
      yield* kafka.brokerDown(1)
      yield* waitUntil(async () => (await fetch(`${base}/api/v1/health/ready`)).status === 503, "the worker not ready")
      const notReady = yield* Effect.promise(() => fetch(`${base}/api/v1/health/ready`).then((r) => r.json()))
      expect(notReady).toMatchObject({ status: "not_ready", checks: { queue: { status: "down" }, storage: { status: "up" } } })
      expect(notReady.reasons).toEqual([expect.stringMatching(/^the queue is down: /)])
      yield* kafka.brokerUp(1)
    }).pipe(Effect.scoped, Effect.provide(standIns({ [TOPIC]: 3, "telemetry.dlq": 1 }))), { timeout: 300_000 })
})
