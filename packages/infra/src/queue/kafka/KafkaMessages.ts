import { type ClaimCheck, ClaimCheckJson } from "@telemetry/domain"
import { Schema } from "effect"
import type { KafkaMessage } from "kafkajs"

const encodeClaim = Schema.encodeSync(ClaimCheckJson)
const decodeClaim = Schema.decodeUnknownEither(ClaimCheckJson)

/** Contract §2: keyed by device so one device's claims stay in order on one partition; headers for routing. */
export const toMessage = (claim: ClaimCheck) => ({
  key: claim.metadata.deviceId ?? claim.claim_id,
  value: encodeClaim(claim),
  headers: {
    "content-type": "application/json",
    "message-type": "claim-check",
    "request-id": claim.metadata.requestId,
    "items-count": String(claim.metadata.itemsCount),
    "sensors-count": String(claim.metadata.totalSensors),
    "file-size": String(claim.file_size),
    // W3C trace context, for consumers and tools that read headers rather than the claim.
    ...(claim.metadata.traceparent === undefined ? {} : { traceparent: claim.metadata.traceparent })
  }
})

/** The claim check a message carries, or why it carries none. */
export const claimOf = (message: KafkaMessage) => decodeClaim(message.value?.toString("utf8"))
