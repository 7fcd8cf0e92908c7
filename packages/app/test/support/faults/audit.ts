import type { ObjectStoreShape, StoredObject } from "@telemetry/domain"
import { Effect, Stream } from "effect"
import { isAccepted, isUnknown, mayBeQueued, type Outcome } from "./requests.js"
import type { Shipment } from "./shipments.js"
import { CLAIMS_TOPIC, DLQ_TOPIC, type Topics } from "./topics.js"

/** A request sent to the bed, with what its client learned. */
export interface Entry {
  readonly shipment: Shipment
  readonly outcome: Outcome
  /** Which scenario or round sent it. */
  readonly label: string
}

/** What the audit found: the figures, and each broken expectation in words. */
export interface Tally {
  readonly label: string
  readonly requests: number
  readonly accepted: number
  readonly refused: number
  /** No answer; of those, `unknown` had sent their whole body. */
  readonly lost: number
  readonly unknown: number
  /** Readings the 202 answers announced, plus those of unknown requests found loaded (all or nothing each). */
  readonly expectedRows: number
  readonly rows: number
  readonly distinctRows: number
  readonly ledger: number
  /** Requests refused with 503 whose claim reached the topic all the same (Kafka acknowledged too late). */
  readonly refusedOnTopic: number
  readonly problems: ReadonlyArray<string>
  /** Dead letters, as `source reason`. */
  readonly deadLetters: ReadonlyArray<string>
}

/** Prints a tally as one line, for the run's log. */
export const describeTally = (t: Tally) =>
  `${t.label}: ${t.requests} requests (${t.accepted} accepted, ${t.refused} refused, ${t.lost} lost of which ${t.unknown} after the whole body), ` +
  `${t.rows} rows (${t.distinctRows} distinct, ${t.expectedRows} expected), ${t.ledger} ledger rows, ` +
  `${t.refusedOnTopic} claims of refused requests on the topic, ${t.deadLetters.length} dead letters` +
  (t.deadLetters.length > 0 ? ` (${t.deadLetters.join("; ")})` : "") +
  (t.problems.length > 0 ? `, ${t.problems.length} problems` : "")

export interface AuditSources {
  /** Every request sent so far. */
  readonly entries: ReadonlyArray<Entry>
  readonly query: <R>(text: string, values?: ReadonlyArray<unknown>) => Promise<Array<R>>
  readonly store: ObjectStoreShape
  readonly topics: Topics
  /** Polls `check` until it holds; rejects after `timeoutMs` with `what`. */
  readonly eventually: (check: () => Promise<boolean>, timeoutMs: number, what: string) => Promise<void>
  readonly logs: () => string
}

/**
 * Waits for every 202 claim to be loaded, then holds every request sent so far against the database, the bucket
 * and the topics: 202 → its readings once, its object, its claim on the topic; refused or cut before the whole
 * body was sent → nothing anywhere; no answer after the whole body → all or nothing.
 */
