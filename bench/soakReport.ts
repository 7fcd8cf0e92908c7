/** The soak's figures: what each minute recorded, the verdicts drawn from them, and their summary in markdown. */
import { Effect } from "effect"
import { readFile, writeFile } from "node:fs/promises"
import { renderSoakPlot } from "./plot.js"
import { root } from "./support.js"

export interface Minute {
  readonly minute: number
  /** Before every device has logged in once (cold logins), or the soak proper. */
  readonly phase: "warm-up" | "soak"
  readonly requests: number
  /** Sends answered with anything but 200/201, or not answered. */
  readonly failures: number
  /** The failures by answer ("network error": none within the integration's 25 s). */
  readonly failed: Readonly<Record<string, number>>
  /** Logins by answer (0: none within 25 s). */
  readonly logins: Readonly<Record<string, number>>
  readonly p50: number
  readonly p99: number
  /** Resident memory of each process, MiB. */
  readonly rss: Readonly<Record<string, number>>
  readonly lag: number
}

export interface SoakResult {
  readonly date: string
  readonly minutes: number
  /** Minutes until every device had logged in once, before the soak's `minutes`. */
  readonly warmupMinutes: number
  readonly devices: number
  readonly timeline: ReadonlyArray<Minute>
  readonly readingsSent: number
  readonly rowsStored: number
  readonly drainSeconds: number
  /** RSS at the end against after warm-up, per process (see `rssGrowthOf`): must stay within 10 %. */
  readonly rssGrowth: Readonly<Record<string, number>>
}

/** Minutes at each end of the soak whose RSS is taken: one sample is a point of a GC's sawtooth, three its level. */
const RSS_MINUTES = 3

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

/** Per process, the median RSS (MiB) of the soak's first RSS_MINUTES minutes after warm-up and of its last ones. */
const rssLevels = (timeline: ReadonlyArray<Minute>) => {
  const soaked = timeline.filter((m) => m.phase === "soak")
  const level = (minutes: ReadonlyArray<Minute>, name: string) => median(minutes.map((m) => m.rss[name]!))
  return Object.keys(soaked[0]?.rss ?? {}).map((name) => ({
    name,
    first: level(soaked.slice(0, RSS_MINUTES), name),
    last: level(soaked.slice(-RSS_MINUTES), name)
  }))
}

/** Per process, how much its RSS grew over the soak (last level ÷ first level − 1). */
export const rssGrowthOf = (timeline: ReadonlyArray<Minute>): Record<string, number> =>
  Object.fromEntries(rssLevels(timeline).map(({ first, last, name }) => [name, last / first - 1]))

export const summary = (r: SoakResult) => {
  const soaked = r.timeline.filter((m) => m.phase === "soak" && m.requests > 0)
  const warmup = r.timeline.filter((m) => m.phase === "warm-up")
  const sum = (ms: ReadonlyArray<Minute>, f: (m: Minute) => number) => ms.reduce((n, m) => n + f(m), 0)
  const worst = (f: (m: Minute) => number) => Math.max(...soaked.map(f)).toFixed(0)
  const refusedLogins = (ms: ReadonlyArray<Minute>) => sum(ms, (m) => m.logins["503"] ?? 0)
  return [
    `### Soak: ${r.devices} Home Assistant devices, ${r.minutes} min after a ${r.warmupMinutes}-minute warm-up, ingest + 2 workers`,
    "",
    `| measure | figure | target |`,
    `|---|---:|---|`,
    `| warm-up: every device logged in once | ${r.warmupMinutes} min (${refusedLogins(warmup)} logins answered 503 meanwhile) | |`,
    `| sends answered in the soak | ${sum(soaked, (m) => m.requests)} (${sum(soaked, (m) => m.failures)} not 200) | |`,
    `| ingest latency in the soak, worst minute's p50 / p99 | ${worst((m) => m.p50)} / ${worst((m) => m.p99)} ms | |`,
    ...rssLevels(r.timeline).map(({ first, last, name }) =>
      `| RSS of ${name}: median of the last ${RSS_MINUTES} minutes vs. the first ${RSS_MINUTES} after warm-up | ` +
      `${first} → ${last} MiB (${((last / first - 1) * 100).toFixed(1)} %) | within 10 % |`
    ),
    `| lag drained after the last send | ${r.drainSeconds.toFixed(0)} s | returns to 0 |`,
    `| readings sent / rows stored | ${r.readingsSent} / ${r.rowsStored} | equal (each exactly once) |`,
    ""
  ].join("\n")
}

const resultPath = `${root}bench/soak.json`

/** Writes the result, its plot (docs/soak.png), and answers its summary. */
export const publish = (result: SoakResult) =>
  Effect.gen(function*() {
    yield* Effect.promise(() => writeFile(resultPath, `${JSON.stringify(result, null, 2)}\n`))
    yield* renderSoakPlot(result, `${root}docs/soak.png`)
    return summary(result)
  })

/** `pnpm bench --soak-report`: the last soak's verdicts, plot and summary drawn again from bench/soak.json. */
export const republish = Effect.flatMap(
  Effect.promise(() => readFile(resultPath, "utf8")),
  (text) => {
    const result = JSON.parse(text) as SoakResult
    return publish({ ...result, rssGrowth: rssGrowthOf(result.timeline) })
  }
)
