import { Clock, Config, Data, Duration, Effect, Option, Ref } from "effect"

/**
 * How long an upload waits for the database — its idempotency records, its device account's zone — before it goes
 * on without the records, or answers 503 for want of the zone: a database that hangs, rather than refusing
 * connections, would otherwise hold every upload past its client's timeout.
 */
const DatabaseTimeout = Config.duration("INGEST_DATABASE_TIMEOUT").pipe(Config.withDefault(Duration.seconds(5)))

/**
 * A database call given up on: it went unanswered (`asked`), or it was not made at all because a call shortly
 * before went unanswered — that one's failure already told of the hang.
 */
export class DatabaseUnanswered extends Data.TaggedError("DatabaseUnanswered")<{
  readonly message: string
  readonly asked: boolean
}> {}

/**
 * Bounds the upload's database calls by INGEST_DATABASE_TIMEOUT. A call not answered in time is left to finish in
 * the background: waiting for a connection cannot be interrupted, and held uploads twice the timeout. After one,
 * no call is made for twice the timeout, each failing at once: with the database hanging, each upload waited out
 * the timeout at each of its steps (about 20 s in all, most of the Home Assistant client's 25 s). One for the
 * process, so that a timeout of one step (the idempotency records) spares the others (an account's zone) too.
 */
export class DatabaseDeadline extends Effect.Service<DatabaseDeadline>()("@telemetry/DatabaseDeadline", {
  effect: Effect.gen(function*() {
    const timeout = yield* DatabaseTimeout
    const pause = Duration.times(timeout, 2)
    const unansweredAt = yield* Ref.make<number | null>(null)
    /** `effect` bounded so, failing with the caller's error (`onTimeout`), told what happened. */
    const within = <E2>(onTimeout: (unanswered: DatabaseUnanswered) => E2) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const last = yield* Ref.get(unansweredAt)
        if (last !== null && now - last < Duration.toMillis(pause)) {
          return yield* Effect.fail(onTimeout(
            new DatabaseUnanswered({
              message: `not asked: the database gave no answer within ${Duration.format(timeout)} ` +
                `(INGEST_DATABASE_TIMEOUT) less than ${Duration.format(pause)} ago`,
              asked: false
            })
          ))
        }
        return yield* effect.pipe(
          Effect.disconnect,
          Effect.timeoutOption(timeout),
          Effect.flatMap(Option.match({
            onNone: () =>
              Effect.zipRight(
                Effect.flatMap(Clock.currentTimeMillis, (at) => Ref.set(unansweredAt, at)),
                Effect.fail(onTimeout(
                  new DatabaseUnanswered({
                    message: `no answer within ${Duration.format(timeout)} (INGEST_DATABASE_TIMEOUT)`,
                    asked: true
                  })
                ))
              ),
            onSome: (answer) => Effect.as(Ref.set(unansweredAt, null), answer)
          }))
        )
      })
    return { within }
  })
}) {}
