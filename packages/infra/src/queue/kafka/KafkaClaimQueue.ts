import {
  type ClaimCheck,
  ClaimQueue,
  ClaimRejected,
  type ConsumeOptions,
  QueueError,
  REDELIVERY_BACKOFF,
  rejectionOf
} from "@telemetry/domain"
import {
  Clock,
  Config,
  type ConfigError,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  FiberId,
  FiberSet,
  Layer,
  Metric,
  Option,
  Ref,
  Runtime,
  Schedule
} from "effect"
import {
  type Admin,
  type Consumer,
  type EachBatchPayload,
  Kafka,
  type KafkaMessage,
  logLevel,
  Partitioners,
  type Producer
} from "kafkajs"
import * as InFlight from "../InFlight.js"
import { queueError } from "../QueueErrors.js"
import * as QueueMetrics from "../QueueMetrics.js"
import { deadLettersWith, deadLetterWith } from "./KafkaDeadLetters.js"
import * as KafkaLag from "./KafkaLag.js"
import { logCreator } from "./KafkaLog.js"
import { claimOf, toMessage } from "./KafkaMessages.js"

export interface KafkaQueueOptions {
  readonly brokers: ReadonlyArray<string>
  readonly clientId: string
  readonly topic: string
  readonly groupId: string
  /** How long publishing may take before the request is refused (503) rather than left waiting. */
  readonly publishTimeout: Duration.DurationInput
  /** A worker silent for this long is dropped from the group and its partitions move to the others. */
  readonly sessionTimeout: Duration.DurationInput
  readonly heartbeatInterval: Duration.DurationInput
  /** Claims loaded at once by one worker, from different partitions; within a partition one at a time, in order. */
  readonly partitionsConcurrently: number
  /** Where claims that will not load (and messages that are not claims) are kept, with why in their headers. */
  readonly deadLetterTopic: string
  /** How long claims being loaded may take to finish once the consumer is told to stop. */
  readonly shutdownTimeout: Duration.DurationInput
  /** How often the group's lag per partition is read into `telemetry_queue_lag` (default 10 s). */
  readonly lagInterval?: Duration.DurationInput | undefined
  /** The pause before a claim whose handling failed is handled again (default `REDELIVERY_BACKOFF`). */
  readonly redeliveryBackoff?: Schedule.Schedule<unknown> | undefined
}

const makeProducer = (kafka: Kafka, options: KafkaQueueOptions) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        // Retries end by the publish timeout, so a refused request's claim is rarely delivered after all (and
        // if it is, ingest has deleted its object: it loads nothing).
        const producer = kafka.producer({
          allowAutoTopicCreation: false,
          createPartitioner: Partitioners.DefaultPartitioner,
          retry: { retries: 5, maxRetryTime: Duration.toMillis(options.publishTimeout) }
        })
        await producer.connect()
        return producer
      },
      catch: queueError("publish", `cannot connect to Kafka at ${options.brokers.join(",")}`)
    }),
    (producer) => Effect.promise(() => producer.disconnect()).pipe(Effect.ignore)
  )

const publishWith = (producer: Producer, options: KafkaQueueOptions) => (claim: ClaimCheck) =>
  Effect.tryPromise({
    // acks -1: the claim counts as published only once every in-sync replica has it.
    try: () =>
      producer.send({
        topic: options.topic,
        acks: -1,
        timeout: Duration.toMillis(options.publishTimeout),
        messages: [toMessage(claim)]
      }),
    catch: queueError("publish", `cannot publish to ${options.topic}`)
  }).pipe(
    Effect.timeoutFail({
      duration: options.publishTimeout,
      onTimeout: () =>
        new QueueError({
          operation: "publish",
          message: `Kafka did not acknowledge within ${Duration.format(options.publishTimeout)}`
        })
    }),
    Effect.asVoid
  )

const makeAdmin = (kafka: Kafka, options: KafkaQueueOptions) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      // No retries of its own: a health check should answer now, not after kafkajs' backoff.
      try: async () => {
        const admin = kafka.admin({ retry: { retries: 0 } })
        await admin.connect()
        return admin
      },
      catch: queueError("check", `cannot connect to Kafka at ${options.brokers.join(",")}`)
    }),
    (admin) => Effect.promise(() => admin.disconnect()).pipe(Effect.ignore)
  )

/** A health check's request to Kafka, which must answer within the publish timeout. */
const answeredWithin = (options: KafkaQueueOptions) => <A>(request: Effect.Effect<A, QueueError>) =>
  request.pipe(
    Effect.timeoutFail({
      duration: options.publishTimeout,
      onTimeout: () => new QueueError({ operation: "check", message: `Kafka did not answer within ${Duration.format(options.publishTimeout)}` })
    })
  )

