import { describe, expect, it } from "@effect/vitest"
import { ClaimCheck, ClaimQueue, ClaimRejected } from "@telemetry/domain"
import * as KafkaMock from "@telemetry/testbed/KafkaMock"
import { Chunk, Deferred, Duration, Effect, Exit, Fiber, Logger, Metric, Ref, Schedule, type Scope, Stream } from "effect"
import { randomUUID } from "node:crypto"
import * as KafkaClaimQueue from "../src/queue/kafka/KafkaClaimQueue.js"
import * as QueueMetrics from "../src/queue/QueueMetrics.js"
import { stopDuring } from "./support/queue.js"

const TOPIC = "telemetry.raw"
const DLQ = "telemetry.dlq"
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
    deadLetterTopic: DLQ,
    shutdownTimeout: Duration.seconds(20),
    ...overrides
  })

/** The backlog's partitions of the topic with these lags. */
const lags = (values: ReadonlyArray<number>) => values.map((lag, partition) => ({ topic: TOPIC, partition, lag }))

/** The `telemetry_queue_lag` gauges of the topic's three partitions, as scraped. */
const lagGauges = Effect.forEach([0, 1, 2], (partition) =>
  Effect.map(Metric.value(QueueMetrics.lagOf(TOPIC, partition)), (state) => state.value))

/** Offsets the group committed, summed over the partitions. */
const committed = (cluster: KafkaMock.KafkaMockShape) =>
  Effect.map(cluster.committed(GROUP, TOPIC), (offsets) => offsets.reduce((sum, n) => sum + n, 0))

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
  cluster.produce(TOPIC, placed.map(([c, partition]) => ({ partition, value: JSON.stringify(c) })))

/**
 * Runs `test` on a new mock cluster with `topics`, with our queue on it (the options above, and `overrides`) as the
 * ClaimQueue until `test` ends.
 */
