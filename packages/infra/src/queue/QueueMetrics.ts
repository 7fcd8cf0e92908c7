import type { DeadLetterReason, PartitionLag } from "@telemetry/domain"
import { Effect, Metric } from "effect"

/** Messages waiting in a partition: its high watermark less the group's committed offset. */
const lag = Metric.gauge("telemetry_queue_lag", { description: "Claims waiting in a queue partition" })

export const lagOf = (topic: string, partition: number) =>
  lag.pipe(Metric.tagged("topic", topic), Metric.tagged("partition", String(partition)))

/** The embedded queue's one partition. */
export const EMBEDDED_TOPIC = "embedded"

/** Sets the gauge of each partition to its lag. */
export const reportLag = (partitions: ReadonlyArray<PartitionLag>) =>
  Effect.forEach(partitions, (p) => Metric.set(lagOf(p.topic, p.partition), p.lag), { discard: true })

const deadLetters = Metric.counter("telemetry_worker_dead_letters", {
  description: "Claims dead-lettered, by reason",
  incremental: true
})

export const deadLettered = (reason: DeadLetterReason) => Metric.tagged(deadLetters, "reason", reason)
