import { Context, Data, Effect, Layer, type Scope } from "effect"
import { execFileSync, spawn } from "node:child_process"
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

export interface KafkaMockShape {
  /** `host:port,...` of the mock brokers. */
  readonly bootstrap: string
  /** Environment for processes that should use this cluster. */
  readonly env: Readonly<Record<string, string>>
  readonly brokerDown: (brokerId: number) => Effect.Effect<void, KafkaMockError>
  readonly brokerUp: (brokerId: number) => Effect.Effect<void, KafkaMockError>
  /** The next `count` requests of protocol API `apiKey` fail with Kafka error `errorCode`. */
  readonly requestErrors: (apiKey: number, errorCode: number, count: number) => Effect.Effect<void, KafkaMockError>
}

export class KafkaMock extends Context.Tag("@telemetry/testbed/KafkaMock")<KafkaMock, KafkaMockShape>() {}

export interface KafkaMockOptions {
  /** Topic name → partition count; created before the cluster is handed out. */
  readonly topics: Readonly<Record<string, number>>
  readonly brokers?: number
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
      requestErrors: (apiKey, errorCode, count) => command(`errors ${apiKey} ${errorCode} ${count}`)
    } satisfies KafkaMockShape
  })

export const layer = (options: KafkaMockOptions) => Layer.scoped(KafkaMock, start(options))
