import { type ClaimRejected, DeadLetter, DeadLetterReason, inRange, type QueueError, type TimeRange } from "@telemetry/domain"
import { Clock, Duration, Effect, Either, Option, Schema, Stream } from "effect"
import type { Admin, IHeaders, Kafka, KafkaMessage, Producer } from "kafkajs"
import { randomUUID } from "node:crypto"
import { queueError } from "../QueueErrors.js"
import type { KafkaQueueOptions } from "./KafkaClaimQueue.js"
import { claimOf } from "./KafkaMessages.js"

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

/** Keeps a message taken from `source` on the dead-letter topic, with why it was rejected. */
export const deadLetterWith = (
  producer: Producer,
  options: Pick<KafkaQueueOptions, "deadLetterTopic" | "publishTimeout">
) =>
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
        claim: Either.getOrNull(claimOf(message)),
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
export const deadLettersWith = (
  kafka: Kafka,
  admin: Admin,
  options: Pick<KafkaQueueOptions, "deadLetterTopic" | "groupId">
) =>
(range: TimeRange) =>
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
