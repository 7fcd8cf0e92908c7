/** The results as one markdown document (tables and the targets), and as JSON. */
import { cpus } from "node:os"
import type { AnalyticsResult } from "./analytics.js"
import type { IngestResult, IngestRow, Latencies } from "./ingest.js"
import { HEARTBEAT, type LoginResult } from "./login.js"
import type { MemoryResult } from "./memory.js"
import { type ObservabilityResult, VARIANTS } from "./observability.js"
import { formatRate, MB, MiB } from "./support.js"
import type { WorkerResult } from "./worker.js"

export interface Results {
  readonly mode: "quick" | "full"
  readonly date: string
  readonly machine: { readonly cpus: number; readonly cpu: string; readonly node: string; readonly postgres: string }
  readonly seconds: number
  readonly worker?: WorkerResult
  readonly ingest?: IngestResult
  readonly memory?: MemoryResult
  readonly analytics?: AnalyticsResult
  readonly login?: LoginResult
  readonly observability?: ObservabilityResult
  /** Benchmarks that failed, with why. */
  readonly errors: Readonly<Record<string, string>>
}

export const machine = (postgres: string) => ({
  cpus: cpus().length,
  cpu: cpus()[0]?.model.trim() ?? "unknown",
  node: process.version,
  postgres
})

