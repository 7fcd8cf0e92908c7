import type { Result } from "./Sender.js"

/** What a run of `pnpm send` did, as `--json` prints it. */
export interface Summary {
  readonly files: number
  readonly accepted: number
  readonly replayed: number
  readonly refused: number
  readonly failed: number
  /** Payload bytes read, and bytes sent (gzip) by the last attempt of each. */
  readonly bytes: number
  readonly sentBytes: number
  /** Readings in the payloads accepted by this run (a replayed one was counted by the run that sent it first). */
  readonly readings: number
  readonly results: ReadonlyArray<Result>
}

const sum = (results: ReadonlyArray<Result>, of: (r: Result) => number) => results.reduce((n, r) => n + of(r), 0)

const counted = (results: ReadonlyArray<Result>, outcome: Result["outcome"]) => results.filter((r) => r.outcome === outcome).length

export const summarize = (results: ReadonlyArray<Result>): Summary => ({
  files: results.length,
  accepted: counted(results, "accepted"),
  replayed: counted(results, "replayed"),
  refused: counted(results, "refused"),
  failed: counted(results, "failed"),
  bytes: sum(results, (r) => r.bytes),
  sentBytes: sum(results, (r) => r.sentBytes),
  readings: sum(results, (r) => (r.outcome === "accepted" ? r.readings : 0)),
  results
})

/** The payloads that did not get in, which make the run fail. */
export const notAccepted = (summary: Summary) => summary.refused + summary.failed

/** One line of totals, then one line per payload that did not get in, naming it and why. */
export const render = (summary: Summary) =>
  [
    `${summary.files} file(s): ${summary.accepted} accepted, ${summary.replayed} replayed, ${summary.refused} refused, ` +
    `${summary.failed} failed; ${summary.readings} reading(s) accepted; ${summary.bytes} bytes read, ` +
    `${summary.sentBytes} sent`,
    ...summary.results.filter((r) => r.outcome === "refused" || r.outcome === "failed").map((r) =>
      `${r.outcome}  ${r.file}  ${r.status ?? "-"} ${r.error}: ${r.message} (${r.attempts} attempt(s))`
    )
  ].join("\n")
