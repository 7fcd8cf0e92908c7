import { describe, expect, it } from "@effect/vitest"
import { Effect, HashMap, Logger, LogLevel, Option, TestClock } from "effect"
import { logLevel } from "kafkajs"
import { logCreator } from "../src/queue/kafka/KafkaLog.js"

/** The level and message of each line kafkajs logs through `logCreator`. */
const logged = (entries: ReadonlyArray<{ level: logLevel; namespace: string; log: Record<string, unknown> }>) =>
  Effect.gen(function*() {
    const lines: Array<[string, string]> = []
    const capture = Logger.make(({ logLevel, message }) => {
      lines.push([logLevel.label, String(message)])
    })
    const runtime = yield* Effect.runtime<never>().pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
      Logger.withMinimumLogLevel(LogLevel.All)
    )
    const log = logCreator(runtime, new Map())()
    for (const { level, log: entry, namespace } of entries) {
      log({ namespace, level, label: "", log: { timestamp: "", logger: "kafkajs", message: "", ...entry } })
    }
    return lines
  })

describe("kafkajs's log lines", () => {
  it.effect("the broker's answers during a rebalance are DEBUG, the consumer's rejoining INFO, other errors ERROR", () =>
    Effect.gen(function*() {
      const lines = yield* logged([
        { level: logLevel.ERROR, namespace: "Connection", log: { message: "Response SyncGroup(key: 14, version: 3)", error: "The group is rebalancing, so a rejoin is needed" } },
        { level: logLevel.ERROR, namespace: "Connection", log: { message: "Response OffsetCommit(key: 8, version: 5)", error: "Specified group generation id is not valid" } },
        { level: logLevel.ERROR, namespace: "Connection", log: { message: "Response JoinGroup(key: 11, version: 5)", error: "The coordinator is not aware of this member" } },
        { level: logLevel.ERROR, namespace: "Connection", log: { message: "Response Heartbeat(key: 12, version: 3)", error: "The group is rebalancing, so a rejoin is needed" } },
        { level: logLevel.ERROR, namespace: "Consumer", log: { message: "The group is rebalancing, re-joining" } },
        { level: logLevel.ERROR, namespace: "Runner", log: { message: "The coordinator is not aware of this member, re-joining the group" } },
        { level: logLevel.ERROR, namespace: "Connection", log: { message: "Response Produce(key: 0, version: 7)", error: "This server is not the leader for that topic-partition" } },
        { level: logLevel.ERROR, namespace: "Connection", log: { message: "Connection error: connect ECONNREFUSED 127.0.0.1:9092" } }
      ])
      expect(lines.map(([level]) => level)).toEqual(["DEBUG", "DEBUG", "DEBUG", "DEBUG", "INFO", "INFO", "ERROR", "ERROR"])
      expect(lines[0]![1]).toBe("kafka Connection: Response SyncGroup(key: 14, version: 3)")
    }))

  it.effect("an error repeated as it was is logged once in 30 s, then with how many it left out; other lines as they come", () =>
    Effect.gen(function*() {
      const lines: Array<[string, string, string | undefined]> = []
      const capture = Logger.make(({ annotations, logLevel, message }) => {
        lines.push([logLevel.label, String(message), Option.getOrUndefined(HashMap.get(annotations, "repeated")) as string | undefined])
      })
      const runtime = yield* Effect.runtime<never>().pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
        Logger.withMinimumLogLevel(LogLevel.All)
      )
      const log = logCreator(runtime, new Map())()
      const entry = (level: logLevel, message: string, broker = "127.0.0.1:9092") =>
        log({ namespace: "Connection", level, label: "", log: { timestamp: "", logger: "kafkajs", message, broker } })
      const refused = "Connection error: connect ECONNREFUSED 127.0.0.1:9092"
      for (let i = 0; i < 5; i++) entry(logLevel.ERROR, refused)
      entry(logLevel.ERROR, refused, "127.0.0.1:9093")
      entry(logLevel.INFO, "Connecting")
      entry(logLevel.INFO, "Connecting")
      yield* TestClock.adjust("29 seconds")
      entry(logLevel.ERROR, refused)
      yield* TestClock.adjust("2 seconds")
      entry(logLevel.ERROR, refused)
      entry(logLevel.ERROR, refused)
      expect(lines).toEqual([
        ["ERROR", `kafka Connection: ${refused}`, undefined],
        ["ERROR", `kafka Connection: ${refused}`, undefined],
        ["INFO", "kafka Connection: Connecting", undefined],
        ["INFO", "kafka Connection: Connecting", undefined],
        ["ERROR", `kafka Connection: ${refused}`, "5 more times in the 30s before"]
      ])
    }))

  it.effect("a line is logged once a window across the clients of a process: startup retries make a new client each time", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const runtime = yield* Effect.runtime<never>().pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => void lines.push(String(message)))))
      )
      // A broker no other test names: the lines remembered are the process's.
      const refused = { timestamp: "", logger: "kafkajs", message: "Connection error: connect ECONNREFUSED 127.0.0.1:59092", broker: "127.0.0.1:59092" }
      for (let attempt = 0; attempt < 3; attempt++) {
        logCreator(runtime)()({ namespace: "Connection", level: logLevel.ERROR, label: "", log: refused })
        yield* TestClock.adjust("12 seconds")
      }
      expect(lines).toEqual([`kafka Connection: ${refused.message}`])
    }))
})
