import { HttpApiBuilder, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServerRequest, NodeStream } from "@effect/platform-node"
import { InvalidPayload } from "@telemetry/domain"
import { Effect, Either, Layer, Option } from "effect"
import { AccountCredentials, AccountsUnavailable } from "../auth/Accounts.js"
import * as SqlAccounts from "../auth/SqlAccounts.js"
import type { Principal } from "../auth/Tokens.js"
import { DatabaseDeadline } from "../DatabaseTimeout.js"
import { Ingest } from "../Ingest.js"
import { TelemetryApi } from "./Api.js"
import { CurrentPrincipal } from "./Auth.js"
import { databaseUnavailable, errorResponse, InvalidBody, MAX_LOGGED_REFUSAL, RETRY_LATER, RETRY_SOON, retryAfterHeader, TooLarge, Unavailable, UnsupportedMediaType } from "./errors.js"
import { notJson } from "./jsonContent.js"
import { CurrentRequest } from "./RequestLog.js"

/**
 * The Easy Smart Monitor integration for Home Assistant counts only 200 and 201 as success (contract §6) and
 * cannot be changed: it is answered 200, every other client the contract's 202, with the same body.
 */
const HOME_ASSISTANT_CLIENT = /^EasySmartMonitor\//i
/** A client whose body is refused before it is read is not left sending the rest of it. */
const CLOSE = { connection: "close" }
const MAX_IDEMPOTENCY_KEY = 255


/**
 * The body is never buffered: it streams to storage and through validation at once (see `Ingest.accept`). Its
 * tenant, device and claim go on the request's line, tenant and device on every line logged while it is accepted.
 */
