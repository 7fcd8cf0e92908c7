/**
 * `pnpm bench --soak [minutes]` (default 30): simulated Home Assistant integrations (contract §6, the client of
 * `@telemetry/testbed/HomeAssistantClient`) against the compiled ingest program and two compiled workers on the test bed's
 * stand-ins (s3rver, librdkafka's mock cluster, a fresh PostgreSQL database). Every device sends its queue every
 * 120 s; some start with a day of backlog, some have nothing to send and only log in (the heartbeat). Every minute
 * it records the ingest latency (p50/p99), the RSS of every process and the consumer lag; at the end it waits for the
 * lag to drain and checks that every reading sent is stored exactly once. Figures go to bench/soak.json, the plot
 * to docs/soak.png, the summary to stdout.
 *
 *   SOAK_DEVICES (default 2000) changes the number of devices.
 */
import { NodeRuntime } from "@effect/platform-node"
import { type HaItem, makeHaClient, pythonIsoformat } from "@telemetry/testbed/HomeAssistantClient"
import { Duration, Effect, Ref } from "effect"
import { Kafka, logLevel } from "kafkajs"
import { readFileSync } from "node:fs"
import { deviceAccounts } from "./accounts.js"
import { build, compiled, kafka, local, s3rver } from "./services.js"
import { type Minute, publish, rssGrowthOf, type SoakResult } from "./soakReport.js"
import { AUTH_SECRET, freePort, freshDatabase, percentile, pgClient, progress, waitFor } from "./support.js"

const CYCLE_SECONDS = 120
/** The integration's collection interval: two readings per sensor per cycle. */
const INTERVAL_SECONDS = 60
const TOPIC = "telemetry.raw"
const GROUP = "telemetry-workers"
const PASSWORD = "soak-device-password"
/** One device in BACKLOG_EVERY starts with a day of readings queued; one in HEARTBEAT_EVERY never has any. */
const BACKLOG_EVERY = 50
const HEARTBEAT_EVERY = 10
/** A fleet's first logins (a scrypt hash each) that take longer than this fail the soak. */
const MAX_WARMUP_MINUTES = 20

const usernameOf = (i: number) => `soak-${String(i).padStart(5, "0")}`
const uuid = (kind: number, i: number) => `00000000-0000-4000-8000-${String(kind).padStart(2, "0")}${String(i).padStart(10, "0")}`

/** RSS of a process and its descendants (an ingest may fork), from /proc, in MiB; 0 once gone. */
const rssMiB = (pid: number): number => {
  try {
    const own = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(" ").filter(Boolean)
    return own + children.reduce((sum, child) => sum + rssMiB(Number(child)), 0)
  } catch {
    return 0
  }
}

/** The readings a device took at collection `j` (its `j`-th minute since `origin`), one per sensor. */
const itemAt = (device: number, origin: number, j: number): HaItem => {
  const at = new Date(origin + j * INTERVAL_SECONDS * 1000)
  const time = pythonIsoformat(at.getUTCFullYear(), at.getUTCMonth() + 1, at.getUTCDate(), at.getUTCHours(), at.getUTCMinutes(), at.getUTCSeconds(), (device % 1000) * 1000 + 1)
  return {
    equip_uuid: uuid(1, device),
    equip_nome: `Freezer ${device}`,
    equip_local: "Cozinha",
    equip_status: "ATIVO",
    equip_intervalo_coleta: INTERVAL_SECONDS,
    equip_sirene_ativa: "NÃO",
    equip_sirete_tempo: 120,
    sensor: [
      {
        sensor_uuid: uuid(2, device),
        sensor_nome: `Freezer ${device} Temperatura`,
        sensor_tipo: "temperature",
        sensor_unidade: "°C",
        sensor_telemetria: (-18 + Math.sin(j / 30) * 2).toFixed(2),
        sensor_datahora_coleta: time,
        sensor_bateria_pct: 87.0
      },
      {
        sensor_uuid: uuid(3, device),
        sensor_nome: `Freezer ${device} Porta`,
        sensor_tipo: "door",
        sensor_telemetria: j % 7 === 0 ? "on" : "off",
        sensor_datahora_coleta: time
      }
    ]
  }
}

