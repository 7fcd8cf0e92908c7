import { describe, expect, it } from "@effect/vitest"
import * as KafkaMock from "@telemetry/testbed/KafkaMock"
import { Duration, Effect, Fiber, Ref, Schedule } from "effect"
import { Kafka, logLevel } from "kafkajs"
import { randomUUID } from "node:crypto"
import { ClaimCheck } from "../src/ClaimCheck.js"
import { ClaimQueue } from "../src/queue/ClaimQueue.js"
import * as KafkaClaimQueue from "../src/queue/KafkaClaimQueue.js"

const TOPIC = "telemetry.raw"
const GROUP = "telemetry-workers"

const claim = (deviceId: string | null) =>
  new ClaimCheck({
    version: 1,
    claim_id: randomUUID(),
    claim_check: `telemetry/2026-11-29T00-00-00-000Z/${randomUUID()}.json.gz`,
    storage_type: "s3",
    bucket: "telemetry-raw",
    file_size: 120,
    original_size: 900,
    compression: "gzip",
    timestamp: "2026-11-29T00:00:00.000Z",
    metadata: { requestId: randomUUID(), deviceId, tenantId: "default", itemsCount: 2, totalSensors: 7, fileSize: 120 }
  })

const queueOn = (cluster: KafkaMock.KafkaMockShape, overrides: Partial<KafkaClaimQueue.KafkaQueueOptions> = {}) =>
  KafkaClaimQueue.layer({
    brokers: [cluster.bootstrap],
    clientId: "test",
    topic: TOPIC,
    groupId: GROUP,
    publishTimeout: Duration.seconds(5),
    sessionTimeout: Duration.seconds(6),
    heartbeatInterval: Duration.seconds(1),
    partitionsConcurrently: 3,
    ...overrides
  })

/** Offsets the group committed, summed over the partitions. */
const committed = (cluster: KafkaMock.KafkaMockShape) =>
  Effect.acquireUseRelease(
    Effect.promise(async () => {
      const admin = new Kafka({ brokers: [cluster.bootstrap], logLevel: logLevel.NOTHING }).admin()
      await admin.connect()
      return admin
    }),
    (admin) =>
      Effect.promise(() => admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] })).pipe(
        Effect.map(([topic]) => topic!.partitions.reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0))
      ),
    (admin) => Effect.promise(() => admin.disconnect())
  )

const waitFor = <A, E, R>(effect: Effect.Effect<A, E, R>, until: (a: A) => boolean) =>
  Effect.repeat(effect, { until, schedule: Schedule.spaced("200 millis") }).pipe(
    Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("condition not reached in time") })
  )

/** Runs a consumer that records what it handled until `done` holds, then stops it. */
const consumeUntil = <E, E2>(
  handle: (claim: ClaimCheck) => Effect.Effect<void, E>,
  seen: Ref.Ref<ReadonlyArray<string>>,
  done: Effect.Effect<boolean, E2>
) =>
  Effect.gen(function*() {
    const queue = yield* ClaimQueue
    const fiber = yield* Effect.fork(queue.consume((c) => Effect.zipRight(handle(c), Ref.update(seen, (s) => [...s, c.claim_id]))))
    yield* waitFor(done, (ok) => ok)
    yield* Fiber.interrupt(fiber)
  })

/** Publishes claims straight to chosen partitions (our producer picks them by key). */
const publishTo = (cluster: KafkaMock.KafkaMockShape, placed: ReadonlyArray<readonly [ClaimCheck, number]>) =>
  Effect.promise(async () => {
    const producer = new Kafka({ brokers: [cluster.bootstrap], logLevel: logLevel.NOTHING }).producer()
    await producer.connect()
    await producer.send({
      topic: TOPIC,
      messages: placed.map(([c, partition]) => ({ partition, value: JSON.stringify(c) }))
    })
    await producer.disconnect()
  })

