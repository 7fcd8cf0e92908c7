import { expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { describeTally } from "./support/faults/audit.js"
import { type Bed, makeBed } from "./support/faults/bed.js"
import { answer, latch, type Outcome } from "./support/faults/requests.js"
import { campaign, runRound } from "./support/faults/rounds.js"
import { MiB, shipment, type ShipmentSpec } from "./support/faults/shipments.js"
import { CLAIMS_TOPIC, DLQ_TOPIC } from "./support/faults/topics.js"
import { standIns } from "./support/standIns.js"

class FaultBed extends Context.Tag("FaultBed")<FaultBed, Bed>() {}

// One bed for the whole file: the scenarios run in turn on the same processes, restarting only what they kill,
// and each audit holds every request sent so far — earlier scenarios' included — against the outcome.
const bed = Layer.scoped(FaultBed, makeBed).pipe(Layer.provide(standIns({ [CLAIMS_TOPIC]: 3, [DLQ_TOPIC]: 1 })))

const SEED = Number(process.env["FAULT_SEED"] ?? 20261129)
const ROUNDS = Number(process.env["FAULT_ROUNDS"] ?? 50)

const promise = <A>(run: () => Promise<A>) => Effect.promise(run)
/** What `p` resolved to, if it has by now. */
const settled = <A>(p: Promise<A>) => Promise.race([p, new Promise<undefined>((resolve) => setImmediate(() => resolve(undefined)))])

/** The exact-count check every scenario ends with: each request against the database, the bucket and the topics. */
const exact = (label: string) =>
  Effect.gen(function*() {
    const { audit } = yield* FaultBed
    const tally = yield* promise(() => audit(label))
    console.log(describeTally(tally))
    // The problems in the message too: fast-check reports an assertion by its message alone.
    expect(tally.problems, tally.problems.join("\n")).toEqual([])
    expect(tally.rows, describeTally(tally)).toBe(tally.expectedRows)
    expect(tally.distinctRows, describeTally(tally)).toBe(tally.rows)
    return tally
  })

/** Some small payloads, each of its own equipments. */
const small = (tag: string, n: number, readingsPerItem = 300): Array<ShipmentSpec> =>
  Array.from({ length: n }, (_, i) => ({
    prefix: `${tag}${i}`,
    device: `device-${i % 3}`,
    items: 2,
    readingsPerItem,
    encoding: i % 2 === 0 ? "gzip" : "plain"
  }))

/** Loads of 60 000 readings (3 COPY chunks), long enough to be caught in the middle. */
const heavy = (prefix: string): ShipmentSpec => ({
  prefix,
  device: "device-heavy",
  items: 10,
  readingsPerItem: 6000,
  encoding: "gzip"
})

/** More than two 5 MiB parts as stored, so ingest uploads it in parts; the readings are few. */
const multipart = (prefix: string): ShipmentSpec => ({
  prefix,
  device: "device-big",
  items: 2,
  readingsPerItem: 200,
  encoding: "gzip-stored",
  padding: 13 * MiB
})

const UPLOAD_STARTED = /^POST \/telemetry-raw\/\.pending\/[^?]+\?uploads/

/** Waits until ingest started the multipart upload of a held body (s3rver got its CreateMultipartUpload). */
const uploadStarted = (since: number, answered: Promise<Outcome>) =>
  Effect.gen(function*() {
    const { logs, s3, s3Request } = yield* FaultBed
    const started = yield* promise(() => s3Request(UPLOAD_STARTED, since, 60_000, answered))
    if (started === undefined) {
      const outcome = yield* promise(() => settled(answered))
      expect.fail(
        `ingest started no multipart upload; the held request: ${outcome ? answer(outcome) : "no answer yet"}; ` +
          `S3 requests since: ${s3.requests().slice(since).join("; ")}\n${logs()}`
      )
    }
  })

layer(bed, { timeout: 180_000, excludeTestServices: true })("fault injection: ingest and two workers as OS processes", (it) => {
  it.effect("a. Kafka broker down and back: requests meanwhile get 503 and leave nothing; all accepted load once", () =>
    Effect.gen(function*() {
      const { kafka, post } = yield* FaultBed
      const send = (label: string, specs: Array<ShipmentSpec>) =>
        promise(() => Promise.all(specs.map((spec) => post(label, shipment(spec)))))

      const before = yield* send("a: before", small("ka", 4))
      expect(before.map(answer)).toEqual(["202", "202", "202", "202"])

      yield* kafka.brokerDown(1)
      const [during, next] = yield* Effect.zip(
        send("a: broker down", small("kb", 4)),
        // Once a claim was not published, the next upload is refused before it is read, until the broker answers.
        send("a: broker down, after a refusal", small("kbnext", 1))
      ).pipe(Effect.ensuring(Effect.orDie(kafka.brokerUp(1))))
      // With the only broker down no claim can be acknowledged: every request is refused.
      expect(during.map(answer)).toEqual(Array(4).fill("503 queue_unavailable"))
      expect(next.map((o) => o._tag === "Refused" && o.message)).toEqual([
        expect.stringMatching(/^the claim queue has failed since \S+ \(.+\), retry later$/)
      ])

      // The producer reconnects with backoff: the first requests after the outage may still be refused.
      const after: Array<string> = []
      for (let i = 0; after.filter((a) => a === "202").length < 3; i++) {
        expect(i, `answers after the broker came back: ${after.join(", ")}`).toBeLessThan(80)
        const [o] = yield* send("a: after", small(`kc${i}x`, 1))
        after.push(answer(o!))
        if (o!._tag !== "Accepted") yield* Effect.sleep("500 millis")
      }
      expect(after.every((a) => a === "202" || a === "503 queue_unavailable"), after.join(", ")).toBe(true)
      yield* exact("a. Kafka broker down and back")
    }), 240_000)

  it.effect("b. storage down during an upload: 503, no claim, no object; down during a fetch: loaded once after", () =>
    Effect.gen(function*() {
      const { linesAbout, loaded, post, s3, s3Request } = yield* FaultBed

      // An upload in parts: storage goes down once ingest started it, with the body still arriving.
      const big = shipment(multipart("bup"))
      const bigHeld = latch()
      const since = s3.requests().length
      // Requests in flight are plain promises: they run while the test strikes.
      const bigAnswer = post("b: storage down mid-upload (parts)", big, { at: 12 * MiB, release: bigHeld.release })
      yield* uploadStarted(since, bigAnswer)
      yield* promise(s3.down)
      bigHeld.open()
      const bigOutcome = yield* promise(() => bigAnswer).pipe(Effect.ensuring(promise(s3.up)))
      expect(answer(bigOutcome)).toBe("503 storage_unavailable")

      // A body sent in one PUT once complete: storage goes down before its last bytes arrive.
      const one = shipment({ ...small("bput", 1, 400)[0]!, device: "device-1" })
      const oneHeld = latch()
      const oneAnswer = post("b: storage down mid-upload (one PUT)", one, { at: one.body.length - 16, release: oneHeld.release })
      yield* Effect.sleep("200 millis")
      yield* promise(s3.down)
      oneHeld.open()
      const oneOutcome = yield* promise(() => oneAnswer).pipe(Effect.ensuring(promise(s3.up)))
      expect(answer(oneOutcome)).toBe("503 storage_unavailable")

      // A fetch in progress: 60 MB, mostly blanks, take s3rver a while to send; storage goes down as soon as
      // the worker asked for the object.
      const fetched = shipment({ prefix: "bget", device: "device-2", items: 4, readingsPerItem: 500, encoding: "gzip-stored", padding: 20 * MiB })
      const fetchedOutcome = yield* promise(() => post("b: storage down mid-fetch", fetched))
      expect(answer(fetchedOutcome)).toBe("202")
      const { claimId, key } = fetchedOutcome as Extract<Outcome, { _tag: "Accepted" }>
      const { get, loadedWhileDown } = yield* Effect.gen(function*() {
        const get = yield* promise(() => s3Request(new RegExp(`^GET /telemetry-raw/${key}`), since, 60_000))
        yield* promise(s3.down)
        yield* Effect.sleep("3 seconds")
        return { get, loadedWhileDown: yield* promise(() => loaded(claimId)) }
      }).pipe(Effect.ensuring(promise(s3.up)))
      console.log(`b: what the workers printed of claim ${claimId}:\n${linesAbout(claimId)}`)
      yield* exact("b. storage down during upload and fetch")
      // Checked last, so that the audit above still tells what happened to it.
      expect(get, "the worker fetched the object").toBeDefined()
      expect(loadedWhileDown, "the claim loaded with storage down: its fetch was complete before storage went down").toBe(false)
    }), 300_000)

  it.effect("c. pg_terminate_backend of a worker's backend inside COPY: the load is retried and loaded once", () =>
    Effect.gen(function*() {
      const { loaded, loadInProgress, post, terminate } = yield* FaultBed
      let struck: { pid: number; name: string; state: string; query: string } | undefined
      // A COPY chunk lasts tens of milliseconds: look closely, and send another load if one was missed.
      for (let attempt = 0; struck === undefined && attempt < 4; attempt++) {
        const answered = post("c: terminated mid-COPY", shipment(heavy(`cterm${attempt}`)))
        const done = async () => {
          const o = await settled(answered)
          return o?._tag === "Accepted" && (await loaded(o.claimId))
        }
        const found = yield* promise(() => loadInProgress(60_000, true, done))
        if (found !== undefined) {
          expect(yield* promise(() => terminate(found.pid))).toBe(true)
          struck = found
        }
        expect(answer(yield* promise(() => answered))).toBe("202")
      }
      expect(struck, "a worker's backend caught inside COPY").toBeDefined()
      console.log(`c: terminated ${struck!.name}'s backend ${struck!.pid} (${struck!.state}: ${struck!.query})`)
      yield* exact("c. pg_terminate_backend mid-COPY")
    }), 240_000)

  it.effect("d. a worker SIGKILLed in the middle of a load: the claim is loaded once, by another or the restarted one", () =>
    Effect.gen(function*() {
      const { killWorker, loadInProgress, post, startWorker } = yield* FaultBed
      const answered = Promise.all(["dkill0", "dkill1"].map((p) => post("d: worker killed", shipment(heavy(p)))))
      const load = yield* promise(() => loadInProgress(60_000))
      expect(load, "a worker in the middle of a load").toBeDefined()
      yield* promise(() => killWorker(load!.name))
      console.log(`d: SIGKILLed ${load!.name} while its backend ${load!.pid} was in a load (${load!.state}: ${load!.query})`)
      startWorker(load!.name)
      expect((yield* promise(() => answered)).map(answer)).toEqual(["202", "202"])
      yield* exact("d. worker SIGKILLed mid-load")
    }), 240_000)

  it.effect("e. ingest SIGKILLed mid-upload: no claim, no object, no rows; the restarted ingest accepts again", () =>
    Effect.gen(function*() {
      const { killIngest, post, s3, startIngest } = yield* FaultBed
      const since = s3.requests().length
      const held = latch()
      const big = shipment(multipart("ekill"))
      const bigAnswer = post("e: ingest killed mid-upload (parts)", big, { at: 12 * MiB, release: held.release })
      const smallOne = shipment(small("ekillsmall", 1)[0]!)
      const smallAnswer = post("e: ingest killed mid-upload (one PUT)", smallOne, {
        at: Math.floor(smallOne.body.length / 2),
        release: held.release
      })
      yield* uploadStarted(since, bigAnswer)
      yield* promise(killIngest)
      held.open()
      expect((yield* promise(() => Promise.all([bigAnswer, smallAnswer]))).map(answer)).toEqual(["lost", "lost"])
      const staged = s3.requests().slice(since).filter((r) => r.includes("/.pending/"))
      console.log(`e: the killed upload left ${staged.length} requests on .pending/ (${staged.slice(0, 3).join("; ")})`)

      yield* promise(startIngest)
      const again = yield* promise(() => post("e: after the restart", shipment(small("eafter", 1)[0]!)))
      expect(answer(again)).toBe("202")
      yield* exact("e. ingest SIGKILLed mid-upload")
    }), 240_000)

  // One run of the property: the rounds strike one bed in turn and each audit holds everything sent before, so a
  // round cannot be replayed or shrunk on its own; the seed replays the whole campaign.
  it.effect.prop(
    `f. randomized: ${ROUNDS} rounds of payloads and faults (FAULT_ROUNDS), seed ${SEED} (FAULT_SEED), exact after each`,
    [campaign(ROUNDS)],
    ([{ faults, plans }]) =>
      Effect.gen(function*() {
        const b = yield* FaultBed
        console.log(`f: seed ${SEED}, ${ROUNDS} rounds: ${faults.join(", ")}`)
        for (let round = 1; round <= ROUNDS; round++) {
          const started = Date.now()
          const { outcomes, plan, struck } = yield* runRound(b, round, faults[round - 1]!, plans[round - 1]!)
          const answered = Date.now()
          console.log(`${plan}\n  -> ${struck}; answers: ${outcomes.map(answer).join(", ")}`)
          expect(b.alive(), `processes running after round ${round}\n${b.logs()}`).toEqual(["ingest", ...b.workers])
          const tally = yield* exact(`f. round ${round} (seed ${SEED})`)
          console.log(`  round ${round} took ${Date.now() - started} ms (answered after ${answered - started} ms); ${tally.rows} rows in all`)
        }
        // Nothing arrives late: no claim of a refused or cut request loads after the last audit.
        yield* Effect.sleep("3 seconds")
        yield* exact(`f. ${ROUNDS} rounds, 3 seconds later (seed ${SEED})`)
      }),
    { timeout: 900_000, fastCheck: { seed: SEED, numRuns: 1, endOnFailure: true } }
  )
})