const onQueue = <A, E>(
  topics: Readonly<Record<string, number>>,
  test: (queue: ClaimQueue["Type"], cluster: KafkaMock.KafkaMockShape) => Effect.Effect<A, E, ClaimQueue | Scope.Scope>,
  overrides: Partial<KafkaClaimQueue.KafkaQueueOptions> = {}
) =>
  Effect.gen(function*() {
    const cluster = yield* KafkaMock.start({ topics })
    return yield* Effect.flatMap(ClaimQueue, (queue) => test(queue, cluster)).pipe(Effect.provide(queueOn(cluster, overrides)))
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
      // Read back raw by a plain consumer of another group.
      const messages = yield* cluster.messages(TOPIC)
      const byKey = Object.fromEntries(messages.map((m) => [m.key, m]))
      expect(Object.keys(byKey).sort()).toEqual(["device-7", withoutDevice.claim_id].sort())
      const m = byKey["device-7"]!
      expect(JSON.parse(m.value!)).toEqual(JSON.parse(JSON.stringify(withDevice)))
      expect(m.headers).toEqual({
        "content-type": "application/json",
        "message-type": "claim-check",
        "request-id": withDevice.metadata.requestId,
        "items-count": "2",
        "sensors-count": "7",
        "file-size": "120"
      })
    }), { timeout: 60_000 })

  it.scopedLive("commits each claim after it was handled, resumes after the committed offsets, hands a failed one out again", () =>
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

      // A claim whose handling fails stays unacknowledged and is handled again by the same member after a pause;
      // the member goes on (had it stopped, consumeUntil would have ended with the failure).
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
        yield* consumeUntil(failOnce, seenAgain, Effect.map(committed(cluster), (n) => n === 9))
      }).pipe(Effect.provide(queue))
      expect(yield* Ref.get(failures)).toBe(2)
      const handled = yield* Ref.get(seenAgain)
      expect(handled.filter((id) => id === failing)).toHaveLength(1)
      expect(new Set(handled)).toEqual(new Set(second.map((c) => c.claim_id)))
      expect(handled.some((id) => first.some((c) => c.claim_id === id))).toBe(false)
    }), { timeout: 90_000 })

  it.scopedLive("its backlog is the group's lag, stalled from when the lag appeared until the group commits again", () =>
    onQueue({ [TOPIC]: 3 }, (q, cluster) =>
      Effect.gen(function*() {
        expect(yield* q.backlog).toEqual({ pending: 0, stalledFor: Duration.zero, partitions: lags([0, 0, 0]) })
        yield* Effect.sleep("1100 millis")
        const claims = Array.from({ length: 3 }, (_, i) => claim(`device-${i}`))
        yield* Effect.forEach(claims, q.publish, { discard: true })
        // The stall counts from the first check that saw the lag, not from the last one (nothing waited then).
        const waiting = yield* q.backlog
        expect(waiting.stalledFor).toEqual(Duration.zero)
        yield* Effect.sleep("1100 millis")
        const stalled = yield* q.backlog
        expect(waiting.pending).toBe(3)
        expect(stalled.pending).toBe(3)
        expect(stalled.partitions.map((p) => p.partition)).toEqual([0, 1, 2])
        expect(stalled.partitions.reduce((sum, p) => sum + p.lag, 0)).toBe(3)
        // Nothing commits: the stall grows from when the lag was first seen.
        expect(Duration.toMillis(stalled.stalledFor)).toBeGreaterThanOrEqual(Duration.toMillis(waiting.stalledFor) + 1000)

        const handled = yield* Ref.make<ReadonlyArray<string>>([])
        yield* consumeUntil(() => Effect.void, handled, Effect.map(committed(cluster), (n) => n === 3))
        expect(yield* q.backlog).toEqual({ pending: 0, stalledFor: Duration.zero, partitions: lags([0, 0, 0]) })
      })), { timeout: 60_000 })

  it.scopedLive("its stall is the longest of its partitions': one stuck stays stalled while the others commit", () =>
    onQueue({ [TOPIC]: 3 }, (q, cluster) =>
      Effect.gen(function*() {
        const poison = claim("p")
        yield* publishTo(cluster, [[poison, 0], [claim("p"), 0]])
        const consuming = yield* Effect.fork(q.consume((c) => (c.claim_id === poison.claim_id ? Effect.fail("database down") : Effect.void)))
        const first = yield* q.backlog
        // The other partitions take claims and commit them, again and again; partition 0 does not move.
        for (let round = 1; round <= 3; round++) {
          yield* publishTo(cluster, [[claim("o"), 1], [claim("o"), 2]])
          yield* waitFor(cluster.committed(GROUP, TOPIC), (offsets) => offsets[1] === round && offsets[2] === round)
          yield* Effect.sleep("400 millis")
        }
        const later = yield* q.backlog
        expect(later.partitions).toEqual(lags([2, 0, 0]))
        expect(Duration.toMillis(later.stalledFor)).toBeGreaterThanOrEqual(Duration.toMillis(first.stalledFor) + 1200)
        expect(later.stalledPartition).toBe(0)
        yield* Fiber.interrupt(consuming)
      }), { redeliveryBackoff: Schedule.spaced("10 seconds") }), { timeout: 60_000 })

  it.scopedLive("reads the group's lag per partition into telemetry_queue_lag every KAFKA_LAG_INTERVAL", () =>
    onQueue({ [TOPIC]: 3 }, (_, cluster) =>
      Effect.gen(function*() {
        yield* publishTo(cluster, [[claim("a"), 0], [claim("b"), 0], [claim("c"), 2]])
        yield* waitFor(lagGauges, (lag) => lag.join() === "2,0,1")
        const handled = yield* Ref.make<ReadonlyArray<string>>([])
        yield* consumeUntil(() => Effect.void, handled, Effect.map(committed(cluster), (n) => n === 3))
        yield* waitFor(lagGauges, (lag) => lag.join() === "0,0,0")
      }), { lagInterval: Duration.millis(200) }), { timeout: 60_000 })

  it.scopedLive("keeps its partitions through a load longer than the session timeout", () =>
    onQueue({ [TOPIC]: 3 }, (q, cluster) =>
      Effect.gen(function*() {
        const seen = yield* Ref.make<ReadonlyArray<string>>([])
        const slow = claim("device-slow")
        yield* q.publish(slow)
        // Had the member been dropped mid-load, the mock would refuse its commit and the claim would come back.
        yield* consumeUntil(() => Effect.sleep(Duration.seconds(10)), seen, Effect.map(committed(cluster), (n) => n === 1))
        expect(yield* Ref.get(seen)).toEqual([slow.claim_id])
      })), { timeout: 60_000 })

  it.scopedLive("loads the other partitions while one partition's claim is slow", () =>
    onQueue({ [TOPIC]: 3 }, (_, cluster) =>
      Effect.gen(function*() {
        const slow = claim("slow")
        const fast = [claim("fast-1"), claim("fast-2"), claim("fast-1b")]
        yield* publishTo(cluster, [[slow, 0], [fast[0]!, 1], [fast[1]!, 2], [fast[2]!, 1]])
        const finished = yield* Ref.make<ReadonlyArray<string>>([])
        yield* consumeUntil(
          (c) => (c.claim_id === slow.claim_id ? Effect.sleep(Duration.seconds(8)) : Effect.void),
          finished,
          Effect.map(committed(cluster), (n) => n === 4)
        )
        // The slow claim finished last: the others did not wait for it.
        const order = yield* Ref.get(finished)
        expect(order.at(-1)).toBe(slow.claim_id)
        expect(new Set(order.slice(0, 3))).toEqual(new Set(fast.map((c) => c.claim_id)))
      })), { timeout: 60_000 })

  it.scopedLive("a claim that keeps failing holds up only its partition, handled again in place: the member stays in the group", () =>
    onQueue({ [TOPIC]: 3 }, (q, cluster) =>
      Effect.gen(function*() {
        const [poison, behind] = [claim("p"), claim("p")]
        const others = [claim("o-1"), claim("o-2"), claim("o-1b")]
        yield* publishTo(cluster, [[poison, 0], [behind, 0], [others[0]!, 1], [others[1]!, 2], [others[2]!, 1]])
        const tries = yield* Ref.make(0)
        const finished = yield* Ref.make<ReadonlyArray<string>>([])
        const joins = yield* Ref.make(0)
        const countJoins = Logger.make(({ message }) => {
          if (String(message).startsWith("worker: consuming claims")) Effect.runSync(Ref.update(joins, (n) => n + 1))
        })
        const consuming = yield* Effect.fork(q.consume((c) =>
          (c.claim_id === poison.claim_id
            ? Effect.flatMap(Ref.updateAndGet(tries, (n) => n + 1), (n) => (n <= 4 ? Effect.fail("database refused it") : Effect.void))
            : Effect.void).pipe(Effect.zipRight(Ref.update(finished, (ids) => [...ids, c.claim_id])))
        ).pipe(Effect.provide(Logger.add(countJoins))))
        // The other partitions' claims are done while the poison fails; the claim behind it waits.
        yield* waitFor(cluster.committed(GROUP, TOPIC), (offsets) => offsets[1] === 2 && offsets[2] === 1)
        expect(yield* Ref.get(finished)).not.toContain(behind.claim_id)
        yield* waitFor(committed(cluster), (n) => n === 5)
        expect(yield* Ref.get(tries)).toBe(5)
        expect((yield* Ref.get(finished)).slice(-2)).toEqual([poison.claim_id, behind.claim_id])
        // One member all along: it joined the group once, and its consumer never ended.
        expect(yield* Ref.get(joins)).toBe(1)
        expect(consuming.unsafePoll()).toBeNull()
        yield* Fiber.interrupt(consuming)
      }), { redeliveryBackoff: Schedule.spaced("300 millis") }), { timeout: 60_000 })

  it.scopedLive("a partition that moved away gives up its failed claim: had it come back, its old pause would take the claim again", () =>
    Effect.gen(function*() {
      const cluster = yield* KafkaMock.start({ topics: { [TOPIC]: 3 } })
      const claims = [claim("a"), claim("b"), claim("c")]
      yield* publishTo(cluster, claims.map((c, partition) => [c, partition] as const))
      const pause = Duration.seconds(40)
      const failedAt = new Map<string, number>()
      const done = yield* Ref.make<ReadonlyArray<{ readonly id: string; readonly at: number }>>([])
      const succeed = (c: ClaimCheck) => Ref.update(done, (d) => [...d, { id: c.claim_id, at: Date.now() }])
      // The first member fails each claim once; its pause outlasts a second member's coming and going.
      const first = yield* Effect.fork(Effect.flatMap(ClaimQueue, (q) =>
        q.consume((c) =>
          Effect.suspend(() =>
            failedAt.has(c.claim_id)
              ? succeed(c)
              : Effect.zipRight(Effect.sync(() => failedAt.set(c.claim_id, Date.now())), Effect.fail("database down"))
          )
        )).pipe(Effect.provide(queueOn(cluster, { redeliveryBackoff: Schedule.spaced(pause) }))))
      yield* waitFor(Effect.sync(() => failedAt.size), (n) => n === 3)
      // The second member takes one or two partitions and does their claims (joining a running group can fail on
      // the mock: it joins again), then leaves, and the first member gets every partition back.
      const second = yield* Effect.fork(Effect.flatMap(ClaimQueue, (q) => q.consume(succeed)).pipe(
        Effect.retry(Schedule.spaced("500 millis")),
        Effect.provide(queueOn(cluster))
      ))
      yield* waitFor(Ref.get(done), (d) => d.length > 0)
      yield* Effect.sleep("2 seconds")
      yield* Fiber.interrupt(second)
      const pausesEnd = Math.max(...failedAt.values()) + Duration.toMillis(pause)
      yield* Effect.sleep(Duration.millis(Math.max(0, pausesEnd + 5_000 - Date.now())))
      yield* waitFor(committed(cluster), (n) => n === 3)
      const handled = yield* Ref.get(done)
      expect([...new Set(handled.map((h) => h.id))].sort()).toEqual(claims.map((c) => c.claim_id).sort())
      // Each claim is done by whichever member owned its partition then (the first member's kept partitions wait
      // out their pause) — and again by its next owner when its commit fell in a rebalance (Kafka refuses it then;
      // the ledger skips such a claim). What must not happen is an old pause ending and taking a done claim again.
      const doneAgainAtPauseEnd = handled.filter((h, i) =>
        h.at >= failedAt.get(h.id)! + Duration.toMillis(pause) - 1_000 && handled.slice(0, i).some((e) => e.id === h.id)
      )
      expect(doneAgainAtPauseEnd).toEqual([])
      expect(first.unsafePoll()).toBeNull()
      yield* Fiber.interrupt(first)
    }), { timeout: 120_000 })

  it.scopedLive("stopped while a failed claim waits to be handled again, leaves at once and commits nothing", () =>
    onQueue({ [TOPIC]: 1 }, (q, cluster) =>
      Effect.gen(function*() {
        yield* q.publish(claim("d"))
        const failed = yield* Deferred.make<void>()
        const consuming = yield* Effect.fork(q.consume(() => Effect.zipRight(Deferred.succeed(failed, undefined), Effect.fail("down"))))
        yield* Deferred.await(failed)
        // The pause (10 minutes) and the shutdown timeout (a minute) both outlast the test's timeout.
        expect(Exit.isInterrupted(yield* Fiber.interrupt(consuming))).toBe(true)
        expect(yield* committed(cluster)).toBe(0)
      }), { redeliveryBackoff: Schedule.spaced("10 minutes"), shutdownTimeout: Duration.minutes(1) }), { timeout: 45_000 })

  it.scopedLive("a failed claim's pause ends sooner when retrySooner does (its dependencies answer again)", () =>
    onQueue({ [TOPIC]: 1 }, (q, cluster) =>
      Effect.gen(function*() {
        yield* q.publish(claim("d"))
        const back = yield* Deferred.make<void>()
        const tries = yield* Ref.make(0)
        const consuming = yield* Effect.fork(q.consume(
          () => Effect.flatMap(Ref.updateAndGet(tries, (n) => n + 1), (n) => (n === 1 ? Effect.fail("database down") : Effect.void)),
          { retrySooner: Deferred.await(back) }
        ))
        yield* waitFor(Ref.get(tries), (n) => n === 1)
        yield* Effect.sleep("1 second")
        expect(yield* Ref.get(tries)).toBe(1)
        // The pause (10 minutes) outlasts the test: the claim is handled again and committed because of `back`.
        yield* Deferred.succeed(back, undefined)
        yield* waitFor(committed(cluster), (n) => n === 1)
        expect(yield* Ref.get(tries)).toBe(2)
        yield* Fiber.interrupt(consuming)
      }), { redeliveryBackoff: Schedule.spaced("10 minutes") }), { timeout: 45_000 })

  it.scopedLive("a member that kafkajs gives up on fails, and a new member takes the claims", () =>
    onQueue({ [TOPIC]: 3 }, (q, cluster) =>
      Effect.gen(function*() {
        const c = claim("d")
        yield* q.publish(c)
        // SyncGroup (API 14) answered INVALID_REQUEST (42), as the mock does to a member joining a running group.
        yield* cluster.requestErrors(14, 42, 1)
        const failed = yield* Effect.flip(q.consume(() => Effect.void)).pipe(Effect.timeout("30 seconds"))
        expect(failed._tag).toBe("QueueError")
        const seen = yield* Ref.make<ReadonlyArray<string>>([])
        yield* consumeUntil(() => Effect.void, seen, Effect.map(committed(cluster), (n) => n === 1))
        expect(yield* Ref.get(seen)).toEqual([c.claim_id])
      })), { timeout: 60_000 })

  it.scopedLive("refuses a publish within its timeout while the broker is down, and publishes once it is back", () =>
    onQueue({ [TOPIC]: 3 }, (q, cluster) =>
      Effect.gen(function*() {
        yield* q.publish(claim("d"))
        yield* cluster.brokerDown(1)
        const refused = yield* Effect.flip(q.publish(claim("d")))
        expect(refused._tag).toBe("QueueError")
        yield* cluster.brokerUp(1)
        yield* q.publish(claim("d")).pipe(Effect.retry({ times: 10, schedule: Schedule.spaced("1 second") }))
      }), { publishTimeout: Duration.seconds(2) }), { timeout: 60_000 })

  it.scopedLive("keeps a rejected claim and a message that is not a claim on the dead-letter topic, then commits them", () =>
    onQueue({ [TOPIC]: 1, [DLQ]: 1 }, (q, cluster) =>
      Effect.gen(function*() {
        const rejected = claim("device-bad")
        const good = claim("device-good")
        const before = new Date()
        yield* q.publish(rejected)
        yield* cluster.produce(TOPIC, [{ key: "junk", value: "not a claim", headers: { origin: "elsewhere" } }])
        yield* q.publish(good)
        const seen = yield* Ref.make<ReadonlyArray<string>>([])
        yield* consumeUntil(
          (c) =>
            c.claim_id === rejected.claim_id
              ? new ClaimRejected({ reason: "invalid_payload", message: "[0].sensor[0].sensor_uuid is missing", attempts: 1 })
              : Effect.void,
          seen,
          Effect.map(committed(cluster), (n) => n === 3)
        )
        // The rejected claim reached the handler; the unreadable message did not.
        expect(yield* Ref.get(seen)).toEqual([good.claim_id])

        const letters = yield* cluster.messages(DLQ)
        expect(letters).toHaveLength(2)
        const [first, second] = letters
        // The claim as it was published: same key, value and headers, plus why, when and where from.
        expect(first!.key).toBe("device-bad")
        expect(JSON.parse(first!.value!)).toEqual(JSON.parse(JSON.stringify(rejected)))
        expect(first!.headers).toMatchObject({
          "message-type": "claim-check",
          "request-id": rejected.metadata.requestId,
          "dlq-reason": "invalid_payload",
          "dlq-error": "[0].sensor[0].sensor_uuid is missing",
          "dlq-attempts": "1",
          "dlq-source": `${TOPIC}/0@0`
        })
        expect(Date.parse(first!.headers["dlq-failed-at"]!)).toBeGreaterThanOrEqual(before.getTime() - 1000)
        // A message that is not a claim check is forwarded byte for byte.
        expect(second).toMatchObject({ key: "junk", value: "not a claim" })
        expect(second!.headers).toMatchObject({
          origin: "elsewhere",
          "dlq-reason": "unreadable_message",
          "dlq-attempts": "0",
          "dlq-source": `${TOPIC}/0@1`
        })
      })), { timeout: 60_000 })

  it.scopedLive("reads the dead letters back by failure time", () =>
    onQueue({ [TOPIC]: 1, [DLQ]: 1 }, (q, cluster) =>
      Effect.gen(function*() {
        const claims = [claim("a"), claim("b")]
        expect(yield* Stream.runCollect(q.deadLetters({}))).toHaveLength(0)
        yield* Effect.forEach(claims, q.publish, { discard: true })
        const seen = yield* Ref.make<ReadonlyArray<string>>([])
        yield* consumeUntil(
          () => new ClaimRejected({ reason: "retries_exhausted", message: "connection reset", attempts: 6 }),
          seen,
          Effect.map(committed(cluster), (n) => n === 2)
        )
        const all = Chunk.toReadonlyArray(yield* Stream.runCollect(q.deadLetters({})))
        expect(all.map((l) => [l.claim?.claim_id, l.reason, l.error, l.attempts, l.source])).toEqual([
          [claims[0]!.claim_id, "retries_exhausted", "connection reset", 6, `${TOPIC}/0@0`],
          [claims[1]!.claim_id, "retries_exhausted", "connection reset", 6, `${TOPIC}/0@1`]
        ])
        expect(all[0]!.claim).toEqual(claims[0])
        const failedAt = all[1]!.failedAt
        expect(yield* Stream.runCount(q.deadLetters({ from: new Date(failedAt.getTime() + 1) }))).toBe(0)
        expect(yield* Stream.runCount(q.deadLetters({ from: all[0]!.failedAt, to: new Date(failedAt.getTime() + 1) }))).toBe(2)
      })), { timeout: 60_000 })

  it.scopedLive("tries a dead letter the broker refuses again, holding back only its partition, and commits its claim once it is kept", () =>
    onQueue({ [TOPIC]: 2, [DLQ]: 1 }, (q, cluster) =>
      Effect.gen(function*() {
        const [poison, good] = [claim("p"), claim("g")]
        yield* publishTo(cluster, [[poison, 0], [good, 1]])
        // Produce (API 0) refused with TOPIC_AUTHORIZATION_FAILED (29), which kafkajs does not retry: 6 tries
        // refused, ~15 s of backoff.
        yield* cluster.requestErrors(0, 29, 6)
        const seen = yield* Ref.make<ReadonlyArray<string>>([])
        const consuming = yield* Effect.fork(q.consume((c) =>
          Effect.zipRight(
            Ref.update(seen, (s) => [...s, c.claim_id]),
            c.claim_id === poison.claim_id
              ? Effect.fail(new ClaimRejected({ reason: "object_not_found", message: "gone", attempts: 1 }))
              : Effect.void
          )
        ))
        // The other partition's claim is handled and committed while the letter waits.
        yield* waitFor(cluster.committed(GROUP, TOPIC), (offsets) => offsets[1] === 1)
        expect((yield* Ref.get(seen)).includes(poison.claim_id)).toBe(true)
        expect(yield* cluster.messages(DLQ)).toHaveLength(0)
        expect((yield* cluster.committed(GROUP, TOPIC))[0] ?? 0).toBe(0)
        // Then the letter is kept and its claim committed, the consumer running all along.
        yield* waitFor(committed(cluster), (n) => n === 2)
        expect((yield* cluster.messages(DLQ)).map((m) => m.headers["dlq-reason"])).toEqual(["object_not_found"])
        expect(consuming.unsafePoll()).toBeNull()
        yield* Fiber.interrupt(consuming)
      })), { timeout: 90_000 })

  it.scopedLive("stopped, lets a claim in progress finish and commits it, then takes no more", () =>
    onQueue({ [TOPIC]: 1 }, (q, cluster) =>
      Effect.gen(function*() {
        const [slow, next] = [claim("d"), claim("d")]
        yield* q.publish(slow)
        yield* q.publish(next)
        expect(yield* stopDuring(() => Effect.sleep("3 seconds"))).toEqual({ finished: [slow.claim_id], interrupted: true })
        expect(yield* committed(cluster)).toBe(1)
      })), { timeout: 60_000 })

  it.scopedLive("stopped, interrupts a claim that outlasts the shutdown timeout and leaves it unacknowledged", () =>
    onQueue({ [TOPIC]: 1 }, (q, cluster) =>
      Effect.gen(function*() {
        yield* q.publish(claim("d"))
        const interrupted = yield* Deferred.make<void>()
        const outlasting = Effect.onInterrupt(Effect.never, () => Deferred.succeed(interrupted, undefined))
        expect(yield* stopDuring(() => outlasting)).toEqual({ finished: [], interrupted: true })
        expect(yield* Deferred.isDone(interrupted)).toBe(true)
        expect(yield* committed(cluster)).toBe(0)
      }), { shutdownTimeout: Duration.millis(500) }), { timeout: 60_000 })
})
