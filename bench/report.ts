/** The results as one markdown document (tables and the targets), and as JSON. */
import { cpus } from "node:os"
import type { AnalyticsResult } from "./analytics.js"
import type { IngestResult, Latencies } from "./ingest.js"
import { HEARTBEAT, type LoginResult } from "./login.js"
import type { MemoryResult } from "./memory.js"
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

const ingestSection = ({ payloadBytes, rows }: IngestResult) =>
  [
    `### 2. Ingest: ${(payloadBytes / MB).toFixed(0)} MB JSON payloads, gzip (${
      ((rows.find((r) => r.body === "gzip")?.bodyBytes ?? 0) / MB).toFixed(1)
    } MB as sent) and plain bodies`,
    "",
    table(
      ["body", "concurrency", "requests", "ingest p50 ms", "ingest p95 ms", "ingest MB/s", "raw PUT p50 ms", "raw PUT p95 ms",
        "raw PUT MB/s", "p95 ÷ raw PUT p95"],
      "lrrrrrrrrr",
      rows.map((r) => [
        r.body,
        String(r.concurrency),
        String(r.put.requests),
        ...latency(r.ingest),
        ...latency(r.put),
        "error" in r.ingest ? "" : (r.ingest.p95 / r.put.p95).toFixed(2)
      ])
    ),
    "",
    `MB/s counts the JSON payload (${(payloadBytes / MB).toFixed(0)} MB a request) in every row, so gzip and plain rows compare.`
  ].join("\n")

const memorySection = (m: MemoryResult) =>
  [
    `### 3. Memory: peak RSS (VmHWM) with a ${(m.payloadBytes / MB).toFixed(0)} MB payload (${m.readings.toLocaleString("en")} readings)`,
    "",
    table(["process", "started, idle", "gzip body", "plain body"], "lrrr", [
      ["ingest (`pnpm start`, RUN_WORKER=false)", mb(m.ingest.idle), mb(m.ingest.gzip), mb(m.ingest.plain)],
      [`worker (\`pnpm worker\`), loading it in ${m.workerSeconds.toFixed(0)} s`, mb(m.worker.idle), mb(m.worker.load), ""]
    ])
  ].join("\n")

const analyticsSection = (a: AnalyticsResult) =>
  [
    `### 4. Analytics: ${a.rows.toLocaleString("en")} readings (20 equipments × 5 sensors, 31 days); aggregates ` +
    `refreshed in ${a.refreshSeconds.toFixed(0)} s`,
    "",
    table(
      ["query (one equipment)", "answered from", "via", "requests", "p50 ms", "p95 ms", "rows"],
      "lllrrrr",
      a.queries.map((q) => [q.query, q.source, q.via, String(q.requests), ms(q.p50), ms(q.p95), String(q.rows)])
    ),
    "",
    "*service*: the Analytics service called in the benchmark's process, i.e. the query and the decoding of its rows, " +
    "without routing and encoding the response."
  ].join("\n")

const loginSection = (l: LoginResult) =>
  [
    `### 5. Device login: CPU of the ingest process per login, ${l.accounts.toLocaleString("en")} device accounts`,
    "",
    table(["logins", "count", "CPU ms / login", "p50 ms", "p95 ms", `${HEARTBEAT.devices.toLocaleString("en")} devices every ${HEARTBEAT.seconds} s`], "lrrrrr", [
      ["verified recently (credential cache)", l.cached, "cached"] as const,
      ["every one a scrypt hash (AUTH_LOGIN_CACHE_TTL=0)", l.uncached, "uncached"] as const
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
    out.push({ target: "worker ≥ 0.7 × `psql \\copy`", measured: `${copy.toFixed(2)} ×`, met: copy >= 0.7 })
    out.push({ target: "worker ≥ 10 × the seed-style loader", measured: `${seed.toFixed(2)} ×`, met: seed >= 10 })
  }
  for (const row of r.ingest?.rows ?? []) {
    if (row.body !== "gzip") continue
    const ratio = "error" in row.ingest ? NaN : row.ingest.p95 / row.put.p95
    out.push({
      target: `ingest p95 ≤ 1.5 × raw PUT (gzip, concurrency ${row.concurrency})`,
      measured: Number.isNaN(ratio) ? "failed" : `${ratio.toFixed(2)} ×`,
      met: ratio <= 1.5
    })
  }
  if (r.memory) {
    const peak = Math.max(r.memory.ingest.idle, r.memory.ingest.gzip, r.memory.ingest.plain, r.memory.worker.idle, r.memory.worker.load)
    out.push({ target: "peak RSS < 256 MB, any payload size", measured: mb(peak), met: peak < 256 * MiB })
  }
  for (const resolution of ["hourly", "daily"]) {
    const history = r.analytics?.queries.find((q) =>
      q.source === "aggregates" && q.via === "HTTP" && q.query.startsWith(`equipment history, ${resolution}`)
    )
    if (history) {
      out.push({
        target: `30-day history p95 < 20 ms from the aggregates (${resolution}, ${history.rows} rows)`,
        measured: `${ms(history.p95)} ms`,
        met: history.p95 < 20
      })
    }
  }
  if (r.login) {
    out.push({
      target: `${HEARTBEAT.devices.toLocaleString("en")} device logins every ${HEARTBEAT.seconds} s < 10 % of one core`,
      measured: `${(r.login.cached.heartbeatShare * 100).toFixed(1)} %`,
      met: r.login.cached.heartbeatShare < 0.1
    })
  }
  return out
}

export const markdown = (r: Results): string =>
  [
    `## Benchmarks (${r.mode}), ${r.date}`,
    "",
    `${r.machine.cpus} × ${r.machine.cpu}, Node ${r.machine.node}, ${r.machine.postgres}; ${r.seconds.toFixed(0)} s in all.`,
    ...(r.worker ? ["", workerSection(r.worker)] : []),
    ...(r.ingest ? ["", ingestSection(r.ingest)] : []),
    ...(r.memory ? ["", memorySection(r.memory)] : []),
    ...(r.analytics ? ["", analyticsSection(r.analytics)] : []),
    ...(r.login ? ["", loginSection(r.login)] : []),
    "",
    "### Targets",
    "",
    table(["target", "measured", "met"], "lrl", targets(r).map((t) => [t.target, t.measured, t.met ? "yes" : "**no**"])),
    ...Object.entries(r.errors).map(([name, error]) => `\n**${name} failed**: ${error}`),
    ""
  ].join("\n")
