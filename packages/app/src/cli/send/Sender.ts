import { HttpClient, HttpClientRequest, type HttpClientResponse } from "@effect/platform"
import { gzip } from "@telemetry/infra/compression"
import { Chunk, Clock, Data, Duration, Effect, Option, Redacted, Schedule, Stream } from "effect"
import type { Payload } from "./Payloads.js"

export interface SendOptions {
  /** The server's base URL, e.g. http://127.0.0.1:8080. */
  readonly url: string
  readonly token: Redacted.Redacted
  /** Tries per payload in all, the first included. */
  readonly attempts: number
}

/** What became of one payload. */
export interface Result {
  readonly file: string
  readonly outcome: "accepted" | "replayed" | "refused" | "failed"
  /** The last answer's HTTP status; null when the server never answered. */
  readonly status: number | null
  readonly claimId: string | null
  /** The readings the server counted in it (a replay: in the first request). */
  readonly readings: number
  /** The server's error code and message, or why it could not be reached. */
  readonly error: string | null
  readonly message: string | null
  /** The payload's bytes as read, and as sent (gzip) by the last attempt. */
  readonly bytes: number
  readonly sentBytes: number
  readonly attempts: number
}

/** An answer worth another try: the server asked for one (Retry-After), or could not be reached. */
class Retryable extends Data.TaggedError("Retryable")<{
  readonly status: number | null
  readonly error: string
  readonly message: string
  readonly retryAfter: Option.Option<Duration.Duration>
}> {}

const BULK = "/api/v1/telemetry/bulk"
const GZIP_LEVEL = 6
const FIRST_DELAY = Duration.millis(500)
const MAX_DELAY = Duration.seconds(30)
/**
 * Payloads up to this size are gzipped whole before the request, so that its headers and body leave in one write.
 * Streamed, the body's chunks follow the headers; a server (or proxy) that refuses on the headers and closes the
 * connection then makes a later chunk's write fail (EPIPE) before undici has read the answer waiting in the socket:
 * 15 of 40 tries against such a server saw "write EPIPE" instead of its 401. Larger files stream, never held whole.
 */
const WHOLE_BODY_MAX = 8 * 1024 * 1024

/** 429 and 503 ask for a retry, and so does 409 while a request with the same key is still being accepted. */
const asksForRetry = (status: number, error: string) =>
  status === 429 || status === 503 || (status === 409 && error === "request_in_progress")

/** `Retry-After` in seconds or as an HTTP date (RFC 9110 §10.2.3). */
const retryAfterOf = (response: HttpClientResponse.HttpClientResponse) =>
  Effect.map(Clock.currentTimeMillis, (now) => {
    const value = response.headers["retry-after"]?.trim()
    if (value === undefined || value === "") return Option.none<Duration.Duration>()
    const seconds = /^\d+$/.test(value) ? Number(value) : (Date.parse(value) - now) / 1000
    return Number.isFinite(seconds) ? Option.some(Duration.seconds(Math.max(0, seconds))) : Option.none()
  })

/** The delay a Retry-After asked for, else exponential backoff with jitter; `attempts` tries in all. */
const retrySchedule = (attempts: number) =>
  Schedule.exponential(FIRST_DELAY).pipe(
    Schedule.jittered,
    Schedule.modifyDelay((_, delay) => Duration.min(delay, MAX_DELAY)),
    Schedule.intersect(Schedule.identity<Retryable>()),
    Schedule.modifyDelay(([, e], delay) => Option.getOrElse(e.retryAfter, () => delay)),
    Schedule.intersect(Schedule.recurs(attempts - 1))
  )

const answerOf = (response: HttpClientResponse.HttpClientResponse) =>
  Effect.map(
    Effect.orElseSucceed(response.json, () => ({})),
    (body) => (typeof body === "object" && body !== null ? body as Record<string, unknown> : {})
  )

const text = (value: unknown) => (typeof value === "string" ? value : null)

/**
 * Posts payloads to the bulk route: gzip on the way (a gzip file as it is), with an `Idempotency-Key` from the
 * payload's sha256 — a rerun, or a retry whose first answer was lost, gets the first claim back instead of storing
 * the payload twice — retried while the server asks for it or cannot be reached.
 */
export const make = (options: SendOptions) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const url = options.url.replace(/\/+$/, "") + BULK

    const attempt = (payload: Payload, sent: { bytes: number }) =>
      Effect.gen(function*() {
        sent.bytes = 0
        const gzipped = payload.gzipped ? payload.bytes : gzip(GZIP_LEVEL)(payload.bytes)
        const body = payload.size <= WHOLE_BODY_MAX
          ? Effect.map(Stream.runCollect(gzipped), (chunks) => {
            const whole = Buffer.concat(Chunk.toReadonlyArray(chunks))
            sent.bytes = whole.length
            return HttpClientRequest.bodyUint8Array(whole, "application/json")
          })
          : Effect.succeed(HttpClientRequest.bodyStream(
            Stream.tap(gzipped, (bytes) => Effect.sync(() => (sent.bytes += bytes.length))),
            { contentType: "application/json" }
          ))
        const request = HttpClientRequest.post(url).pipe(
          HttpClientRequest.setHeaders({ "content-encoding": "gzip", "idempotency-key": payload.sha256 }),
          HttpClientRequest.bearerToken(Redacted.value(options.token)),
          yield* Effect.mapError(body, (e) =>
            new Retryable({ status: null, error: "unreadable", message: e.message, retryAfter: Option.none() }))
        )
        const response = yield* client.execute(request).pipe(
          Effect.mapError((e) =>
            new Retryable({
              status: null,
              error: "unreachable",
              message: e.cause instanceof Error ? `${e.message}: ${e.cause.message}` : e.message,
              retryAfter: Option.none()
            })
          )
        )
        const answer = yield* answerOf(response)
        const error = text(answer.error) ?? `http_${response.status}`
        if (asksForRetry(response.status, error)) {
          return yield* new Retryable({
            status: response.status,
            error,
            message: text(answer.message) ?? `HTTP ${response.status}`,
            retryAfter: yield* retryAfterOf(response)
          })
        }
        return { status: response.status, answer, replayed: response.headers["idempotent-replayed"] === "true", error }
      }).pipe(Effect.scoped)

    /** One payload, to its outcome: never fails. */
    return (payload: Payload) =>
      Effect.gen(function*() {
        const sent = { bytes: 0 }
        let attempts = 0
        const base = { file: payload.name, bytes: payload.size }
        return yield* Effect.suspend(() => {
          attempts += 1
          return attempt(payload, sent)
        }).pipe(
          Effect.retry(retrySchedule(options.attempts)),
          Effect.map(({ answer, error, replayed, status }): Result => {
            const ok = status >= 200 && status < 300
            return {
              ...base,
              outcome: ok ? (replayed ? "replayed" : "accepted") : "refused",
              status,
              claimId: ok ? text(answer.claim_id) : null,
              readings: ok && typeof answer.readings === "number" ? answer.readings : 0,
              error: ok ? null : error,
              message: ok ? null : text(answer.message),
              sentBytes: sent.bytes,
              attempts
            }
          }),
          // Still refused after the last try (the server answered), or never reached.
          Effect.catchAll((e) =>
            Effect.succeed<Result>({
              ...base,
              outcome: e.status === null ? "failed" : "refused",
              status: e.status,
              claimId: null,
              readings: 0,
              error: e.error,
              message: e.message,
              sentBytes: sent.bytes,
              attempts
            })
          )
        )
      })
  })