const soak = (minutes: number, devices: number) =>
  Effect.gen(function*() {
    const db = yield* freshDatabase
    const storage = yield* s3rver
    const queue = yield* kafka
    yield* progress(`soak: ${devices} device accounts`)
    // Each Home Assistant installation is a household of its own: a tenant with one device account.
    yield* deviceAccounts({ url: db.url, tenantOf: (i) => `home-${i}`, count: devices, usernameOf, password: PASSWORD })
    const env = { ...storage, ...queue, DATABASE_URL: db.url, DEFAULT_TIMEZONE: "UTC", AUTH_SECRET }
    // The programs as the image runs them, with their default limits.
    yield* progress("soak: pnpm build")
    yield* build
    const port = yield* Effect.promise(freePort)
    const base = local(port)
    // Every simulated device logs in from this one address, and connects from it; behind a NAT a real fleet does the
    // same (and is given such limits).
    const { app: ingest } = yield* compiled(
      "main/ingest.js",
      { ...env, PORT: String(port), RATE_LIMIT_UNAUTHENTICATED: "1000000", MAX_CONNECTIONS_PER_ADDRESS: "0" },
      base
    )
    const worker = Effect.gen(function*() {
      const metricsPort = yield* Effect.promise(freePort)
      return (yield* compiled("main/worker.js", { ...env, METRICS_PORT: String(metricsPort) }, local(metricsPort))).app
    })
    const workers = [yield* worker, yield* worker]
    const programs = { ingest, "worker 1": workers[0]!, "worker 2": workers[1]! }

    const admin = new Kafka({ brokers: queue["KAFKA_BROKERS"]!.split(","), logLevel: logLevel.NOTHING }).admin()
    yield* Effect.acquireRelease(Effect.promise(() => admin.connect()), () => Effect.promise(() => admin.disconnect()))
    const lag = Effect.promise(async () => {
      const [high, [committed]] = await Promise.all([
        admin.fetchTopicOffsets(TOPIC),
        admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] })
      ])
      return high.reduce((sum, p) => {
        const done = Number(committed?.partitions.find((c) => c.partition === p.partition)?.offset ?? -1)
        // Offsets and watermarks are read apart: a commit between the two reads must not count as negative lag.
        return sum + Math.max(0, Number(p.high) - (done < 0 ? Number(p.low) : done))
      }, 0)
    })

    const started = Date.now()
    // The soak's minutes start once every device has logged in once: until then, `until` is open.
    let until = Infinity
    const loggedIn = new Set<number>()
    const sends = yield* Ref.make<Array<{ readonly ms: number; readonly status: number | "network error" }>>([])
    const logins = yield* Ref.make<Array<number>>([])
    let readingsSent = 0

    const device = (i: number) =>
      Effect.gen(function*() {
        const client = makeHaClient({ base, username: usernameOf(i), password: PASSWORD })
        const idle = i % HEARTBEAT_EVERY === 0
        const origin = started - (i % BACKLOG_EVERY === 1 ? 86_400_000 : 0)
        let next = 0
        /** Queues the readings taken up to `now`. */
        const collect = (now: number) => {
          for (; origin + next * INTERVAL_SECONDS * 1000 <= now; next++) {
            client.record(itemAt(i, origin, next))
            readingsSent += 2
          }
        }
        const cycle = Effect.gen(function*() {
          const result = yield* client.cycle
          const answered = result.sendMs.map((ms, k) => ({ ms, status: result.sends[k]! }))
          yield* Ref.update(sends, (all) => (all.push(...answered), all))
          yield* Ref.update(logins, (all) => (all.push(...result.logins), all))
          if (result.logins.includes(200)) loggedIn.add(i)
        })
        // Devices start spread over the first cycle, as a fleet does.
        for (let at = started + (i / devices) * CYCLE_SECONDS * 1000; at < until; at += CYCLE_SECONDS * 1000) {
          yield* Effect.sleep(Duration.millis(Math.max(0, at - Date.now())))
          if (!idle) collect(Date.now())
          yield* cycle
        }
        // What is still queued is sent by the next cycles, as the integration would.
        while (client.queued() > 0) yield* cycle
      })

    const timeline: Array<Minute> = []
    let warmupMinutes = 0
    const sample = Effect.gen(function*() {
      const answered = yield* Ref.getAndSet(sends, [])
      const loginsByAnswer: Record<string, number> = {}
      for (const status of yield* Ref.getAndSet(logins, [])) loginsByAnswer[status] = (loginsByAnswer[status] ?? 0) + 1
      const times = answered.map((s) => s.ms)
      const failed: Record<string, number> = {}
      for (const { status } of answered) if (status !== 200 && status !== 201) failed[status] = (failed[status] ?? 0) + 1
      const rss = Object.fromEntries(Object.entries(programs).map(([name, p]) => [name, Math.round(rssMiB(p.pid))]))
      const gone = Object.entries(rss).filter(([, mib]) => mib === 0).map(([name]) => name)
      if (gone.length > 0) {
        return yield* Effect.fail(new Error(`${gone.join(", ")} exited; it printed:\n${programs[gone[0] as keyof typeof programs].output()}`))
      }
      const phase = until === Infinity ? "warm-up" : "soak"
      const minute: Minute = {
        minute: timeline.length + 1,
        phase,
        requests: answered.length,
        failures: answered.length - answered.filter((s) => s.status === 200 || s.status === 201).length,
        failed,
        logins: loginsByAnswer,
        p50: percentile(times, 0.5),
        p99: percentile(times, 0.99),
        rss,
        lag: yield* lag
      }
      timeline.push(minute)
      if (phase === "warm-up" && loggedIn.size === devices) {
        warmupMinutes = minute.minute
        until = Date.now() + minutes * 60_000
        yield* progress(`soak: warm-up over: every device has logged in once; the ${minutes} soak minutes start`)
      } else if (phase === "warm-up" && minute.minute >= MAX_WARMUP_MINUTES) {
        return yield* Effect.fail(new Error(`only ${loggedIn.size} of ${devices} devices logged in within ${MAX_WARMUP_MINUTES} minutes`))
      }
      yield* progress(
        `soak: ${phase} minute ${minute.minute} (${loggedIn.size} devices logged in): ${minute.requests} sends (${minute.failures} failed: ${JSON.stringify(failed)}), logins ${JSON.stringify(loginsByAnswer)}, p50 ${minute.p50.toFixed(0)} ms, ` +
          `p99 ${minute.p99.toFixed(0)} ms, lag ${minute.lag}, RSS ${Object.entries(rss).map(([n, m]) => `${n} ${m}`).join(", ")} MiB`
      )
    })
    const everyMinute = Effect.forever(Effect.zipRight(Effect.sleep(Duration.minutes(1)), sample))

    yield* progress(`soak: ${devices} devices against ${base}: warm-up until each has logged in once, then ${minutes} min`)
    // A process that exits fails the sampling, and with it the soak.
    yield* Effect.raceFirst(
      Effect.forEach(Array.from({ length: devices }, (_, i) => i), device, { concurrency: "unbounded", discard: true }),
      everyMinute
    )
    const sent = Date.now()
    yield* progress(`soak: every queue acknowledged (${readingsSent} readings); waiting for the lag to drain`)
    yield* waitFor("the consumer lag to drain", Effect.filterOrFail(lag, (n) => n === 0), Duration.minutes(10))
    const drainSeconds = (Date.now() - sent) / 1000
    yield* sample

    const client = yield* pgClient(db.url)
    const rowsStored = Number((yield* Effect.promise(() => client.query("SELECT count(*) AS n FROM telemetry_data"))).rows[0].n)
    const result: SoakResult = {
      date: new Date().toISOString(),
      minutes,
      warmupMinutes,
      devices,
      timeline,
      readingsSent,
      rowsStored,
      drainSeconds,
      rssGrowth: rssGrowthOf(timeline)
    }
    return { result, summary: yield* publish(result) }
  })

const args = process.argv.slice(2)
// `--soak [minutes]`: a value that is not a positive number is refused, not taken for the default half hour.
const minutesText = args[args.indexOf("--soak") + 1]
const minutes = minutesText === undefined || minutesText.startsWith("--") ? 30 : Number(minutesText)
if (!(Number.isFinite(minutes) && minutes > 0)) {
  process.stderr.write(`pnpm bench --soak: "${minutesText}" is not a number of minutes\n`)
  process.exit(2)
}
const devices = Number(process.env["SOAK_DEVICES"] ?? 2000)

NodeRuntime.runMain(
  Effect.scoped(soak(minutes, devices)).pipe(
    Effect.flatMap(({ result, summary }) =>
      Effect.sync(() => {
        process.stdout.write(summary)
        if (result.readingsSent !== result.rowsStored) process.exitCode = 1
      })
    )
  )
)
