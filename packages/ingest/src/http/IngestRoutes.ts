import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServerRequest, NodeStream } from "@effect/platform-node"
import { InvalidPayload } from "@telemetry/domain"
import { Effect } from "effect"
import { randomUUID } from "node:crypto"
import { Ingest } from "../Ingest.js"
import { errorResponse } from "./responses.js"

const JSON_TYPE = /^application\/json\s*(;|$)/i
const RETRY_AFTER = { "retry-after": "5" }

const bulk = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const ingest = yield* Ingest
  const requestId = request.headers["x-request-id"] || randomUUID()
  const headers = { "x-request-id": requestId }
  const contentType = request.headers["content-type"] ?? ""
  if (!JSON_TYPE.test(contentType)) {
    return errorResponse(415, "unsupported_media_type", `Content-Type must be application/json, got "${contentType}"`, {
      headers
    })
  }
  const encoding = (request.headers["content-encoding"] ?? "identity").trim().toLowerCase()
  if (!["identity", "gzip", "x-gzip"].includes(encoding)) {
    return errorResponse(415, "unsupported_media_type", `Content-Encoding must be gzip or absent, got "${encoding}"`, {
      headers
    })
  }
  const incoming = NodeHttpServerRequest.toIncomingMessage(request)
  return yield* ingest.accept({
    // Not closed when we stop reading early: a rejected client then still gets its 4xx instead of a reset.
    body: NodeStream.fromReadable(
      () => incoming,
      (cause) => new InvalidPayload({ message: `request body could not be read: ${(cause as Error).message}` }),
      { closeOnDone: false, chunkSize: 64 * 1024 }
    ),
    gzipped: encoding !== "identity",
    requestId,
    deviceId: request.headers["x-device-id"] || null,
    tenantId: "default"
  }).pipe(
    Effect.map((accepted) =>
      HttpServerResponse.unsafeJson({
        status: "accepted",
        received: accepted.items,
        message: `Accepted ${accepted.items} equipment item(s) with ${accepted.readings} reading(s) for processing`,
        claim_check: accepted.key,
        claim_id: accepted.claimId,
        readings: accepted.readings
      }, { status: 202, headers })
    ),
    // Whatever the client still sends of a rejected body is read and dropped.
    Effect.onError(() => Effect.sync(() => incoming.resume())),
    Effect.catchTags({
      InvalidPayload: (e) => Effect.succeed(errorResponse(400, "invalid_payload", e.message, { path: e.path, headers })),
      PayloadTooLarge: (e) => Effect.succeed(errorResponse(413, "payload_too_large", e.message, { headers })),
      StorageError: (e) =>
        Effect.as(
          Effect.logError("storage failed during ingest", e),
          errorResponse(503, "storage_unavailable", "object storage is unavailable, retry later", {
            headers: { ...headers, ...RETRY_AFTER }
          })
        ),
      QueueError: (e) =>
        Effect.as(
          Effect.logError("queue failed during ingest", e),
          errorResponse(503, "queue_unavailable", `the claim queue is unavailable (${e.message}), retry later`, {
            headers: { ...headers, ...RETRY_AFTER }
          })
        )
    })
  )
})

export const routes = HttpRouter.empty.pipe(
  HttpRouter.post("/api/v1/telemetry/bulk", bulk),
  // The original gateway's Portuguese spelling, still used by deployed clients.
  HttpRouter.post("/api/v1/telemetria/bulk", bulk)
)