const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1))
const mb = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`
const table = (header: ReadonlyArray<string>, align: string, rows: ReadonlyArray<ReadonlyArray<string>>) =>
  [`| ${header.join(" | ")} |`, `|${align.split("").map((a) => (a === "r" ? "---:" : "---")).join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n")

const workerSection = (w: WorkerResult) => {
  const n = w.worker.rounds.length
  const of = (rates: WorkerResult["copy"]) => `${formatRate(rates.median)}`
  return [
    `### 1. Worker load rate: ${w.readings.toLocaleString("en")} readings (${(w.payloadBytes / MB).toFixed(0)} MB of JSON, ` +
    `${(w.storedBytes / MB).toFixed(1)} MB gzip), median of ${n} round${n > 1 ? "s" : ""} (the seed-style loader: one)`,
    "",
    table(["loader", "rows/s", "worker ÷ loader"], "lrr", [
      ["worker: S3 GET → gunzip → scan → validate → COPY, one transaction", of(w.worker), ""],
      ["`psql \\copy` of the same rows into the same table", of(w.copy), (w.worker.median / w.copy.median).toFixed(2)],
      ["seed-style loader: multi-row INSERTs of 1 000 rows", of(w.seed), (w.worker.median / w.seed.median).toFixed(2)]
    ]),
    "",
    `CPU per reading in the worker's loads: ${w.cpu.node.toFixed(2)} µs in the worker process (all its threads), ` +
    `${w.cpu.postgres.toFixed(2)} µs in the PostgreSQL backends; unlike rates, these hardly depend on what else runs.`
  ].join("\n")
}

const latency = (l: Latencies | { readonly error: string }) =>
  "error" in l ? ["failed", "", ""] : [ms(l.p50), ms(l.p95), l.mbPerSecond.toFixed(0)]

/** What an ingest row is measured against: the slower of its floors at p95 (raw PUT, one-thread gunzip + parse). */
const ingestFloor = (r: IngestRow) => Math.max(r.put.p95, r.parse.p95)
/** The throughput target at a concurrency: 0.7 × the one-thread parse rate × the cores. */
const ingestRateTarget = (r: IngestRow, cpus: number) => 0.7 * r.parse.mbPerSecond * cpus

const ingestSection = ({ payloadBytes, rows }: IngestResult, cpus: number) =>
  [
    `### 2. Ingest: ${(payloadBytes / MB).toFixed(0)} MB JSON payloads, gzip (${
      ((rows.find((r) => r.body === "gzip")?.bodyBytes ?? 0) / MB).toFixed(1)
    } MB as sent) and plain bodies`,
    "",
    table(
      ["body", "concurrency", "requests", "ingest p50 ms", "ingest p95 ms", "ingest MB/s", "raw PUT p50 ms", "raw PUT p95 ms",
        "raw PUT MB/s", "parse p50 ms", "parse p95 ms", "parse MB/s", "parse, all cores at once, MB/s", "p95 ÷ floor p95",
        "MB/s ÷ (0.7 × parse MB/s × cores)"],
      "lrrrrrrrrrrrrrr",
      rows.map((r) => [
        r.body,
        String(r.concurrency),
        String(r.put.requests),
        ...latency(r.ingest),
        ...latency(r.put),
        ...latency(r.parse),
        r.parseAllCores?.mbPerSecond.toFixed(0) ?? "",
        "error" in r.ingest ? "" : (r.ingest.p95 / ingestFloor(r)).toFixed(2),
        "error" in r.ingest ? "" : (r.ingest.mbPerSecond / ingestRateTarget(r, cpus)).toFixed(2)
      ])
    ),
    "",
    `MB/s counts the JSON payload (${(payloadBytes / MB).toFixed(0)} MB a request) in every row, so gzip and plain rows ` +
    "compare. *parse*: gunzip (gzip bodies) and `JSON.parse` of the same bytes in the benchmark's process, on one " +
    "thread, one at a time whatever the concurrency: the least validating every byte can cost. *all cores at once*: " +
    `the same parse on ${cpus} worker threads together, what this machine's cores parse at most. *floor*: the ` +
    `slower of raw PUT and parse; ${cpus} cores.`
  ].join("\n")

const memorySection = (m: MemoryResult) =>
  [
    `### 3. Footprint: the compiled programs (\`pnpm build\`), RSS idle and its peak (VmHWM) with a ` +
    `${(m.payloadBytes / MB).toFixed(0)} MB payload (${m.readings.toLocaleString("en")} readings); startup to ready`,
    "",
    table(["process", "startup to ready", "idle", "gzip body", "plain body"], "lrrrr", [
      ["ingest (`dist/main/ingest.js`)", `${m.startup.ingest.toFixed(1)} s`, mb(m.ingest.idle), mb(m.ingest.gzip), mb(m.ingest.plain)],
      [`worker (\`dist/main/worker.js\`), loading it in ${m.workerSeconds.toFixed(0)} s`, `${m.startup.worker.toFixed(1)} s`,
        mb(m.worker.idle), mb(m.worker.load), ""],
      ["embedded `dist/main/start.js`, a fresh data directory", `${m.startup.embedded.toFixed(1)} s`, "", "", ""]
    ]),
    "",
    "Ingest and worker on s3rver, the mock Kafka cluster and PostgreSQL; startup is spawn to GET /api/v1/health/ready " +
    "200 (the worker's on METRICS_PORT), migrations included; on a loaded machine it mostly measures the wait for a CPU."
  ].join("\n")

const analyticsSection = (a: AnalyticsResult) =>
  [
    `### 4. Analytics: ${a.rows.toLocaleString("en")} readings (20 equipments × 5 sensors, 31 days, among 10 000 ` +
    `equipments); aggregates refreshed in ${a.refreshSeconds.toFixed(0)} s; target p95 < 20 ms over HTTP`,
    "",
    table(
      ["route", "answered from", "via", "requests", "p50 ms", "p95 ms", "CPU ms", "rows", "p95 < 20 ms"],
      "lllrrrrrl",
      a.queries.map((q) => [q.query, q.source, q.via, String(q.requests), ms(q.p50), ms(q.p95),
        q.cpuMs === undefined ? "" : ms(q.cpuMs), String(q.rows),
        q.source === "aggregates" && q.via === "HTTP" ? (q.p95 < 20 ? "yes" : "**no**") : ""])
    ),
    "",
    "*HTTP*: from the request to the answer's last byte received (the client's JSON.parse of it not counted). " +
    "*service*: the Analytics service called in the benchmark's process, i.e. the query and the writing of its rows' JSON, " +
    "without routing and encoding the response. *CPU ms*: CPU time of the ingest process per request (the database's " +
    "is not counted), which depends little on what else runs."
  ].join("\n")

const percent = (x: number) => `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(1)} %`

const observabilitySection = (o: ObservabilityResult) => {
  const label = {
    plain: "no exporter, no tracer",
    metrics: "Prometheus exporter, scraped every second",
    tracing: "OpenTelemetry tracer, every span recorded"
  }
  const cost = (of: ObservabilityResult["overhead"]) =>
    ({ plain: "", metrics: percent(of.metrics), tracing: percent(of.tracing) })
  return [
    `### 6. Cost of metrics and tracing on the worker: ${o.readings.toLocaleString("en")} readings a load, median of ` +
    `${o.rates.plain.rounds.length} alternated rounds; target < 3 % of throughput`,
    "",
    table(["worker", "rows/s", "throughput lost", "CPU µs / reading", "CPU added"], "lrrrr", VARIANTS.map((v) =>
      [label[v], formatRate(o.rates[v].median), cost(o.overhead)[v], o.cpu[v].toFixed(2), cost(o.cpuOverhead)[v]])),
    "",
    `${o.scrapes} scrapes served (their wall time: ${o.scrapeShare.toFixed(2)} % of those loads' time) and ${o.spans} ` +
    "spans ended during the loads. Lost and added: the median of each round's ratio to the plain load of the same " +
    "round; on a shared machine a few per cent either way is noise."
  ].join("\n")
}

const loginSection = (l: LoginResult) =>
  [
    `### 5. Device login: CPU of the ingest process per login, ${l.accounts.toLocaleString("en")} device accounts`,
    "",
    table(["logins", "count", "CPU ms / login", "p50 ms", "p95 ms", `${HEARTBEAT.devices.toLocaleString("en")} devices every ${HEARTBEAT.seconds} s`], "lrrrrr", [
      ["verified recently (credential cache)", l.cached, "cached"] as const,
      ["every one a scrypt hash (AUTH_LOGIN_CACHE_TTL=\"0 seconds\")", l.uncached, "uncached"] as const
    ].map(([what, cost]) => [
      what,
      String(cost.logins),
      cost.cpuMs.toFixed(2),
      ms(cost.p50),
      ms(cost.p95),
      `${(cost.heartbeatShare * 100).toFixed(1)} % of a core`
    ])),
    "",
    "The heartbeat: the Home Assistant integration logs in every cycle (120 s by default), also with nothing to send."
  ].join("\n")

interface Target {
  readonly target: string
  readonly measured: string
  readonly met: boolean
}

const targets = (r: Results): Array<Target> => {
  const out: Array<Target> = []
  if (r.worker) {
    const copy = r.worker.worker.median / r.worker.copy.median
    const seed = r.worker.worker.median / r.worker.seed.median
    out.push({ target: "worker ≥ 0.8 × `psql \\copy`", measured: `${copy.toFixed(2)} ×`, met: copy >= 0.8 })
    out.push({ target: "worker ≥ 10 × the seed-style loader", measured: `${seed.toFixed(2)} ×`, met: seed >= 10 })
  }
  for (const row of r.ingest?.rows ?? []) {
    const failed = "error" in row.ingest
    if (row.concurrency === 1) {
      const ratio = "error" in row.ingest ? NaN : row.ingest.p95 / ingestFloor(row)
      out.push({
        target: `ingest p95 ≤ 1.3 × max(raw PUT, gunzip + JSON.parse) p95 (${row.body}, concurrency 1)`,
        measured: failed ? "failed" : `${ratio.toFixed(2)} ×`,
        met: ratio <= 1.3
      })
    } else {
      const target = ingestRateTarget(row, r.machine.cpus)
      const rate = "error" in row.ingest ? NaN : row.ingest.mbPerSecond
      // What the bare parse reaches on every core at once: the ceiling the target assumes is the cores' sum.
      const allCores = row.parseAllCores ? ` (bare parse on all cores at once: ${row.parseAllCores.mbPerSecond.toFixed(0)})` : ""
      out.push({
        target: `ingest ≥ 0.7 × parse MB/s × ${r.machine.cpus} cores = ${target.toFixed(0)} MB/s (${row.body}, concurrency ${row.concurrency})`,
        measured: failed ? "failed" : `${rate.toFixed(0)} MB/s${allCores}`,
        met: rate >= target
      })
    }
  }
  if (r.memory) {
    const m = r.memory
    const idle = Math.max(m.ingest.idle, m.worker.idle)
    const peak = Math.max(m.ingest.gzip, m.ingest.plain, m.worker.load)
    const real = Math.max(m.startup.ingest, m.startup.worker)
    out.push({ target: "idle RSS < 120 MiB (ingest, worker)", measured: mb(idle), met: idle < 120 * MiB })
    out.push({ target: "peak RSS < 200 MiB with the payload (ingest, worker)", measured: mb(peak), met: peak < 200 * MiB })
    out.push({ target: "startup to ready < 2 s on real services", measured: `${real.toFixed(1)} s`, met: real < 2 })
    out.push({ target: "startup to ready < 5 s embedded", measured: `${m.startup.embedded.toFixed(1)} s`, met: m.startup.embedded < 5 })
  }
  const overHttp = r.analytics?.queries.filter((q) => q.source === "aggregates" && q.via === "HTTP") ?? []
  if (overHttp.length > 0) {
    const slowest = overHttp.reduce((a, b) => (b.p95 > a.p95 ? b : a))
    out.push({
      target: `every analytics and equipments route p95 < 20 ms from the aggregates (${overHttp.length} routes)`,
      measured: `slowest ${ms(slowest.p95)} ms (${slowest.query})`,
      met: slowest.p95 < 20
    })
  }
  if (r.login) {
    out.push({
      target: `${HEARTBEAT.devices.toLocaleString("en")} device logins every ${HEARTBEAT.seconds} s < 10 % of one core`,
      measured: `${(r.login.cached.heartbeatShare * 100).toFixed(1)} %`,
      met: r.login.cached.heartbeatShare < 0.1
    })
  }
  if (r.observability) {
    const { metrics, tracing } = r.observability.overhead
    out.push({ target: "metrics cost the worker < 3 % of throughput", measured: percent(metrics), met: metrics < 3 })
    out.push({ target: "tracing costs the worker < 3 % of throughput", measured: percent(tracing), met: tracing < 3 })
  }
  return out
}

export const markdown = (r: Results): string =>
  [
    `## Benchmarks (${r.mode}), ${r.date}`,
    "",
    `${r.machine.cpus} × ${r.machine.cpu}, Node ${r.machine.node}, ${r.machine.postgres}; ${r.seconds.toFixed(0)} s in all.`,
    ...(r.worker ? ["", workerSection(r.worker)] : []),
    ...(r.ingest ? ["", ingestSection(r.ingest, r.machine.cpus)] : []),
    ...(r.memory ? ["", memorySection(r.memory)] : []),
    ...(r.analytics ? ["", analyticsSection(r.analytics)] : []),
    ...(r.login ? ["", loginSection(r.login)] : []),
    ...(r.observability ? ["", observabilitySection(r.observability)] : []),
    "",
    "### Targets",
    "",
    table(["target", "measured", "met"], "lrl", targets(r).map((t) => [t.target, t.measured, t.met ? "yes" : "**no**"])),
    ...Object.entries(r.errors).map(([name, error]) => `\n**${name} failed**: ${error}`),
    ""
  ].join("\n")