describe("KafkaClaimQueue on librdkafka's mock cluster", () => {
  it.scopedLive("publishes claim checks per contract §2 (key, headers, JSON value)", () =>
    Effect.gen(function*() {
      const cluster = yield* KafkaMock.start({ topics: { [TOPIC]: 3 } })
      const withDevice = claim("device-7")
      const withoutDevice = claim(null)
      yield* Effect.flatMap(ClaimQueue, (q) => Effect.zipRight(q.publish(withDevice), q.publish(withoutDevice))).pipe(
        Effect.provide(queueOn(cluster))
      )
      // Read back raw with a plain kafkajs consumer of another group.
      const messages = yield* Effect.promise(async () => {
        const consumer = new Kafka({ brokers: [cluster.bootstrap], logLevel: logLevel.NOTHING }).consumer({ groupId: "inspect" })
        await consumer.connect()
        await consumer.subscribe({ topic: TOPIC, fromBeginning: true })
        const got: Array<{ key: string; value: unknown; headers: Record<string, string> }> = []
        await new Promise<void>((resolve) => {
          void consumer.run({
            eachMessage: async ({ message }) => {
              got.push({
                key: message.key!.toString(),
                value: JSON.parse(message.value!.toString()),
                headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]))
              })
              if (got.length === 2) resolve()
            }
          })
        })
        await consumer.disconnect()
        return got
      })
      const byKey = Object.fromEntries(messages.map((m) => [m.key, m]))
      expect(Object.keys(byKey).sort()).toEqual(["device-7", withoutDevice.claim_id].sort())
      const m = byKey["device-7"]!
      expect(m.value).toEqual(JSON.parse(JSON.stringify(withDevice)))
      expect(m.headers).toEqual({
        "content-type": "application/json",
        "message-type": "claim-check",
        "request-id": withDevice.metadata.requestId,
        "items-count": "2",
        "sensors-count": "7",
        "file-size": "120"
      })
    }), { timeout: 60_000 })

  it.scopedLive("commits each claim after it was handled, resumes after the committed offsets, redelivers a failed one", () =>
    Effect.gen(function*() {
      const cluster = yield* KafkaMock.start({ topics: { [TOPIC]: 3 } })
      const queue = queueOn(cluster)
      const first = Array.from({ length: 6 }, (_, i) => claim(`device-${i}`))
      const seen = yield* Ref.make<ReadonlyArray<string>>([])
      yield* Effect.gen(function*() {
        const q = yield* ClaimQueue
        yield* Effect.forEach(first, q.publish, { discard: true })
        yield* consumeUntil(() => Effect.void, seen, Effect.map(committed(cluster), (n) => n === 6))
      }).pipe(Effect.provide(queue))
      expect([...(yield* Ref.get(seen))].sort()).toEqual(first.map((c) => c.claim_id).sort())
      expect(yield* committed(cluster)).toBe(6)

      // A claim whose handling fails stays unacknowledged: the next member gets it again, and only the rest.
      const second = Array.from({ length: 3 }, (_, i) => claim(`device-${i}`))
      const failing = second[0]!.claim_id
      const failures = yield* Ref.make(0)
      const seenAgain = yield* Ref.make<ReadonlyArray<string>>([])
      yield* Effect.gen(function*() {
        const q = yield* ClaimQueue
        yield* Effect.forEach(second, q.publish, { discard: true })
        const failOnce = (c: ClaimCheck) =>
          c.claim_id === failing
            ? Effect.flatMap(Ref.getAndUpdate(failures, (n) => n + 1), (n) => (n === 0 ? Effect.fail("database down") : Effect.void))
            : Effect.void
        // The member stops at the failure, as the worker's consumer does; the worker then starts a new one.
        const stoppedWith = yield* q.consume((c) => Effect.zipRight(failOnce(c), Ref.update(seenAgain, (s) => [...s, c.claim_id]))).pipe(
          Effect.flip
        )
        expect(stoppedWith).toBe("database down")
        yield* consumeUntil(failOnce, seenAgain, Effect.map(committed(cluster), (n) => n === 9))
      }).pipe(Effect.provide(queue))
      const handled = yield* Ref.get(seenAgain)
      expect(handled.filter((id) => id === failing)).toHaveLength(1)
      expect(new Set(handled)).toEqual(new Set(second.map((c) => c.claim_id)))
      expect(handled.some((id) => first.some((c) => c.claim_id === id))).toBe(false)
    }), { timeout: 90_000 })

  it.scopedLive("keeps its partitions through a load longer than the session timeout", () =>
    Effect.gen(function*() {
      const cluster = yield* KafkaMock.start({ topics: { [TOPIC]: 3 } })
      const seen = yield* Ref.make<ReadonlyArray<string>>([])
      const slow = claim("device-slow")
      yield* Effect.gen(function*() {
        const q = yield* ClaimQueue
        yield* q.publish(slow)
        // Had the member been dropped mid-load, the mock would refuse its commit and the claim would come back.
        yield* consumeUntil(() => Effect.sleep(Duration.seconds(10)), seen, Effect.map(committed(cluster), (n) => n === 1))
      }).pipe(Effect.provide(queueOn(cluster)))
      expect(yield* Ref.get(seen)).toEqual([slow.claim_id])
    }), { timeout: 60_000 })

  it.scopedLive("loads the other partitions while one partition's claim is slow", () =>
    Effect.gen(function*() {
      const cluster = yield* KafkaMock.start({ topics: { [TOPIC]: 3 } })
      const slow = claim("slow")
      const fast = [claim("fast-1"), claim("fast-2"), claim("fast-1b")]
      yield* publishTo(cluster, [[slow, 0], [fast[0]!, 1], [fast[1]!, 2], [fast[2]!, 1]])
      const finished = yield* Ref.make<ReadonlyArray<string>>([])
      yield* consumeUntil(
        (c) => (c.claim_id === slow.claim_id ? Effect.sleep(Duration.seconds(8)) : Effect.void),
        finished,
        Effect.map(committed(cluster), (n) => n === 4)
      ).pipe(Effect.provide(queueOn(cluster)))
      // The slow claim finished last: the others did not wait for it.
      const order = yield* Ref.get(finished)
      expect(order.at(-1)).toBe(slow.claim_id)
      expect(new Set(order.slice(0, 3))).toEqual(new Set(fast.map((c) => c.claim_id)))
    }), { timeout: 60_000 })

  it.scopedLive("a member that kafkajs gives up on fails, and a new member takes the claims", () =>
    Effect.gen(function*() {
      const cluster = yield* KafkaMock.start({ topics: { [TOPIC]: 3 } })
      const c = claim("d")
      yield* Effect.gen(function*() {
        const q = yield* ClaimQueue
        yield* q.publish(c)
        // SyncGroup (API 14) answered INVALID_REQUEST (42), as the mock does to a member joining a running group.
        yield* cluster.requestErrors(14, 42, 1)
        const failed = yield* Effect.flip(q.consume(() => Effect.void)).pipe(Effect.timeout("30 seconds"))
        expect(failed._tag).toBe("QueueError")
        const seen = yield* Ref.make<ReadonlyArray<string>>([])
        yield* consumeUntil(() => Effect.void, seen, Effect.map(committed(cluster), (n) => n === 1))
        expect(yield* Ref.get(seen)).toEqual([c.claim_id])
      }).pipe(Effect.provide(queueOn(cluster)))
    }), { timeout: 60_000 })

  it.scopedLive("refuses a publish within its timeout while the broker is down, and publishes once it is back", () =>
    Effect.gen(function*() {
      const cluster = yield* KafkaMock.start({ topics: { [TOPIC]: 3 } })
      yield* Effect.gen(function*() {
        const q = yield* ClaimQueue
        yield* q.publish(claim("d"))
        yield* cluster.brokerDown(1)
        const refused = yield* Effect.flip(q.publish(claim("d")))
        expect(refused._tag).toBe("QueueError")
        yield* cluster.brokerUp(1)
        yield* q.publish(claim("d")).pipe(Effect.retry({ times: 10, schedule: Schedule.spaced("1 second") }))
      }).pipe(Effect.provide(queueOn(cluster, { publishTimeout: Duration.seconds(2) })))
    }), { timeout: 60_000 })
})
