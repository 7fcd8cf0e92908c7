import { Context, Data, Effect, Layer, type Scope } from "effect"
import { Kafka, logLevel } from "kafkajs"
import { execFileSync, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { existsSync, renameSync, statSync } from "node:fs"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"

const source = fileURLToPath(new URL("../kafka-mock/launcher.c", import.meta.url))
const binary = fileURLToPath(new URL("../kafka-mock/build/kafka-mock", import.meta.url))
const header = "/usr/include/librdkafka/rdkafka_mock.h"

export class KafkaMockError extends Data.TaggedError("KafkaMockError")<{ readonly message: string }> {}

const run = (command: string, args: ReadonlyArray<string>) =>
  execFileSync(command, args, { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } })

/**
 * Builds the mock-cluster launcher when it is missing or older than its source, installing librdkafka's headers
 * with apt-get first if needed (CI starts from a clean machine). Runs once per test run, from the global setup.
 */
export const ensureLauncher = (): string => {
  if (!existsSync(header)) {
    const sudo = process.getuid?.() === 0 ? [] : ["sudo"]
    const apt = (...args: Array<string>) => run(sudo[0] ?? "apt-get", sudo.length > 0 ? ["apt-get", ...args] : args)
    try {
      apt("install", "-y", "-qq", "librdkafka-dev")
    } catch {
      apt("update", "-qq")
      apt("install", "-y", "-qq", "librdkafka-dev")
    }
  }
  if (!existsSync(binary) || statSync(binary).mtimeMs < statSync(source).mtimeMs) {
    const building = `${binary}.${process.pid}`
    run("mkdir", ["-p", fileURLToPath(new URL("../kafka-mock/build", import.meta.url))])
    run("gcc", ["-O2", "-Wall", "-o", building, source, "-lrdkafka"])
    renameSync(building, binary)
  }
  return binary
}

/** A message as a test writes it. */
export interface MockMessageInput {
  readonly key?: string
  readonly value: string
  readonly headers?: Readonly<Record<string, string>>
  readonly partition?: number
}

/** A message as a test reads it back: text key and value, text headers. */
export interface MockMessage {
  readonly partition: number
  readonly offset: string
  readonly key: string | null
  readonly value: string | null
  readonly headers: Readonly<Record<string, string>>
}

export interface KafkaMockShape {
  /** `host:port,...` of the mock brokers. */
  readonly bootstrap: string
  /** Environment for processes that should use this cluster. */
  readonly env: Readonly<Record<string, string>>
  readonly brokerDown: (brokerId: number) => Effect.Effect<void, KafkaMockError>
  readonly brokerUp: (brokerId: number) => Effect.Effect<void, KafkaMockError>
  /** The next `count` requests of protocol API `apiKey` fail with Kafka error `errorCode`. */
  readonly requestErrors: (apiKey: number, errorCode: number, count: number) => Effect.Effect<void, KafkaMockError>
  /** Sends messages to `topic` as they are, with a plain producer (no claim-check formatting). */
  readonly produce: (topic: string, messages: ReadonlyArray<MockMessageInput>) => Effect.Effect<void, KafkaMockError>
  /** Every message on `topic` now, by partition in offset order (read by a group of its own that commits nothing). */
  readonly messages: (topic: string) => Effect.Effect<ReadonlyArray<MockMessage>, KafkaMockError>
  /** The offset `groupId` committed on each partition of `topic` (0 where none). */
  readonly committed: (groupId: string, topic: string) => Effect.Effect<ReadonlyArray<number>, KafkaMockError>
}

export class KafkaMock extends Context.Tag("@telemetry/testbed/KafkaMock")<KafkaMock, KafkaMockShape>() {}

export interface KafkaMockOptions {
  /** Topic name → partition count; created before the cluster is handed out. */
  readonly topics: Readonly<Record<string, number>>
  readonly brokers?: number
}

const clientError = (what: string) => (cause: unknown) =>
  new KafkaMockError({ message: `${what}: ${(cause as Error)?.message ?? cause}` })

const produce = async (bootstrap: string, topic: string, messages: ReadonlyArray<MockMessageInput>) => {
  const producer = new Kafka({ brokers: [bootstrap], logLevel: logLevel.NOTHING }).producer()
  await producer.connect()
  try {
    await producer.send({ topic, messages: messages.map((m) => ({ ...m, headers: { ...m.headers } })) })
  } finally {
    await producer.disconnect()
  }
}

