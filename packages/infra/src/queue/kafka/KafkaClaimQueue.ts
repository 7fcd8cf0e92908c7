import {
  type ClaimCheck,
  ClaimCheckJson,
  ClaimQueue,
  ClaimRejected,
  DeadLetter,
  DeadLetterReason,
  inRange,
  QueueError,
  rejectionOf,
  ShutdownTimeout,
  type TimeRange
} from "@telemetry/domain"
import {
  Clock,
  Config,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  FiberSet,
  Layer,
  LogLevel,
  Option,
  Ref,
  Runtime,
  Schema,
  Stream
} from "effect"
import {
  type Admin,
  type Consumer,
  type EachBatchPayload,
  type IHeaders,
  Kafka,
  type KafkaMessage,
  type LogEntry,
  logLevel,
  Partitioners,
  type Producer
} from "kafkajs"
import { randomUUID } from "node:crypto"
import * as InFlight from "../InFlight.js"

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
}

const encodeClaim = Schema.encodeSync(ClaimCheckJson)
const decodeClaim = Schema.decodeUnknownEither(ClaimCheckJson)

const queueError = (operation: QueueError["operation"], message: string) => (cause: unknown) =>
  new QueueError({ operation, message: `${message}: ${cause instanceof Error ? cause.message : String(cause)}`, cause })

/** Contract §2: keyed by device so one device's claims stay in order on one partition; headers for routing. */
const toMessage = (claim: ClaimCheck) => ({
  key: claim.metadata.deviceId ?? claim.claim_id,
  value: encodeClaim(claim),
  headers: {
    "content-type": "application/json",
    "message-type": "claim-check",
    "request-id": claim.metadata.requestId,
    "items-count": String(claim.metadata.itemsCount),
    "sensors-count": String(claim.metadata.totalSensors),
    "file-size": String(claim.file_size)
  }
})

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

/**
 * The consumer group's lag on the topic (the ends of its partitions beyond the offsets it committed), and for how
 * long it has had lag while its committed offsets did not move, as this process saw them: a group that commits
 * nothing while claims wait is stuck (the mock cluster cannot describe groups, and need not: the offsets tell).
 */
const backlogWith = (admin: Admin, options: KafkaQueueOptions) =>
  Effect.map(Ref.make<{ readonly committed: string; readonly since: number } | undefined>(undefined), (seen) =>
    Effect.gen(function*() {
      const [ends, [committed]] = yield* Effect.tryPromise({
        try: () =>
          Promise.all([
            admin.fetchTopicOffsets(options.topic),
            admin.fetchOffsets({ groupId: options.groupId, topics: [options.topic] })
          ]),
        catch: queueError("check", `cannot read the offsets of ${options.groupId} on ${options.topic}`)
      }).pipe(answeredWithin(options))
      const offsets = new Map((committed?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]))
      // A partition the group never committed on (-1) is consumed from its start (fromBeginning).
      const lag = ends.reduce((sum, p) => {
        const [low, high, done] = [BigInt(p.low), BigInt(p.high), offsets.get(p.partition) ?? -1n]
        const from = done > low ? done : low
        return sum + (high > from ? high - from : 0n)
      }, 0n)
      const now = yield* Clock.currentTimeMillis
      const key = JSON.stringify([...offsets].map(([partition, offset]) => [partition, String(offset)]))
      // Progress: the offsets moved, or nothing waits.
      const last = yield* Ref.updateAndGet(seen, (s) => (lag > 0n && s?.committed === key ? s : { committed: key, since: now }))
      return {
        pending: Number(lag),
        stalledFor: Duration.millis(now - last!.since)
      }
    }))

/** Where a message was taken from, e.g. `telemetry.raw/2@1234`. */
const sourceOf = (topic: string, partition: number, offset: string) => `${topic}/${partition}@${offset}`

// Kafka's default limit on a message is 1 MB; an error message has no business coming near it.
const MAX_ERROR_CHARS = 2000

/**
 * The message as it came (value and key unchanged, so a replay re-publishes it as is), its headers plus why, when
 * and from where it was set aside.
 */
const toDeadLetterMessage = (message: KafkaMessage, source: string, rejection: ClaimRejected, failedAt: Date) => ({
  key: message.key,
  value: message.value,
  headers: {
    ...message.headers,
    "dlq-reason": rejection.reason,
    "dlq-error": rejection.message.slice(0, MAX_ERROR_CHARS),
    "dlq-attempts": String(rejection.attempts),
    "dlq-failed-at": failedAt.toISOString(),
    "dlq-source": source
  }
})

