import type { PartitionLag } from "@telemetry/domain"
import { Config, Duration, Effect, Schedule } from "effect"
import type { Admin } from "kafkajs"
import { queueError } from "../QueueErrors.js"
import * as QueueMetrics from "../QueueMetrics.js"

export const DEFAULT_INTERVAL = Duration.seconds(10)

/** `KAFKA_LAG_INTERVAL`: how often each process reads the group's lag per partition into `telemetry_queue_lag`. */
export const LagInterval = Config.duration("KAFKA_LAG_INTERVAL").pipe(Config.withDefault(DEFAULT_INTERVAL))

/** A partition's retained start and end (its high watermark), as kafkajs' admin reports them. */
export interface PartitionEnds {
  readonly partition: number
  readonly low: string
  readonly high: string
}

/**
 * Each partition's lag: its high watermark less the group's committed offset. A partition the group never committed
 * on (-1), or whose committed offset fell below the retained start, is consumed from its start (fromBeginning).
 */
export const lagsOf = (
  topic: string,
  ends: ReadonlyArray<PartitionEnds>,
  /** The group's offsets ("-1" where it never committed). */
  committed: ReadonlyArray<{ readonly partition: number; readonly offset: string }>
): ReadonlyArray<PartitionLag> => {
  const offsets = new Map(committed.map((p) => [p.partition, BigInt(p.offset)]))
  return ends
    .map((p) => {
      const [low, high, done] = [BigInt(p.low), BigInt(p.high), offsets.get(p.partition) ?? -1n]
      const from = done > low ? done : low
      return { topic, partition: p.partition, lag: Number(high > from ? high - from : 0n) }
    })
    .sort((a, b) => a.partition - b.partition)
}

/** The group's lag on the topic per partition, read from the brokers, with the committed offsets it came from. */
export const fetchLags = (admin: Admin, topic: string, groupId: string) =>
  Effect.tryPromise({
    try: () =>
      Promise.all([
        admin.fetchTopicOffsets(topic),
        admin.fetchOffsets({ groupId, topics: [topic] })
      ]),
    catch: queueError("check", `cannot read the offsets of ${groupId} on ${topic}`)
  }).pipe(
    Effect.map(([ends, [offsets]]) => {
      const committed = offsets?.partitions ?? []
      return { partitions: lagsOf(topic, ends, committed), committed }
    })
  )

/**
 * Reads the lag every `interval` into `telemetry_queue_lag{topic,partition}` for as long as the scope lives, in every
 * process on the queue: ingest's too, so that the lag shows while no worker runs. A failed read is logged and the
 * gauges keep their last values until the next one.
 */
export const sampleEvery = (
  read: Effect.Effect<ReadonlyArray<PartitionLag>, { readonly message: string }>,
  interval: Duration.DurationInput
) =>
  read.pipe(
    Effect.flatMap(QueueMetrics.reportLag),
    Effect.catchAll((e) => Effect.logWarning(`kafka: the consumer lag is unknown: ${e.message}`)),
    Effect.repeat(Schedule.spaced(interval)),
    Effect.forkScoped
  )
