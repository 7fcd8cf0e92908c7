import { Config, Deferred, Duration, Effect, Exit, FiberSet, Layer, LogLevel, Runtime, Schedule, Schema } from "effect"
import { type Consumer, type EachBatchPayload, Kafka, logLevel, type LogEntry, type Producer } from "kafkajs"
import { type ClaimCheck, ClaimCheckJson } from "../ClaimCheck.js"
import { QueueError } from "../errors.js"
import { ClaimQueue } from "./ClaimQueue.js"

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
  /** Partitions loaded at once by one worker; within a partition claims are loaded one at a time, in order. */
  readonly partitionsConcurrently: number
  /** A partition whose current claim takes longer than this is paused, so nothing more is fetched for it. */
  readonly pauseAfter: Duration.DurationInput
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

// A failed offset commit is retried a little; if it still fails the partition has likely moved to another worker,
// which then redelivers the claim and the ledger skips it.
const commitRetry = Schedule.exponential(Duration.millis(100)).pipe(Schedule.intersect(Schedule.recurs(4)))

const makeProducer = (kafka: Kafka, options: KafkaQueueOptions) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const producer = kafka.producer({ allowAutoTopicCreation: false })
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
    try: () => producer.send({ topic: options.topic, acks: -1, messages: [toMessage(claim)] }),
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

/**
 * One consumer-group member for as long as it stays healthy. It fails when kafkajs gives up (crash without
 * restart, e.g. a failed group join) or when `handle` fails; the caller then starts a new member. Offsets are
 * committed claim by claim, only after `handle` succeeded, so a claim is never acknowledged before its load.
 */
const consumeWith = (kafka: Kafka, options: KafkaQueueOptions) =>
<E, R>(handle: (claim: ClaimCheck) => Effect.Effect<void, E, R>): Effect.Effect<never, QueueError | E, R> =>
  Effect.scoped(Effect.gen(function*() {
    const stopped = yield* Deferred.make<never, QueueError | E>()
    let stopping = false
    const stop = (exit: Exit.Exit<never, QueueError | E>) => {
      stopping = true
      Deferred.unsafeDone(stopped, exit)
    }
    const run = yield* FiberSet.runtime(yield* FiberSet.make<void, QueueError | E>())<R>()
    const consumer: Consumer = kafka.consumer({
      groupId: options.groupId,
      allowAutoTopicCreation: false,
      sessionTimeout: Duration.toMillis(options.sessionTimeout),
      heartbeatInterval: Duration.toMillis(options.heartbeatInterval),
      retry: { restartOnFailure: async () => false }
    })
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      stop(Exit.fail(queueError("take", "the Kafka consumer stopped")(payload.error)))
    })
    yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => consumer.connect(),
        catch: queueError("take", `cannot connect to Kafka at ${options.brokers.join(",")}`)
      }),
      () => Effect.promise(() => consumer.disconnect()).pipe(Effect.ignore)
    )
    yield* Effect.tryPromise({
      try: () => consumer.subscribe({ topic: options.topic, fromBeginning: true }),
      catch: queueError("take", `cannot subscribe to ${options.topic}`)
    })

    const processClaim = (claim: ClaimCheck, batch: EachBatchPayload) =>
      Effect.scoped(Effect.gen(function*() {
        const partition = [{ topic: batch.batch.topic, partitions: [batch.batch.partition] }]
        // kafkajs heartbeats only between messages unless told to; a long load would otherwise cost the
        // partition to a rebalance in the middle of it.
        yield* Effect.forkScoped(
          Effect.tryPromise(() => batch.heartbeat()).pipe(Effect.ignore, Effect.repeat(Schedule.spaced(options.heartbeatInterval)))
        )
        yield* Effect.forkScoped(Effect.sleep(options.pauseAfter).pipe(
          Effect.zipRight(Effect.acquireRelease(
            Effect.sync(() => consumer.pause(partition)),
            () => Effect.sync(() => consumer.resume(partition))
          )),
          Effect.zipRight(Effect.never)
        ))
        yield* handle(claim)
      }))

    const commit = (batch: EachBatchPayload, offset: string) =>
      Effect.tryPromise({
        try: () =>
          consumer.commitOffsets([{
            topic: batch.batch.topic,
            partition: batch.batch.partition,
            offset: (BigInt(offset) + 1n).toString()
          }]),
        catch: queueError("ack", `cannot commit offset ${offset} of ${batch.batch.topic}/${batch.batch.partition}`)
      }).pipe(Effect.retry(commitRetry))

    const eachMessage = (batch: EachBatchPayload, value: Buffer | null, offset: string) =>
      Effect.gen(function*() {
        const claim = decodeClaim(value?.toString("utf8"))
        if (claim._tag === "Left") {
          // Not a claim check of ours: nothing to load, and it must not block the partition.
          yield* Effect.logError(`skipped an unreadable message at ${batch.batch.topic}/${batch.batch.partition}@${offset}`)
        } else {
          yield* processClaim(claim.right, batch)
        }
        yield* commit(batch, offset)
        batch.resolveOffset(offset)
      })

    yield* Effect.tryPromise({
      try: () =>
        consumer.run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          partitionsConsumedConcurrently: options.partitionsConcurrently,
          eachBatch: async (batch) => {
            for (const message of batch.batch.messages) {
              if (stopping || !batch.isRunning() || batch.isStale()) return
              const exit = await Effect.runPromise(run(eachMessage(batch, message.value, message.offset)).await)
              if (Exit.isFailure(exit)) {
                // Leave the claim unacknowledged and stop this member; the offset was not committed.
                stop(Exit.failCause(exit.cause))
                return
              }
            }
          }
        }),
      catch: queueError("take", `cannot consume ${options.topic}`)
    })
    yield* Effect.logInfo(`kafka: consuming ${options.topic} in group ${options.groupId}`)
    return yield* Deferred.await(stopped)
  }))