const deadLetterWith = (producer: Producer, options: KafkaQueueOptions) =>
(message: KafkaMessage, source: string, rejection: ClaimRejected) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.tryPromise({
      try: () =>
        producer.send({
          topic: options.deadLetterTopic,
          acks: -1,
          timeout: Duration.toMillis(options.publishTimeout),
          messages: [toDeadLetterMessage(message, source, rejection, new Date(now))]
        }),
      catch: queueError("ack", `cannot keep the dead letter of ${source} on ${options.deadLetterTopic}`)
    })).pipe(
      Effect.zipRight(Effect.logWarning(`kafka: ${source} kept on ${options.deadLetterTopic} (${rejection.reason})`))
    )

/**
 * One consumer-group member for as long as it stays healthy. It fails when kafkajs gives up (crash without
 * restart, e.g. a failed group join) or when `handle` fails; the caller then starts a new member.
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
  handle: (claim: ClaimCheck) => Effect.Effect<unknown, E | ClaimRejected, R>
): Effect.Effect<never, QueueError | E, R> =>
  Effect.scoped(Effect.gen(function*() {
    const stopped = yield* Deferred.make<never, QueueError | E>()
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
    // Partitions this member owns now; a batch fiber stops at the next claim once its partition moved away.
    let owned = new Set<number>()
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      owned = new Set(payload.memberAssignment[options.topic] ?? [])
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
    yield* Effect.addFinalizer(() =>
      Effect.try(() => {
        stopping = true
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

    const processMessage = (payload: EachBatchPayload, message: KafkaMessage) =>
      Effect.gen(function*() {
        const { partition, topic } = payload.batch
        const source = sourceOf(topic, partition, message.offset)
        const claim = decodeClaim(message.value?.toString("utf8"))
        // Not a claim check of ours: nothing to load, and it must not block the partition.
        const rejection = Either.isLeft(claim)
          ? Option.some(new ClaimRejected({ reason: "unreadable_message", message: claim.left.message, attempts: 0 }))
          : yield* loading.withPermits(1)(rejectionOf(handle(claim.right)))
        if (Option.isSome(rejection)) yield* deadLetter(message, source, rejection.value)
        yield* commit(topic, partition, message.offset)
        // Where kafkajs fetches from once the partition is resumed.
        payload.resolveOffset(message.offset)
      })

    const processBatch = (payload: EachBatchPayload, resume: () => void) =>
      Effect.forEach(
        payload.batch.messages,
        (message) => !stopping && owned.has(payload.batch.partition) ? processMessage(payload, message) : Effect.void,
        { discard: true }
      ).pipe(
        Effect.onExit((exit) =>
          Exit.isFailure(exit) && !Exit.isInterrupted(exit) ? Deferred.failCause(stopped, exit.cause) : Effect.void
        ),
        Effect.ensuring(Effect.sync(() => stopping || resume())),
        Effect.ignore
      )

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

const headerText = (value: IHeaders[string]) => value === undefined ? undefined : String(value)

/** The `dlq-*` headers of a dead letter. */
const LetterHeaders = Schema.Struct({
  "dlq-reason": DeadLetterReason,
  "dlq-error": Schema.String,
  "dlq-attempts": Schema.NumberFromString.pipe(Schema.nonNegative(), Schema.int()),
  "dlq-failed-at": Schema.Date,
  "dlq-source": Schema.String
})
const decodeLetterHeaders = Schema.decodeUnknownOption(LetterHeaders)

/** A message of the dead-letter topic as a letter; none for one that is not a dead letter of ours. */
const toDeadLetter = (message: KafkaMessage): Option.Option<DeadLetter> =>
  Option.map(
    decodeLetterHeaders(Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, headerText(v)]))),
    (h) =>
      new DeadLetter({
        claim: Either.getOrNull(decodeClaim(message.value?.toString("utf8"))),
        reason: h["dlq-reason"],
        error: h["dlq-error"],
        attempts: h["dlq-attempts"],
        failedAt: h["dlq-failed-at"],
        source: h["dlq-source"]
      })
  )

/**
 * The dead-letter topic from its start to where it ends now, read by a member of a group of its own that
 * commits nothing (the topic is kept, not consumed).
 */
