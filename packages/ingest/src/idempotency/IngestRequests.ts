import { SqlClient } from "@effect/sql"
import * as RevokedClaims from "@telemetry/infra/db/RevokedClaims"
import { Config, Context, Data, Duration, Effect, Layer, LogLevel, Option, Schedule, Schema } from "effect"
import { DatabaseDeadline, DatabaseUnanswered } from "../DatabaseTimeout.js"
import { answeredAs } from "../http/errors.js"

/** A request ingest is about to accept, identified by its key or, without one, by its body. */
export interface Submission {
  readonly tenantId: string
  readonly deviceId: string
  readonly idempotencyKey: string | null
  readonly sha256: string
  readonly claimId: string
  readonly objectKey: string
  readonly items: number
  readonly readings: number
}

/** The first request with the same key or body was accepted: its claim is the answer. */
export class Duplicate extends Data.TaggedError("Duplicate")<{ readonly first: Submission }> {}

/** The first request with the same key or body is still being stored and published. */
export class InProgress extends Schema.TaggedError<InProgress>()("InProgress", { claimId: Schema.String }, answeredAs(
  409,
  "request_in_progress",
  "A request with the same Idempotency-Key (or body) is still being accepted; retry after `Retry-After` seconds"
)) {
  override get message() {
    return `the same request is being accepted as claim ${this.claimId}; retry to get its answer`
  }
}

/** The key was used before for a different body. */
export class KeyReused extends Schema.TaggedError<KeyReused>()("KeyReused", { key: Schema.String }, answeredAs(
  422,
  "idempotency_key_reused",
  "The Idempotency-Key was used before for a different body"
)) {
  override get message() {
    return `Idempotency-Key "${this.key}" was used for a different body`
  }
}

/** A request under an Idempotency-Key, as it was recorded. */
export interface Recorded extends Submission {
  /** False while it is still being stored and published. */
  readonly accepted: boolean
}

export interface IngestRequestsShape {
  /**
   * The request recorded under this key within the key window, if any (none when the database fails: the
   * request then goes ahead, as `reserve` lets it).
   */
  readonly find: (
    key: { readonly tenantId: string; readonly deviceId: string; readonly idempotencyKey: string }
  ) => Effect.Effect<Option.Option<Recorded>>
  /**
   * Reserves the submission's key (or body) for its claim, or fails with what holds it. A reservation that
   * fails for want of a database lets the request through: idempotency is worth less than the reading.
   */
  readonly reserve: (submission: Submission) => Effect.Effect<void, Duplicate | InProgress | KeyReused>
  /** The claim was published: later retries get it back. */
  readonly accept: (claimId: string) => Effect.Effect<void>
  /** The request failed: a retry may go ahead as a new claim. */
  readonly release: (claimId: string) => Effect.Effect<void>
  /** The claim's publish failed, yet may be delivered later: a worker is to settle it without loading. */
  readonly revoke: (claimId: string) => Effect.Effect<void, Error>
}

export class IngestRequests extends Context.Tag("@telemetry/IngestRequests")<IngestRequests, IngestRequestsShape>() {}

export const IdempotencyConfig = Config.all({
  /** How long an Idempotency-Key returns its first claim. */
  keyWindow: Config.duration("IDEMPOTENCY_KEY_WINDOW").pipe(Config.withDefault(Duration.hours(24))),
  /**
   * How long the same body from the same device counts as a retry (0 turns it off). Short by default: a device
   * whose readings carry no time sends the same body for new readings.
   */
  bodyWindow: Config.duration("IDEMPOTENCY_BODY_WINDOW").pipe(Config.withDefault(Duration.minutes(10)))
})

/** An unaccepted reservation older than this belongs to a request that died; a retry may take it over. */
const STALE_PENDING = Duration.minutes(5)

interface Row {
  readonly claim_id: string
  readonly idempotency_key: string | null
  readonly body_sha256: string
  readonly object_key: string
  readonly items: number
  readonly readings: number
  readonly accepted: boolean
}

const verdict = (submission: Submission, holder: Row): Duplicate | InProgress | KeyReused => {
  if (submission.idempotencyKey !== null && holder.body_sha256 !== submission.sha256) {
    return new KeyReused({ key: submission.idempotencyKey })
  }
  if (!holder.accepted) return new InProgress({ claimId: holder.claim_id })
  return new Duplicate({
    first: {
      ...submission,
      claimId: holder.claim_id,
      objectKey: holder.object_key,
      items: holder.items,
      readings: holder.readings
    }
  })
}