/** Up when the brokers answer with the topic's metadata within the publish timeout. */
const checkWith = (admin: Admin, options: KafkaQueueOptions) =>
  Effect.tryPromise({
    try: () => admin.fetchTopicMetadata({ topics: [options.topic] }),
    catch: queueError("check", `cannot read the metadata of ${options.topic}`)
  }).pipe(answeredWithin(options), Effect.asVoid)

/** The consumer group's lag per partition of the topic, within the publish timeout. */
const lagsWith = (admin: Admin, options: KafkaQueueOptions) =>
  KafkaLag.fetchLags(admin, options.topic, options.groupId).pipe(answeredWithin(options))

/**
 * The consumer group's lag on the topic (the ends of its partitions beyond the offsets it committed), and how long
 * a partition has had lag while its committed offset did not move, as this process saw it: a partition that commits
 * nothing while claims wait on it is stuck, however the others fare (the mock cluster cannot describe groups, and
 * need not: the offsets tell). The longest such stall is the backlog's.
 */
const backlogWith = (admin: Admin, options: KafkaQueueOptions) =>
  Effect.map(Ref.make<ReadonlyMap<number, { readonly offset: string; readonly since: number }>>(new Map()), (stalls) =>
    Effect.gen(function*() {
      const { committed, partitions } = yield* lagsWith(admin, options)
      const now = yield* Clock.currentTimeMillis
      const offsets = new Map(committed.map((p) => [p.partition, p.offset]))
      // Each partition's stall counts from the first check that saw its lag at its committed offset.
      const current = yield* Ref.updateAndGet(stalls, (before) =>
        new Map(partitions.filter((p) => p.lag > 0).map((p) => {
          const offset = offsets.get(p.partition) ?? "-1"
          const seen = before.get(p.partition)
          return [p.partition, seen?.offset === offset ? seen : { offset, since: now }] as const
        })))
      const longest = [...current].reduce<readonly [number, number] | undefined>(
        (found, [partition, stall]) => (found === undefined || stall.since < found[1] ? [partition, stall.since] : found),
        undefined
      )
      return {
        pending: partitions.reduce((sum, p) => sum + p.lag, 0),
        stalledFor: Duration.millis(longest === undefined ? 0 : now - longest[1]),
        ...(longest === undefined ? {} : { stalledPartition: longest[0] }),
        partitions
      }
    }))

/** Where a message was taken from, e.g. `telemetry.raw/2@1234`. */
const sourceOf = (topic: string, partition: number, offset: string) => `${topic}/${partition}@${offset}`

/**
 * One consumer-group member for as long as it stays healthy. It fails when kafkajs gives up (crash without
 * restart, e.g. a failed group join) or when `handle` dies; the caller then starts a new member. A claim whose
 * handling failed is handled again in place after a pause, its partition waiting: a new member would set off a
 * rebalance of the whole group, in which no partition is consumed.
 *
 * kafkajs fetches a broker's partitions in rounds and waits for every batch of a round before the next, so a
 * claim loaded inside `eachBatch` would hold up every other partition. Instead each batch is handed to a fiber
 * of its own and its partition paused until that fiber is done: partitions load in parallel, one claim at a time
 * each, and kafkajs keeps fetching and heartbeating meanwhile, however long a load or a database outage lasts.
 * Offsets are committed claim by claim, only after `handle` succeeded (and a rejected claim's dead letter was
 * kept). Interrupted, it stops fetching, lets the claims in progress finish (InFlight), then leaves the group.
 */
