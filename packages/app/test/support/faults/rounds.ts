import { Effect, FastCheck as fc, Fiber } from "effect"
import type { Bed } from "./bed.js"
import { isAccepted, latch, type Outcome } from "./requests.js"
import { shipment, type ShipmentSpec } from "./shipments.js"

const FAULTS = [
  "none",
  "kafka-down",
  "storage-down-upload",
  "storage-down-fetch",
  "db-terminate",
  "worker-kill",
  "ingest-kill"
] as const
export type Fault = typeof FAULTS[number]

/** What a round sends, and when and how its fault strikes. */
export interface RoundPlan {
  readonly shipments: ReadonlyArray<Omit<ShipmentSpec, "prefix"> & { readonly delay: number }>
  readonly faultAt: number
  /** How long Kafka or storage stays down. */
  readonly outage: number
  /** How long a killed process stays down. */
  readonly downtime: number
  /** Of the held body, the part sent before the fault. */
  readonly heldFraction: number
  readonly victim: number
}

// Without fast-check's bias towards the bounds of each range, which would make most rounds alike.
const roundPlan: fc.Arbitrary<RoundPlan> = fc.noBias(fc.record({
  shipments: fc.array(
    fc.record({
      device: fc.nat(3).map((i) => `device-${i}`),
      items: fc.integer({ min: 1, max: 3 }),
      readingsPerItem: fc.integer({ min: 50, max: 2500 }),
      encoding: fc.constantFrom("plain", "gzip", "gzip-stored"),
      /** When it is posted, in ms after the round starts. */
      delay: fc.integer({ min: 0, max: 600 })
    }),
    { minLength: 2, maxLength: 4 }
  ),
  faultAt: fc.integer({ min: 0, max: 800 }),
  // A third of the outages outlast the pipeline's patience (2 s for Kafka's acknowledgement, ~1.5 s of S3
  // retries: see bed.ts), so refusals occur too.
  outage: fc.oneof(
    { weight: 1, arbitrary: fc.integer({ min: 2_500, max: 3_500 }) },
    { weight: 2, arbitrary: fc.integer({ min: 200, max: 1_500 }) }
  ),
  // There is no patience to outlast: a process's work waits for it, or moves to another, however long it is down.
  downtime: fc.integer({ min: 200, max: 1_500 }),
  heldFraction: fc.integer({ min: 10, max: 90 }).map((percent) => percent / 100),
  victim: fc.nat(1)
}))

/**
 * How often each fault comes up, relative to the others. A worker's SIGKILL costs its round some 15-40 s of waiting
 * on the mock cluster's group coordinator — the killed member's session timeout, then often a second one for the
 * restarted member, whose first SyncGroup the mock refuses (DEVELOPERS.md) — the other faults a few seconds.
 */
const WEIGHTS: Record<Fault, number> = {
  none: 1,
  "kafka-down": 2,
  "storage-down-upload": 2,
  "storage-down-fetch": 2,
  "db-terminate": 2,
  "worker-kill": 1,
  "ingest-kill": 2
}
const CYCLE = FAULTS.flatMap((fault) => Array.from({ length: WEIGHTS[fault] }, () => fault))

export interface Campaign {
  /** Each round's fault: every kind as evenly as its weight allows, in a random order. */
  readonly faults: ReadonlyArray<Fault>
  readonly plans: ReadonlyArray<RoundPlan>
}

/** `rounds` rounds, all drawn before the first starts, so that the seed alone fixes the plan. */
export const campaign = (rounds: number): fc.Arbitrary<Campaign> =>
  fc.record({
    faults: fc.shuffledSubarray(Array.from({ length: rounds }, (_, i) => CYCLE[i % CYCLE.length]!), {
      minLength: rounds,
      maxLength: rounds
    }),
    plans: fc.array(roundPlan, { minLength: rounds, maxLength: rounds })
  }).map((c) => Object.assign(c, { [fc.toStringMethod]: () => `faults ${c.faults.join(", ")}` }))

/**
 * One round: its payloads from a few devices, posted at their moments, and `fault` at its moment. Only the
 * interleaving with the processes varies from run to run. Returns the plan in words, what the fault hit and the
 * answers.
 */