/** In the database the services share (table `ingest_requests`), so every ingest instance sees every request. */
export const layer = Layer.scoped(
  IngestRequests,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { bodyWindow, keyWindow } = yield* IdempotencyConfig
    const inTime = (yield* DatabaseDeadline).within((unanswered) => unanswered)
    const seconds = (d: Duration.Duration) => Duration.toMillis(d) / 1000
    const longest = Duration.max(keyWindow, bodyWindow)

    const sameRequest = (s: Submission) =>
      s.idempotencyKey === null
        ? sql`tenant_id = ${s.tenantId} AND device_id = ${s.deviceId} AND idempotency_key IS NULL AND body_sha256 = ${s.sha256}`
        : sql`tenant_id = ${s.tenantId} AND device_id = ${s.deviceId} AND idempotency_key = ${s.idempotencyKey}`

    const reserveIn = (s: Submission) =>
      Effect.gen(function*() {
        const window = s.idempotencyKey === null ? bodyWindow : keyWindow
        // Expired reservations, and pending ones of requests that died, no longer count.
        yield* sql`DELETE FROM ingest_requests WHERE ${sameRequest(s)} AND (
          created_at < now() - make_interval(secs => ${seconds(window)})
          OR (NOT accepted AND created_at < now() - make_interval(secs => ${seconds(STALE_PENDING)})))`
        const inserted = yield* sql`INSERT INTO ingest_requests
          (claim_id, tenant_id, device_id, idempotency_key, body_sha256, object_key, items, readings)
          VALUES (${s.claimId}, ${s.tenantId}, ${s.deviceId}, ${s.idempotencyKey}, ${s.sha256}, ${s.objectKey},
            ${s.items}, ${s.readings})
          ON CONFLICT DO NOTHING RETURNING claim_id`
        if (inserted.length > 0) return undefined
        const [holder] = yield* sql<Row>`SELECT claim_id, idempotency_key, body_sha256, object_key, items, readings,
          accepted FROM ingest_requests WHERE ${sameRequest(s)}`
        // Gone between the insert and the select (released by its request): this one may go ahead.
        return holder === undefined ? undefined : verdict(s, holder)
      })

    /**
     * A step done without the records, said at warning — at debug when the database was not asked: through a hang,
     * the call that went unanswered said it, and every upload meanwhile would add lines saying it again.
     */
    const without = (what: string) => (e: { readonly message: string }) =>
      Effect.logWithLevel(
        e instanceof DatabaseUnanswered && !e.asked ? LogLevel.Debug : LogLevel.Warning,
        `${what}: ${e.message}`
      )

    const reserve = (s: Submission) =>
      (s.idempotencyKey === null && Duration.isZero(bodyWindow)
        ? Effect.void
        : reserveIn(s).pipe(
          inTime,
          Effect.catchAll(without("idempotency check skipped, the database failed")),
          Effect.flatMap((holder) => (holder === undefined ? Effect.void : Effect.fail(holder)))
        ))

    const logged = <A>(what: string) => (effect: Effect.Effect<A, { readonly message: string }, SqlClient.SqlClient>) =>
      effect.pipe(
        Effect.asVoid,
        Effect.catchAll(without(what)),
        Effect.provideService(SqlClient.SqlClient, sql)
      )

    // Old reservations and revocations are dropped in the background; a reservation is only ever looked up by
    // its own request.
    yield* sql`DELETE FROM ingest_requests WHERE created_at < now() - make_interval(secs => ${seconds(longest)})`.pipe(
      Effect.zipRight(RevokedClaims.purge),
      logged("expired idempotency records not purged"),
      Effect.repeat(Schedule.spaced(Duration.minutes(10))),
      Effect.forkScoped
    )

    const find: IngestRequestsShape["find"] = (key) =>
      sql<Row>`SELECT claim_id, idempotency_key, body_sha256, object_key, items, readings, accepted FROM ingest_requests
        WHERE tenant_id = ${key.tenantId} AND device_id = ${key.deviceId} AND idempotency_key = ${key.idempotencyKey}
          AND created_at >= now() - make_interval(secs => ${seconds(keyWindow)})
          AND (accepted OR created_at >= now() - make_interval(secs => ${seconds(STALE_PENDING)}))`.pipe(
        Effect.map(([row]) =>
          Option.map(Option.fromNullable(row), (r): Recorded => ({
            ...key,
            sha256: r.body_sha256,
            claimId: r.claim_id,
            objectKey: r.object_key,
            items: r.items,
            readings: r.readings,
            accepted: r.accepted
          }))
        ),
        inTime,
        Effect.catchAll((e) => Effect.as(without("idempotency key not looked up, the database failed")(e), Option.none()))
      )

    return IngestRequests.of({
      find,
      reserve,
      accept: (claimId) =>
        sql`UPDATE ingest_requests SET accepted = true WHERE claim_id = ${claimId}`.pipe(
          inTime,
          logged(`claim ${claimId} not marked accepted for idempotency`)
        ),
      release: (claimId) =>
        sql`DELETE FROM ingest_requests WHERE claim_id = ${claimId}`.pipe(
          inTime,
          logged(`claim ${claimId}'s idempotency record not released`)
        ),
      revoke: (claimId) => RevokedClaims.revoke(claimId).pipe(inTime, Effect.provideService(SqlClient.SqlClient, sql))
    })
  })
).pipe(Layer.provide(DatabaseDeadline.Default))