const deadLettersWith = (kafka: Kafka, admin: Admin, options: KafkaQueueOptions) => (range: TimeRange) =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const topic = options.deadLetterTopic
    const offsets = yield* Effect.tryPromise({
      try: () => admin.fetchTopicOffsets(topic),
      catch: queueError("take", `cannot read the offsets of ${topic}`)
    })
    const ends = new Map(offsets.filter((p) => BigInt(p.high) > BigInt(p.low)).map((p) => [p.partition, BigInt(p.high)]))
    if (ends.size === 0) return Stream.empty
    const consumer = kafka.consumer({
      groupId: `${options.groupId}.dead-letters.${randomUUID()}`,
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: 100
    })
    yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          await consumer.connect()
          await consumer.subscribe({ topic, fromBeginning: true })
        },
        catch: queueError("take", `cannot read ${topic}`)
      }),
      () => Effect.promise(() => consumer.disconnect()).pipe(Effect.ignore)
    )
    return Stream.async<KafkaMessage, QueueError>((emit) => {
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        void emit.fail(queueError("take", `cannot read ${topic}`)(payload.error))
      })
      consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          const end = ends.get(batch.partition)
          if (end === undefined) return
          for (const message of batch.messages) if (BigInt(message.offset) < end) void emit.single(message)
          if (BigInt(batch.lastOffset()) + 1n >= end) {
            ends.delete(batch.partition)
            if (ends.size === 0) void emit.end()
          }
        }
      }).catch((e) => void emit.fail(queueError("take", `cannot read ${topic}`)(e)))
    })
  })).pipe(
    Stream.filterMap(toDeadLetter),
    Stream.filter((letter) => inRange(range, letter.failedAt))
  )

const levels: Record<number, LogLevel.LogLevel> = {
  [logLevel.ERROR]: LogLevel.Error,
  [logLevel.WARN]: LogLevel.Warning,
  [logLevel.INFO]: LogLevel.Info,
  [logLevel.DEBUG]: LogLevel.Debug
}

/** kafkajs logs through our logger, one line each, instead of its own JSON on stderr. */
const logCreator = (runtime: Runtime.Runtime<never>) => () => ({ namespace, level, log }: LogEntry) =>
  Runtime.runSync(runtime)(
    Effect.logWithLevel(levels[level] ?? LogLevel.Info, `kafka${namespace ? ` ${namespace}` : ""}: ${log.message}`).pipe(
      Effect.annotateLogs(log.broker === undefined ? {} : { broker: String(log.broker) })
    )
  )

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
      const producer = yield* makeProducer(kafka, options)
      const admin = yield* makeAdmin(kafka, options)
      return ClaimQueue.of({
        publish: publishWith(producer, options),
        consume: consumeWith(kafka, producer, options),
        deadLetters: deadLettersWith(kafka, admin, options),
        check: checkWith(admin, options),
        backlog: yield* backlogWith(admin, options)
      })
    })
  )

const brokers = Config.string("KAFKA_BROKERS").pipe(
  Config.map((list) => list.split(",").map((b) => b.trim()).filter((b) => b.length > 0))
)

export const config = Config.all({
  brokers,
  clientId: Config.string("KAFKA_CLIENT_ID").pipe(Config.withDefault("telemetry")),
  topic: Config.string("KAFKA_TOPIC").pipe(Config.withDefault("telemetry.raw")),
  deadLetterTopic: Config.string("KAFKA_DLQ_TOPIC").pipe(Config.withDefault("telemetry.dlq")),
  groupId: Config.string("KAFKA_GROUP_ID").pipe(Config.withDefault("telemetry-workers")),
  publishTimeout: Config.duration("QUEUE_PUBLISH_TIMEOUT").pipe(Config.withDefault(Duration.seconds(5))),
  sessionTimeout: Config.duration("KAFKA_SESSION_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30))),
  heartbeatInterval: Config.duration("KAFKA_HEARTBEAT_INTERVAL").pipe(Config.withDefault(Duration.seconds(3))),
  partitionsConcurrently: Config.integer("KAFKA_PARTITIONS_CONCURRENTLY").pipe(Config.withDefault(3)),
  shutdownTimeout: ShutdownTimeout
})

export const layerConfig = Layer.unwrapEffect(Effect.map(config, layer))
