import {
  type ClaimCheck,
  ClaimQueue,
  inRange,
  keyTime,
  OBJECT_PREFIX,
  ObjectStore,
  objectKeyTime,
  type TimeRange
} from "@telemetry/domain"
import { Duration, Effect, Fiber, Option, Ref, Schedule, Stream, SubscriptionRef } from "effect"
import * as ClaimProcessor from "../ClaimProcessor.js"
import * as StoredClaims from "../StoredClaims.js"

/** What a replay reports as it goes: a claim to replay was found, a claim was replayed. */
export interface Progress {
  readonly found: Effect.Effect<void>
  readonly replayed: Effect.Effect<void>
}

export interface ReplayOptions {
  /** Count what would be replayed, replay nothing. */
  readonly dryRun: boolean
  /**
   * Load the claims in this process, until they are done, rather than leave them to the workers: the in-process
   * queue has no other consumer.
   */
  readonly loadHere: boolean
  readonly progress: Progress
}

export interface Summary {
  /** Candidates in the range (claims, each once). */
  readonly candidates: number
  /** Candidates the ledger holds already (or revoked: their request was refused): not replayed. */
  readonly alreadyLoaded: number
  /** Candidates whose payload is no longer in storage (deleted, say, on purpose): not replayed, as none would load. */
  readonly payloadGone: number
  /** Claims re-published (or, loading here, handled); with a dry run, those that would be. */
  readonly replayed: number
  /** Of those handled here, the ones that were dead-lettered again. */
  readonly rejectedAgain: number
}

/** The claims of the dead letters kept in `range`, each once; letters that are not claim checks are counted aside. */
export const deadLetterClaims = (range: TimeRange, notClaims: Ref.Ref<number>) =>
  Stream.unwrap(Effect.gen(function*() {
    const queue = yield* ClaimQueue
    const seen = new Set<string>()
    return queue.deadLetters(range).pipe(
      Stream.tap((letter) => (letter.claim === null ? Ref.update(notClaims, (n) => n + 1) : Effect.void)),
      Stream.filterMap((letter) => (letter.claim === null ? Option.none() : Option.some(letter.claim))),
      Stream.filter((claim) => {
        const first = !seen.has(claim.claim_id)
        seen.add(claim.claim_id)
        return first
      })
    )
  }))

/**
 * The listing prefix that every key of a payload received in `range` starts with: key times are fixed-width and
 * sort as the times do, so the keys between two times share the start of those two times' keys.
 */
const prefixOf = (range: TimeRange) => {
  if (range.from === undefined || range.to === undefined) return OBJECT_PREFIX
  const [a, b] = [keyTime(range.from), keyTime(range.to)]
  let n = 0
  while (n < a.length && a[n] === b[n]) n++
  return OBJECT_PREFIX + a.slice(0, n)
}

/** The claims of the payloads stored with a key time in `range`. */
export const storedClaims = (range: TimeRange) =>
  StoredClaims.stored({
    prefix: prefixOf(range),
    keep: (object) => {
      const received = objectKeyTime(object.key)
      return received !== undefined && inRange(range, received)
    }
  })

/**
 * Replays `candidates` that the ledger does not hold (a loaded claim would be skipped anyway) and whose payload is
 * still stored (a claim without one would only be dead-lettered again): re-publishes them,
 * or, loading here, also runs a consumer with the worker's processor until each of them was handled.
 */
export const replay = <E, R>(candidates: Stream.Stream<ClaimCheck, E, R>, options: ReplayOptions) =>
  Effect.gen(function*() {
    const queue = yield* ClaimQueue
    const storage = yield* ObjectStore
    const counted = yield* Ref.make(0)
    const gone = yield* Ref.make(0)
    const claims = StoredClaims.unloaded(candidates.pipe(Stream.tap(() => Ref.update(counted, (n) => n + 1)))).pipe(
      Stream.filterEffect((claim) =>
        storage.head(claim.claim_check).pipe(
          Effect.as(true),
          Effect.catchTag("ObjectNotFound", () => Effect.as(Ref.update(gone, (n) => n + 1), false))
        )
      ),
      Stream.tap(() => options.progress.found)
    )
    const summary = (replayed: number, rejectedAgain = 0) =>
      Effect.map(Effect.all([Ref.get(counted), Ref.get(gone)]), ([candidates, payloadGone]): Summary => ({
        candidates,
        alreadyLoaded: candidates - payloadGone - replayed,
        payloadGone,
        replayed,
        rejectedAgain
      }))

    if (options.dryRun) {
      return yield* Effect.flatMap(Stream.runCount(Stream.tap(claims, () => options.progress.replayed)), summary)
    }
    if (!options.loadHere) {
      const published = yield* claims.pipe(
        Stream.mapEffect((claim) => Effect.zipRight(queue.publish(claim), options.progress.replayed)),
        Stream.runCount
      )
      return yield* summary(published)
    }

    const process = yield* ClaimProcessor.make
    const handled = yield* SubscriptionRef.make(0)
    const rejected = yield* Ref.make(0)
    const done = Effect.zipRight(SubscriptionRef.update(handled, (n) => n + 1), options.progress.replayed)
    const consumer = yield* Effect.fork(queue.consume((claim) =>
      process(claim).pipe(
        Effect.zipRight(done),
        Effect.tapErrorTag("ClaimRejected", () => Effect.zipRight(Ref.update(rejected, (n) => n + 1), done))
      )
    ))
    // The queue may be full while the consumer works through it: wait for room.
    const publish = (claim: ClaimCheck) =>
      queue.publish(claim).pipe(Effect.retry(Schedule.spaced(Duration.millis(200))))
    const allHandled = Effect.gen(function*() {
      const published = yield* Stream.runCount(Stream.mapEffect(claims, publish))
      yield* handled.changes.pipe(Stream.takeUntil((n) => n >= published), Stream.runDrain)
      return published
    })
    // The consumer only ever stops by failing (e.g. the database is down): that ends the replay too.
    const published = yield* Effect.raceFirst(allHandled, Fiber.join(consumer))
    yield* Fiber.interrupt(consumer)
    return yield* summary(published, yield* Ref.get(rejected))
  })
