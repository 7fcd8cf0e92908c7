import { Kafka, logLevel } from "kafkajs"
import { randomUUID } from "node:crypto"

export const CLAIMS_TOPIC = "telemetry.raw"
export const DLQ_TOPIC = "telemetry.dlq"

export interface TopicRecord {
  readonly topic: string
  readonly source: string
  readonly requestId: string | undefined
  readonly claimId: string | undefined
  readonly reason: string | undefined
}

export type Topics = Awaited<ReturnType<typeof readTopics>>

/** Every message of the claims topic and the dead-letter topic, read by a consumer group of its own. */
export const readTopics = async (bootstrap: string) => {
  const kafka = new Kafka({ clientId: "fault-audit", brokers: [bootstrap], logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  const consumer = kafka.consumer({
    groupId: `fault-audit-${randomUUID()}`,
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
    maxWaitTimeInMs: 100
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [CLAIMS_TOPIC, DLQ_TOPIC], fromBeginning: true })
  const records = new Map<string, TopicRecord>()
  const next = new Map<string, bigint>()
  await consumer.run({
    eachMessage: async ({ message, partition, topic }) => {
      const source = `${topic}/${partition}@${message.offset}`
      let value: { claim_id?: unknown; metadata?: { requestId?: unknown } } = {}
      try {
        value = JSON.parse(message.value?.toString("utf8") ?? "{}")
      } catch {
        // Not JSON: recorded without ids.
      }
      const header = (name: string) => message.headers?.[name]?.toString()
      records.set(source, {
        topic,
        source,
        requestId: header("request-id") ?? (value.metadata?.requestId as string | undefined),
        claimId: value.claim_id as string | undefined,
        reason: header("dlq-reason")
      })
      next.set(`${topic}/${partition}`, BigInt(message.offset) + 1n)
    }
  })
  return {
    records: () => [...records.values()],
    /** Whether every message written so far has been read. */
    caughtUp: async () => {
      for (const topic of [CLAIMS_TOPIC, DLQ_TOPIC]) {
        for (const p of await admin.fetchTopicOffsets(topic)) {
          if (BigInt(p.high) > (next.get(`${topic}/${p.partition}`) ?? 0n)) return false
        }
      }
      return true
    },
    close: async () => {
      await consumer.disconnect().catch(() => {})
      await admin.disconnect().catch(() => {})
    }
  }
}