export const runRound = (bed: Bed, round: number, fault: Fault, plan: RoundPlan) =>
  Effect.gen(function*() {
    const label = `round ${round}`
    const specs = plan.shipments.map(({ delay: _, ...spec }, i): ShipmentSpec => ({ ...spec, prefix: `r${round}s${i}` }))
    const lasting = fault === "worker-kill" || fault === "ingest-kill" ? plan.downtime : plan.outage
    const described = `${label}: ${fault} at ${plan.faultAt} ms for ${lasting} ms; ` +
      specs.map((s, i) => `${s.prefix} ${s.items}x${s.readingsPerItem} ${s.encoding} ${s.device} +${plan.shipments[i]!.delay}ms`).join(", ")
    const shipments = specs.map(shipment)

    // A fault that strikes an upload needs one in flight: the first body stops part-way until the fault struck.
    const holding = fault === "storage-down-upload" || fault === "ingest-kill"
    const held = latch()
    const since = bed.s3.requests().length
    const outcomes: Array<Outcome> = []
    const posts = yield* Effect.forEach(shipments, (s, i) =>
      (holding && i === 0
        ? Effect.promise(() => bed.post(label, s, { at: Math.floor(s.body.length * plan.heldFraction), release: held.release }))
        : Effect.zipRight(Effect.sleep(plan.shipments[i]!.delay), Effect.promise(() => bed.post(label, s)))).pipe(
          Effect.tap((o) => outcomes.push(o))
        ), { concurrency: "unbounded" }).pipe(Effect.fork)
    /** Every request answered and every accepted one loaded: no load of this round is left to strike. */
    const settled = async () => {
      if (outcomes.length < shipments.length) return false
      for (const o of outcomes) if (isAccepted(o) && !(await bed.loaded(o.claimId))) return false
      return true
    }
    const promise = <A>(run: () => Promise<A>) => Effect.promise(run)
    /** `down`, and `up` once the fault's time is over (whatever happened meanwhile). */
    const outage = (down: Effect.Effect<unknown, unknown>, up: Effect.Effect<unknown, unknown>) =>
      Effect.zipRight(Effect.orDie(down), Effect.sleep(lasting)).pipe(Effect.ensuring(Effect.orDie(up)))

    const strike: Effect.Effect<string> = Effect.gen(function*() {
      // The held body's first part is sent at once; the fault comes after it.
      yield* Effect.sleep(plan.faultAt + (holding ? 100 : 0))
      switch (fault) {
        case "none":
          return "nothing"
        case "kafka-down":
          yield* outage(bed.kafka.brokerDown(1), bed.kafka.brokerUp(1))
          return "broker 1 down and up"
        case "storage-down-upload":
          yield* outage(Effect.zipRight(promise(bed.s3.down), Effect.sync(held.open)), promise(bed.s3.up))
          return "storage down while a body streamed"
        case "storage-down-fetch": {
          const get = yield* promise(() => bed.s3Request(/^GET \/telemetry-raw\/telemetry\//, since, 5_000))
          yield* outage(promise(bed.s3.down), promise(bed.s3.up))
          return get ? `storage down after ${get}` : "storage down (no fetch seen)"
        }
        case "db-terminate": {
          const load = yield* promise(() => bed.loadInProgress(2_000, false, settled))
          const targets = load ? [load] : yield* promise(bed.workerBackends)
          const ended = yield* Effect.forEach(targets, (b) => promise(() => bed.terminate(b.pid)))
          return load
            ? `terminated ${load.name}'s backend ${load.pid} in a load (${load.state}: ${load.query}): ${ended[0]}`
            : `no load seen; terminated ${ended.filter(Boolean).length} idle worker backends`
        }
        case "worker-kill": {
          const load = yield* promise(() => bed.loadInProgress(2_000, false, settled))
          const name = load?.name ?? bed.workers[plan.victim]!
          yield* outage(promise(() => bed.killWorker(name)), Effect.sync(() => bed.startWorker(name)))
          return load ? `SIGKILLed ${name} in a load (${load.query})` : `SIGKILLed ${name} (no load seen)`
        }
        case "ingest-kill":
          yield* outage(Effect.zipRight(promise(bed.killIngest), Effect.sync(held.open)), promise(bed.startIngest))
          return "SIGKILLed ingest while a body streamed"
      }
    })

    const struck = yield* strike.pipe(Effect.ensuring(Effect.sync(held.open)))
    return { plan: described, struck, outcomes: yield* Fiber.join(posts) }
  })