const bulk = (ingest: Ingest, zoneOf: (principal: Principal) => Effect.Effect<string | null, AccountsUnavailable>) => Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const served = yield* CurrentRequest
  const requestId = served.id
  const wrongType = notJson(request.headers["content-type"])
  if (wrongType !== undefined) return errorResponse(wrongType)
  const encoding = (request.headers["content-encoding"] ?? "identity").trim().toLowerCase()
  if (!["identity", "gzip", "x-gzip"].includes(encoding)) {
    return errorResponse(
      new UnsupportedMediaType({ message: `Content-Encoding must be gzip or absent, got "${encoding}"` })
    )
  }
  const idempotencyKey = request.headers["idempotency-key"] || null
  if (idempotencyKey !== null && idempotencyKey.length > MAX_IDEMPOTENCY_KEY) {
    return errorResponse(
      new InvalidBody({ message: `Idempotency-Key is longer than ${MAX_IDEMPOTENCY_KEY} characters`, path: "idempotency-key" })
    )
  }
  const principal = yield* CurrentPrincipal
  const who = { tenant: principal.tenantId, device: principal.subject }
  yield* served.annotate(who)
  const timeZone = yield* Effect.either(zoneOf(principal))
  if (Either.isLeft(timeZone)) return yield* databaseUnavailable(timeZone.left, CLOSE)
  const incoming = NodeHttpServerRequest.toIncomingMessage(request)
  // The server held back its `100 Continue` (Server.ts): said once the body is to be read.
  let continued = request.headers["expect"]?.toLowerCase() !== "100-continue"
  const readBody = () => {
    if (!continued) NodeHttpServerRequest.toServerResponse(request).writeContinue()
    continued = true
    return incoming
  }
  const declaredLength = Number(request.headers["content-length"] ?? NaN)
  const success = HOME_ASSISTANT_CLIENT.test(request.headers["user-agent"] ?? "") ? 200 : 202
  return yield* ingest.accept({
    // Not closed when we stop reading early: a rejected client then still gets its 4xx instead of a reset. Read
    // as it comes, with no chunk size: `read(size)` holds bytes back until `size` of them have come, so a slow
    // link's small pieces looked like no body at all to the least rate (BodyRate) and were cut.
    body: NodeStream.fromReadable(
      readBody,
      (cause) => new InvalidPayload({ message: `request body could not be read: ${(cause as Error).message}` }),
      { closeOnDone: false }
    ),
    declaredLength: Number.isSafeInteger(declaredLength) ? declaredLength : null,
    gzipped: encoding !== "identity",
    requestId,
    // Tenant and device from the token alone (a differing x-device-id was refused by DeviceAuth).
    deviceId: principal.subject,
    tenantId: principal.tenantId,
    timeZone: timeZone.right,
    idempotencyKey
  }).pipe(
    Effect.tap((accepted) => served.annotate({ claim_id: accepted.claimId })),
    Effect.map((accepted) =>
      HttpServerResponse.unsafeJson({
        status: "accepted",
        received: accepted.items,
        message: `Accepted ${accepted.items} equipment item(s) with ${accepted.readings} reading(s) for processing`,
        claim_check: accepted.key,
        claim_id: accepted.claimId,
        readings: accepted.readings
      }, { status: success, headers: accepted.replayed ? { "idempotent-replayed": "true" } : {} })
    ),
    // Whatever the client still sends of a rejected body is read and dropped.
    Effect.onError(() => Effect.sync(() => incoming.resume())),
    // Why, on the request's line: a client that resends its queue (Home Assistant) is refused alike every cycle,
    // and the operator needs the reading at fault to fix its cause.
    Effect.tapError((e) =>
      e._tag === "InvalidPayload" || e._tag === "PayloadTooLarge"
        ? served.annotate({ refusal: e.message.slice(0, MAX_LOGGED_REFUSAL) })
        : Effect.void
    ),
    Effect.catchTags({
      InvalidPayload: (e) =>
        Effect.succeed(errorResponse(new InvalidBody({ message: e.message, path: e.path }))),
      PayloadTooLarge: (e) => Effect.succeed(errorResponse(new TooLarge({ message: e.message }), CLOSE)),
      BodyTooSlow: (e) => Effect.succeed(errorResponse(e, CLOSE)),
      RateLimited: (e) => Effect.succeed(errorResponse(e, retryAfterHeader(e.retryAfter))),
      TooManyUploads: (e) => Effect.succeed(errorResponse(e, RETRY_SOON)),
      Overloaded: (e) => Effect.succeed(errorResponse(e, RETRY_SOON)),
      InProgress: (e) => Effect.succeed(errorResponse(e, RETRY_SOON)),
      KeyReused: (e) => Effect.succeed(errorResponse(e)),
      StorageError: (e) =>
        Effect.as(
          Effect.logError("storage failed during ingest", e),
          errorResponse(
            new Unavailable({
              error: "storage_unavailable",
              message: e.full === true ? "object storage is full (no space left), retry later" : "object storage is unavailable, retry later"
            }),
            RETRY_LATER
          )
        ),
      QueueError: (e) =>
        Effect.as(
          Effect.logError("queue failed during ingest", e),
          errorResponse(
            new Unavailable({ error: "queue_unavailable", message: `the claim queue is unavailable (${e.message}), retry later` }),
            RETRY_LATER
          )
        ),
      // Logged once by the gate when it closed, not for every upload it turns away.
      QueueDown: (e) =>
        Effect.succeed(errorResponse(
          new Unavailable({ error: "queue_unavailable", message: `${e.message}, retry later` }),
          { ...RETRY_LATER, ...CLOSE }
        ))
    }),
    Effect.annotateLogs(who)
  )
})

/**
 * The zone of a device's naive reading times (contract §1: the sending device account's): its token's, else its
 * account's — a token minted by `pnpm token` or an identity provider may carry none — else null (DEFAULT_TIMEZONE).
 * The database failing or not answering here fails the upload (503): read in another zone, the readings would be
 * stored at other times.
 */
const deviceZones = Effect.gen(function*() {
  const credentials = yield* AccountCredentials
  const inTime = (yield* DatabaseDeadline).within(({ message }) => new AccountsUnavailable({ message }))
  return (principal: Principal) =>
    principal.timeZone !== null
      ? Effect.succeed(principal.timeZone)
      : credentials.find("device", principal.subject).pipe(
        inTime,
        Effect.map((found) =>
          Option.match(found, {
            onNone: () => null,
            onSome: ({ account }) => (account.tenantId === principal.tenantId ? account.timeZone : null)
          })
        )
      )
})

export const layer = HttpApiBuilder.group(TelemetryApi, "ingest", (handlers) =>
  Effect.gen(function*() {
    const ingest = yield* Ingest
    const zoneOf = yield* deviceZones
    return handlers
      // Raw handlers: the framework leaves the body unread.
      .handleRaw("bulk", () => bulk(ingest, zoneOf))
      // The original gateway's Portuguese spelling, still used by deployed clients.
      .handleRaw("bulkAlias", () => bulk(ingest, zoneOf))
  })).pipe(Layer.provide(Layer.merge(SqlAccounts.layer, DatabaseDeadline.Default)))