export const makeAudit = ({ entries, eventually, logs, query, store, topics }: AuditSources) => async (label: string): Promise<Tally> => {
  const accepted = entries.flatMap((e) => (isAccepted(e.outcome) ? [{ ...e, outcome: e.outcome }] : []))
  const problems: Array<string> = []
  await eventually(async () => {
    // An accepted claim set aside will never load: say so now rather than time out.
    const dead = new Set(topics.records().filter((r) => r.topic === DLQ_TOPIC).map((r) => r.claimId))
    const lostClaim = accepted.find((e) => dead.has(e.outcome.claimId))
    if (lostClaim) throw new Error(`accepted claim ${lostClaim.outcome.claimId} was dead-lettered\n${logs()}`)
    const loaded = new Set((await query<{ id: string }>("SELECT claim_id::text AS id FROM claim_ledger")).map((r) => r.id))
    return accepted.every((e) => loaded.has(e.outcome.claimId))
  }, 180_000, `${label}: all ${accepted.length} accepted claims loaded`).catch((e: Error) => {
    problems.push(e.message)
  })

  const [totals] = await query<{ n: number; d: number }>(
    "SELECT count(*)::int AS n, count(DISTINCT (time, sensor_id))::int AS d FROM telemetry_data"
  )
  const byPrefix = new Map(
    (await query<{ prefix: string; n: number }>(
      `SELECT split_part(e.uuid, '-', 1) AS prefix, count(*)::int AS n
       FROM telemetry_data t JOIN equipments e ON e.id = t.equipment_id GROUP BY 1`
    )).map((r) => [r.prefix, r.n])
  )
  const ledger = await query<{ id: string; request: string; readings: number | null }>(
    "SELECT claim_id::text AS id, request_id AS request, readings FROM claim_ledger"
  )
  const ledgerById = new Map(ledger.map((r) => [r.id, r]))
  const byRequest = new Map(entries.map((e) => [e.shipment.requestId, e]))

  let expectedRows = 0
  const prefixes = new Set<string>()
  for (const e of entries) {
    const { outcome, shipment: s } = e
    const rows = byPrefix.get(s.prefix) ?? 0
    prefixes.add(s.prefix)
    const what = `${e.label} ${s.prefix} (request ${s.requestId}, ${s.readings} readings)`
    if (isAccepted(outcome)) {
      expectedRows += outcome.readings
      if (outcome.readings !== s.readings) problems.push(`${what}: the 202 announced ${outcome.readings} readings`)
      if (rows !== outcome.readings) problems.push(`${what}: accepted, ${rows} rows in the database`)
      const loaded = ledgerById.get(outcome.claimId)
      if (loaded === undefined) problems.push(`${what}: accepted claim ${outcome.claimId} not in the ledger`)
      else if (loaded.readings !== outcome.readings) problems.push(`${what}: the ledger counts ${loaded.readings} readings`)
    } else if (isUnknown(outcome)) {
      if (rows !== 0 && rows !== s.readings) problems.push(`${what}: no answer, ${rows} rows (all or nothing expected)`)
      expectedRows += rows
    } else if (rows !== 0) {
      problems.push(`${what}: ${outcome._tag === "Refused" ? `answered ${outcome.status} ${outcome.error}` : `cut before its body was sent (${outcome.message})`}, yet ${rows} rows`)
    }
  }
  for (const [prefix, n] of byPrefix) {
    if (!prefixes.has(prefix)) problems.push(`${n} rows of equipments "${prefix}-*", which no request sent`)
  }
  for (const row of ledger) {
    const e = byRequest.get(row.request)
    const ok = e !== undefined && (isAccepted(e.outcome) ? e.outcome.claimId === row.id : isUnknown(e.outcome))
    if (!ok) {
      problems.push(`ledger row of claim ${row.id} (request ${row.request}) belongs to no accepted request${e ? ` (${e.label}: ${JSON.stringify(e.outcome)})` : ""}`)
    }
  }

  // The bucket: the object of every 202, and no object of a request refused or cut short.
  const listing = () =>
    Effect.runPromise(store.list("telemetry/").pipe(Stream.runCollect, Effect.map((c) => [...c])))
  const strays = (objects: ReadonlyArray<StoredObject>) =>
    objects.flatMap((o) => {
      const e = byRequest.get(o.metadata["request-id"] ?? "")
      const ok = e !== undefined && (isAccepted(e.outcome) ? e.outcome.key === o.key : isUnknown(e.outcome))
      return ok ? [] : [{ object: o, entry: e }]
    })
  let objects = await listing().catch((e: unknown) => {
    problems.push(`listing the bucket failed: ${String(e)}`)
    return []
  })
  // Storage may have kept the object of a request it failed as the object was committed: its claim is revoked at
  // once (nothing may load it), and ingest deletes the object once storage answers again.
  const revoked = new Set((await query<{ id: string }>("SELECT claim_id::text AS id FROM revoked_claims")).map((r) => r.id))
  for (const { object } of strays(objects)) {
    const claimId = /([0-9a-f-]{36})\.json\.gz$/.exec(object.key)?.[1]
    if (claimId === undefined || !revoked.has(claimId)) problems.push(`object ${object.key} of no accepted request, and its claim is not revoked`)
  }
  if (strays(objects).length > 0) {
    await eventually(async () => strays(objects = await listing()).length === 0, 60_000, "").catch(() => {})
  }
  const keys = new Set(objects.map((o) => o.key))
  for (const e of accepted) {
    if (!keys.has(e.outcome.key)) problems.push(`${e.label} ${e.shipment.prefix}: accepted, but no object ${e.outcome.key}`)
  }
  for (const { entry: e, object: o } of strays(objects)) {
    problems.push(`object ${o.key} (request ${o.metadata["request-id"]}) belongs to no accepted request${e ? ` (${e.label}: ${JSON.stringify(e.outcome)})` : ""}`)
  }
  // The topics: a claim for every 202; none for a request that was refused before queueing or cut short.
  await eventually(topics.caughtUp, 60_000, "the audit consumer to read both topics to their end").catch((e: Error) =>
    problems.push(e.message)
  )
  const records = topics.records()
  const onTopic = new Set(records.filter((r) => r.topic === CLAIMS_TOPIC).map((r) => r.requestId))
  let refusedOnTopic = 0
  for (const e of entries) {
    const queued = onTopic.has(e.shipment.requestId)
    if (queued && e.outcome._tag === "Refused") refusedOnTopic++
    if (isAccepted(e.outcome) && !queued) problems.push(`${e.label} ${e.shipment.prefix}: accepted, but no claim on ${CLAIMS_TOPIC}`)
    if (!mayBeQueued(e.outcome) && queued) {
      problems.push(`${e.label} ${e.shipment.prefix}: ${JSON.stringify(e.outcome)}, yet its claim is on ${CLAIMS_TOPIC}`)
    }
  }
  for (const r of records) {
    if (r.topic === CLAIMS_TOPIC && !byRequest.has(r.requestId ?? "")) problems.push(`${r.source}: a claim of no request of ours (${r.requestId})`)
  }
  const deadLetters = records.filter((r) => r.topic === DLQ_TOPIC).map((r) => `${r.source} ${r.reason} request ${r.requestId}`)
  const acceptedClaims = new Set(accepted.map((e) => e.outcome.claimId))
  for (const r of records) {
    if (r.topic === DLQ_TOPIC && acceptedClaims.has(r.claimId ?? "")) problems.push(`accepted claim ${r.claimId} dead-lettered (${r.reason})`)
  }

  return {
    label,
    requests: entries.length,
    accepted: accepted.length,
    refused: entries.filter((e) => e.outcome._tag === "Refused").length,
    lost: entries.filter((e) => e.outcome._tag === "Lost").length,
    unknown: entries.filter((e) => isUnknown(e.outcome)).length,
    expectedRows,
    rows: totals!.n,
    distinctRows: totals!.d,
    ledger: ledger.length,
    refusedOnTopic,
    problems,
    deadLetters
  }
}
