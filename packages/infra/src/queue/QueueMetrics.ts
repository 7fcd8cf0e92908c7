import { Metric } from "effect"

/** Messages waiting in a partition: its high watermark less the group's committed offset. */
const lag = Metric.gauge("telemetry_queue_lag", { description: "Claims waiting in a queue partition" })

export const lagOf = (topic: string, partition: string) =>
  lag.pipe(Metric.tagged("topic", topic), Metric.tagged("partition", partition))

/** The embedded queue's one partition: claims published and not acknowledged yet. */
export const embeddedLag = lagOf("embedded", "0")