const levels: Record<number, LogLevel.LogLevel> = {
  [logLevel.ERROR]: LogLevel.Error,
  [logLevel.WARN]: LogLevel.Warning,
  [logLevel.INFO]: LogLevel.Info,
  [logLevel.DEBUG]: LogLevel.Debug
}

/** kafkajs logs through our logger, one line each, instead of its own JSON on stderr. */
const logCreator = (runtime: Runtime.Runtime<never>) => () => ({ namespace, level, log }: LogEntry) =>
  Runtime.runSync(runtime)(
    Effect.logWithLevel(levels[level] ?? LogLevel.Info, `kafka ${namespace}: ${log.message}`).pipe(
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
      return ClaimQueue.of({ publish: publishWith(producer, options), consume: consumeWith(kafka, options) })
    })
  )

const brokers = Config.string("KAFKA_BROKERS").pipe(
  Config.map((list) => list.split(",").map((b) => b.trim()).filter((b) => b.length > 0))
)

export const config = Config.all({
  brokers,
  clientId: Config.string("KAFKA_CLIENT_ID").pipe(Config.withDefault("telemetry")),
  topic: Config.string("KAFKA_TOPIC").pipe(Config.withDefault("telemetry.raw")),
  groupId: Config.string("KAFKA_GROUP_ID").pipe(Config.withDefault("telemetry-workers")),
  publishTimeout: Config.duration("QUEUE_PUBLISH_TIMEOUT").pipe(Config.withDefault(Duration.seconds(5))),
  sessionTimeout: Config.duration("KAFKA_SESSION_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30))),
  heartbeatInterval: Config.duration("KAFKA_HEARTBEAT_INTERVAL").pipe(Config.withDefault(Duration.seconds(3))),
  partitionsConcurrently: Config.integer("KAFKA_PARTITIONS_CONCURRENTLY").pipe(Config.withDefault(3)),
  pauseAfter: Config.duration("KAFKA_PAUSE_AFTER").pipe(Config.withDefault(Duration.seconds(10)))
})

export const layerConfig = Layer.unwrapEffect(Effect.map(config, layer))