const consumeWith = (kafka: Kafka, producer: Producer, options: KafkaQueueOptions) =>
<E, R>(
  handle: (claim: ClaimCheck) => Effect.Effect<unknown, E | ClaimRejected, R>,
  consumeOptions?: ConsumeOptions<R>
): Effect.Effect<never, QueueError, R> =>
  Effect.scoped(Effect.gen(function*() {
    const stopped = yield* Deferred.make<never, QueueError>()
    const deadLetter = deadLetterWith(producer, options)
    const consumer: Consumer = kafka.consumer({
      groupId: options.groupId,
      allowAutoTopicCreation: false,
      sessionTimeout: Duration.toMillis(options.sessionTimeout),
      heartbeatInterval: Duration.toMillis(options.heartbeatInterval),
      // Also how long kafkajs sleeps while every partition is paused: a resumed partition waits at most this.
      maxWaitTimeInMs: 100,
      retry: { restartOnFailure: async () => false }
    })
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      Deferred.unsafeDone(stopped, Exit.fail(queueError("take", "the Kafka consumer stopped")(payload.error)))
    })
    // The partitions this member owns now, each with its ownership: a batch fiber works for the ownership it started
    // under and stops once that ended (done when the partition moves away), even if the partition came back since —
    // another fiber has it then, and an old fiber's commit could move the group's offset back.
    let owned = new Map<number, Deferred.Deferred<void>>()
    const runtime = yield* Effect.runtime<never>()
    // Said once the member is in the group, not before: a consumer that never joins consumes nothing.
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      const assigned = payload.memberAssignment[options.topic] ?? []
      const before = owned
      owned = new Map(assigned.map((p) => [p, before.get(p) ?? Deferred.unsafeMake<void>(FiberId.none)]))
      for (const [partition, ownership] of before) {
        if (!owned.has(partition)) Deferred.unsafeDone(ownership, Exit.void)
      }
      Runtime.runSync(runtime)(
        Effect.logInfo(`worker: consuming claims (group ${options.groupId}, partitions ${assigned.join(",") || "none"})`)
      )
    })
    yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => consumer.connect(),
        catch: queueError("take", `cannot connect to Kafka at ${options.brokers.join(",")}`)
      }),
      () => Effect.promise(() => consumer.disconnect()).pipe(Effect.ignore)
    )
    // Made after the connection so that, on the way out, the loads finish or are interrupted (rolled back) and
    // their offsets committed before the consumer disconnects.
    const inFlight = yield* InFlight.make<void, never>(options.shutdownTimeout)
    // Stopping: no claim is started any more and nothing more is fetched; runs before InFlight waits.
    let stopping = false
    const leaving = yield* Deferred.make<void>()
    yield* Effect.addFinalizer(() =>
      Effect.try(() => {
        stopping = true
        Deferred.unsafeDone(leaving, Exit.void)
        // Throws when kafkajs already gave up on the consumer: nothing is fetched then anyway.
        consumer.pause([{ topic: options.topic }])
      }).pipe(Effect.ignore)
    )
    const run = yield* FiberSet.runtime(inFlight)<R>()
    const loading = yield* Effect.makeSemaphore(options.partitionsConcurrently)
    yield* Effect.tryPromise({
      try: () => consumer.subscribe({ topic: options.topic, fromBeginning: true }),
      catch: queueError("take", `cannot subscribe to ${options.topic}`)
    })

    const commit = (topic: string, partition: number, offset: string) =>
      Effect.tryPromise({
        try: () => consumer.commitOffsets([{ topic, partition, offset: (BigInt(offset) + 1n).toString() }]),
        catch: queueError("ack", `cannot commit offset ${offset} of ${topic}/${partition}`)
      }).pipe(
        // Kafka refuses the commit of a partition that moved to another member: that member gets the claim
        // again and the ledger skips it.
        Effect.catchAll((e) => Effect.logWarning(e.message))
      )

    /** One ownership of a partition by this member: from the group join that gave it to the one that took it away. */
    interface Ownership {
      readonly partition: number
      readonly ended: Deferred.Deferred<void>
    }
    const holds = (ownership: Ownership) => owned.get(ownership.partition) === ownership.ended
    const keeps = (ownership: Ownership) => !stopping && holds(ownership)

    // Tried again after pauses while this member goes on and keeps the partition (which waits meanwhile); none
    // once it does not: then nothing is committed and the partition's next owner gets the claim again. A pause ends
    // when the member stops or the partition moves away (an attempt under way is let finish, as InFlight does), or
    // when `sooner` does.
    const whileOwned = <R2>(ownership: Ownership, schedule: Schedule.Schedule<unknown>, sooner: Effect.Effect<void, never, R2> = Effect.never) =>
    <A, E2>(effect: Effect.Effect<A, E2, R2>): Effect.Effect<Option.Option<A>, never, R2> =>
      Effect.flatMap(Schedule.driver(schedule), (pauses) => {
        const attempt: Effect.Effect<Option.Option<A>, never, R2> = Effect.matchEffect(effect, {
          onSuccess: Effect.succeedSome,
          onFailure: () =>
            keeps(ownership)
              ? Effect.raceAll([Effect.ignore(pauses.next(undefined)), Deferred.await(leaving), Deferred.await(ownership.ended), sooner])
                .pipe(Effect.zipRight(Effect.suspend(() => (keeps(ownership) ? attempt : Effect.succeedNone))))
              : Effect.succeedNone
        })
        return attempt
      })

    // A dead letter the broker does not take is tried again here, so that only its partition waits (its claim is
    // committed once the letter is kept) instead of the whole consumer stopping.
    const keepDeadLetter = (ownership: Ownership, message: KafkaMessage, source: string, rejection: ClaimRejected) =>
      deadLetter(message, source, rejection).pipe(
        Effect.tapError((e) => Effect.logWarning(`${e.message}; trying again`)),
        whileOwned(ownership, Schedule.union(Schedule.exponential("500 millis"), Schedule.spaced("30 seconds")))
      )

    // A claim whose handling failed is handled again in place (no load slot held during the pause).
    const handleInPlace = (ownership: Ownership, source: string, claim: ClaimCheck) =>
      loading.withPermits(1)(rejectionOf(handle(claim))).pipe(
        Effect.tapError(() =>
          keeps(ownership)
            ? Effect.logInfo(`kafka: the claim at ${source} was not done; its partition waits for it to be handled again`)
            : Effect.void
        ),
        whileOwned(ownership, options.redeliveryBackoff ?? REDELIVERY_BACKOFF, consumeOptions?.retrySooner)
      )

    const processMessage = (payload: EachBatchPayload, ownership: Ownership, message: KafkaMessage) =>
      Effect.gen(function*() {
        const { partition, topic } = payload.batch
        const source = sourceOf(topic, partition, message.offset)
        const claim = claimOf(message)
        // Not a claim check of ours: nothing to load, and it must not block the partition.
        const handled = Either.isLeft(claim)
          ? yield* Effect.as(
            Metric.increment(QueueMetrics.deadLettered("unreadable_message")),
            Option.some(Option.some(new ClaimRejected({ reason: "unreadable_message", message: claim.left.message, attempts: 0 })))
          )
          : yield* handleInPlace(ownership, source, claim.right)
        if (Option.isNone(handled)) return
        const rejection = handled.value
        if (Option.isSome(rejection) && Option.isNone(yield* keepDeadLetter(ownership, message, source, rejection.value))) {
          return
        }
        // A claim done after its partition moved away is left to the partition's owner (the ledger skips it there).
        if (!holds(ownership)) return
        yield* commit(topic, partition, message.offset)
        // Where kafkajs fetches from once the partition is resumed.
        payload.resolveOffset(message.offset)
      })

    const processBatch = (payload: EachBatchPayload, resume: () => void) => {
      const { partition } = payload.batch
      // A batch of a partition this member does not own (any more) gets an ownership no join gave: none of it is done.
      const ownership: Ownership = { partition, ended: owned.get(partition) ?? Deferred.unsafeMake<void>(FiberId.none) }
      return Effect.forEach(
        payload.batch.messages,
        (message) => keeps(ownership) ? processMessage(payload, ownership, message) : Effect.void,
        { discard: true }
      ).pipe(
        Effect.onExit((exit) =>
          Exit.isFailure(exit) && !Exit.isInterrupted(exit) ? Deferred.failCause(stopped, exit.cause) : Effect.void
        ),
        Effect.ensuring(Effect.sync(() => stopping || resume())),
        Effect.ignore
      )
    }

    yield* Effect.tryPromise({
      try: () =>
        consumer.run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          eachBatch: async (payload) => {
            if (!stopping) run(processBatch(payload, payload.pause()))
          }
        }),
      catch: queueError("take", `cannot consume ${options.topic}`)
    })
    yield* Effect.logInfo(`kafka: consuming ${options.topic} in group ${options.groupId}`)
    return yield* Deferred.await(stopped)
  }))