const readTopic = async (bootstrap: string, topic: string): Promise<ReadonlyArray<MockMessage>> => {
  const kafka = new Kafka({ brokers: [bootstrap], logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  const ends = new Map(
    (await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect()))
      .filter((p) => Number(p.high) > Number(p.low))
      .map((p) => [p.partition, Number(p.high)])
  )
  const got: Array<MockMessage> = []
  if (ends.size === 0) return got
  const consumer = kafka.consumer({ groupId: `inspect-${randomUUID()}`, maxWaitTimeInMs: 100 })
  await consumer.connect()
  try {
    await consumer.subscribe({ topic, fromBeginning: true })
    await new Promise<void>((resolve, reject) => {
      consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          const end = ends.get(batch.partition)
          if (end === undefined) return
          for (const m of batch.messages) {
            if (Number(m.offset) >= end) continue
            got.push({
              partition: batch.partition,
              offset: m.offset,
              key: m.key?.toString() ?? null,
              value: m.value?.toString() ?? null,
              headers: Object.fromEntries(Object.entries(m.headers ?? {}).map(([k, v]) => [k, String(v)]))
            })
          }
          if (Number(batch.lastOffset()) + 1 >= end) ends.delete(batch.partition)
          if (ends.size === 0) resolve()
        }
      }).catch(reject)
    })
  } finally {
    await consumer.disconnect()
  }
  return got.sort((a, b) => a.partition - b.partition || Number(a.offset) - Number(b.offset))
}

const committedOffsets = async (bootstrap: string, groupId: string, topic: string) => {
  const admin = new Kafka({ brokers: [bootstrap], logLevel: logLevel.NOTHING }).admin()
  await admin.connect()
  try {
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] })
    return offsets!.partitions.sort((a, b) => a.partition - b.partition).map((p) => Math.max(0, Number(p.offset)))
  } finally {
    await admin.disconnect()
  }
}

/** librdkafka's mock cluster in a child process, for as long as the scope lives. */
export const start = (options: KafkaMockOptions): Effect.Effect<KafkaMockShape, KafkaMockError, Scope.Scope> =>
  Effect.gen(function*() {
    const launcher = ensureLauncher()
    const topics = Object.entries(options.topics).map(([name, partitions]) => `${name}:${partitions}`)
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => spawn(launcher, [String(options.brokers ?? 1), ...topics], { stdio: ["pipe", "pipe", "inherit"] })),
      (child) => Effect.sync(() => {
        child.stdin.end()
        child.kill("SIGKILL")
      })
    )
    const lines = createInterface({ input: child.stdout })
    const waiting: Array<(line: string) => void> = []
    lines.on("line", (line) => waiting.shift()?.(line))
    const nextLine = Effect.async<string, KafkaMockError>((resume) => {
      const onExit = (code: number | null) =>
        resume(Effect.fail(new KafkaMockError({ message: `the mock cluster exited (${code})` })))
      child.once("exit", onExit)
      waiting.push((line) => {
        child.off("exit", onExit)
        resume(Effect.succeed(line))
      })
    })
    const first = yield* nextLine
    if (!first.startsWith("bootstrap ")) {
      return yield* new KafkaMockError({ message: `unexpected launcher output: ${first}` })
    }
    const bootstrap = first.slice("bootstrap ".length)
    const command = (line: string) =>
      Effect.suspend(() => {
        child.stdin.write(`${line}\n`)
        return nextLine
      }).pipe(
        Effect.flatMap((answer) =>
          answer === "ok" ? Effect.void : new KafkaMockError({ message: `${line}: ${answer}` })
        )
      )
    return {
      bootstrap,
      env: { KAFKA_BROKERS: bootstrap },
      brokerDown: (id) => command(`down ${id}`),
      brokerUp: (id) => command(`up ${id}`),
      requestErrors: (apiKey, errorCode, count) => command(`errors ${apiKey} ${errorCode} ${count}`),
      produce: (topic, messages) =>
        Effect.tryPromise({ try: () => produce(bootstrap, topic, messages), catch: clientError(`cannot produce to ${topic}`) }),
      messages: (topic) =>
        Effect.tryPromise({ try: () => readTopic(bootstrap, topic), catch: clientError(`cannot read ${topic}`) }),
      committed: (groupId, topic) =>
        Effect.tryPromise({
          try: () => committedOffsets(bootstrap, groupId, topic),
          catch: clientError(`cannot read the offsets of ${groupId}`)
        })
    } satisfies KafkaMockShape
  })

export const layer = (options: KafkaMockOptions) => Layer.scoped(KafkaMock, start(options))
