import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { EquipmentItem } from "@telemetry/domain"
import { Schema } from "effect"
import { DeviceAuth } from "./Auth.js"
import { allowUnknownFields } from "./docs.js"
import { InProgress, KeyReused } from "../idempotency/IngestRequests.js"
import { Overloaded, RateLimited, TooManyUploads } from "../limits/Admission.js"
import { BodyTooSlow } from "../limits/BodyRate.js"
import { InvalidBody, TooLarge, Unavailable, UnsupportedMediaType } from "./errors.js"

// --- Ingest (contract §1) ---

const Count = Schema.NonNegativeInt

const Accepted = Schema.Struct({
  status: Schema.Literal("accepted"),
  received: Count.annotations({ description: "equipment items" }),
  message: Schema.String,
  claim_check: Schema.String.annotations({ description: "object key of the stored payload" }),
  claim_id: Schema.UUID,
  readings: Count
}).annotations({ identifier: "Accepted" })

const BulkHeaders = Schema.Struct({
  // Strings, not literals: the handler answers a bad encoding with 415, which a decode failure here would preempt.
  "content-encoding": Schema.optional(Schema.String).annotations({
    description: "gzip (or x-gzip, identity); gzip bodies are stored as sent"
  }),
  "x-request-id": Schema.optional(Schema.String).annotations({ description: "echoed; generated when absent" }),
  "idempotency-key": Schema.optional(Schema.String).annotations({
    description: "a retry with the same key (and body) gets the first claim back, with `Idempotent-Replayed: true`; " +
      "without a key, the same body from the same device within IDEMPOTENCY_BODY_WINDOW counts as a retry"
  }),
  "x-device-id": Schema.optional(Schema.String).annotations({
    description: "device identity: the device token's `sub`, which it must equal when sent"
  })
})

// Documented, not decoded by the framework: the bulk handler streams the body through its own decoder.
const bulk = <const Name extends string>(name: Name, path: `/${string}`, summary: string) =>
  HttpApiEndpoint.post(name, path)
    .setPayload(Schema.Array(EquipmentItem).annotations({ description: "equipment items, 1 to MAX_ITEMS" }))
    .setHeaders(BulkHeaders)
    .addSuccess(Accepted, { status: 202 })
    .addError(InvalidBody)
    .addError(TooLarge)
    .addError(BodyTooSlow)
    .addError(UnsupportedMediaType)
    .addError(RateLimited)
    .addError(TooManyUploads)
    .addError(InProgress)
    .addError(KeyReused)
    .addError(Unavailable)
    .addError(Overloaded)
    .annotate(OpenApi.Summary, summary)
    .annotate(
      OpenApi.Description,
      "Answered `202` once the payload is stored and its claim queued; the Easy Smart Monitor integration for Home " +
        "Assistant (`User-Agent: EasySmartMonitor/…`), which counts only 200 and 201 as success, gets `200` with the " +
        "same body. Naive reading times are read in the device account's time zone, else DEFAULT_TIMEZONE."
    )
    .annotate(OpenApi.Transform, allowUnknownFields)

const BULK_PATH = "/api/v1/telemetry/bulk"
const BULK_ALIAS_PATH = "/api/v1/telemetria/bulk"
/** The upload routes: the only ones whose bodies stream, past the limit of the bodies the API decodes (Server.ts). */
const UPLOAD_PATHS: ReadonlyArray<string> = [BULK_PATH, BULK_ALIAS_PATH]

/** Whether a request URL (with its query, if any) is an upload route's. */
export const isUploadUrl = (url: string | undefined) => UPLOAD_PATHS.includes((url ?? "").split("?")[0]!)

export class IngestGroup extends HttpApiGroup.make("ingest")
  .add(bulk("bulk", BULK_PATH, "Accept a batch of readings (plain or gzip JSON)"))
  .add(bulk("bulkAlias", BULK_ALIAS_PATH, "The original Portuguese path of bulk"))
  .middleware(DeviceAuth)
{}