/** Claims on a Kafka topic: publishing from ingest, a consumer group of workers. */
export const layer = (options: KafkaQueueOptions) =>
  Layer.scoped(
    ClaimQueue,
    Effect.gen(function*() {
      const kafka = new Kafka({
        clientId: options.clientId,
        brokers: [...options.brokers],
        logLevel: logLevel.WARN,
        logCreator: logCreator(yield* Effect.runtime<never>())
      })
      // The admin client first: it connects without retries, so a broker that is not there is told at once (a
      // starting process logs that it waits for Kafka), where the producer's connect retries for seconds first.
      const admin = yield* makeAdmin(kafka, options)
      const producer = yield* makeProducer(kafka, options)
      yield* KafkaLag.sampleEvery(
        Effect.map(lagsWith(admin, options), (lags) => lags.partitions),
        options.lagInterval ?? KafkaLag.DEFAULT_INTERVAL
      )
      return ClaimQueue.of({
        publish: publishWith(producer, options),
        consume: consumeWith(kafka, producer, options),
        deadLetters: deadLettersWith(kafka, admin, options),
        check: checkWith(admin, options),
        backlog: yield* backlogWith(admin, options)
      })
    })
  )

/** `layer` with its options read from `config`. */
export const layerConfig = (
  config: Config.Config.Wrap<KafkaQueueOptions>
): Layer.Layer<ClaimQueue, QueueError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.map(
      Config.all([Config.unwrap(config), KafkaLag.LagInterval]),
      ([options, lagInterval]) => layer({ ...options, lagInterval: options.lagInterval ?? lagInterval })
    )
  )
