import { Schema } from "effect"
import type { StoredObject } from "./services/ObjectStore.js"

const Count = Schema.NonNegativeInt

/** The ~1 KB message that stands for a stored payload (contract §2). */
export class ClaimCheck extends Schema.Class<ClaimCheck>("ClaimCheck")({
  version: Schema.Literal(1),
  claim_id: Schema.UUID,
  claim_check: Schema.String,
  storage_type: Schema.String,
  bucket: Schema.String,
  file_size: Count,
  original_size: Count,
  compression: Schema.Literal("gzip"),
  /** When the payload was received (ISO-8601); also the time of readings that carry none. */
  timestamp: Schema.String,
  metadata: Schema.Struct({
    requestId: Schema.String,
    deviceId: Schema.NullOr(Schema.String),
    tenantId: Schema.String,
    /** The IANA zone the payload's naive reading times are read in (absent in claims of earlier versions). */
    timeZone: Schema.optional(Schema.String),
    itemsCount: Count,
    totalSensors: Count,
    fileSize: Count
  })
}) {}

export const ClaimCheckJson = Schema.parseJson(ClaimCheck)

/** Where the payloads are kept in the bucket. */
export const OBJECT_PREFIX = "telemetry/"

/** The time part of an object key: the UTC time with `:` and `.` as `-`. */
export const keyTime = (time: Date): string => time.toISOString().replace(/[:.]/g, "-")

/** `telemetry/<UTC time with : and . as ->/<claim id>.json.gz` (contract §2). */
export const objectKey = (claimId: string, receivedAt: Date): string =>
  `${OBJECT_PREFIX}${keyTime(receivedAt)}/${claimId}.json.gz`

const KEY_TIME = new RegExp(`^${OBJECT_PREFIX}(\\d{4}-\\d{2}-\\d{2}T\\d{2})-(\\d{2})-(\\d{2})-(\\d{3})Z/`)

/** When the payload under `key` was received, read back from its key; undefined for a key not made by `objectKey`. */
export const objectKeyTime = (key: string): Date | undefined => {
  const m = KEY_TIME.exec(key)
  const time = m === null ? NaN : Date.parse(`${m[1]}:${m[2]}:${m[3]}.${m[4]}Z`)
  return Number.isNaN(time) ? undefined : new Date(time)
}

/** What ingest learns of a payload while validating it; stored as object metadata. */
export interface PayloadFacts {
  readonly claimId: string
  readonly requestId: string
  readonly deviceId: string | null
  readonly tenantId: string
  /** The zone its naive reading times were read in: the device account's, else DEFAULT_TIMEZONE. */
  readonly timeZone: string
  readonly receivedAt: Date
  readonly originalSize: number
  readonly sha256: string
  readonly items: number
  readonly readings: number
}

export const factsToMetadata = (facts: PayloadFacts): Record<string, string> => ({
  "claim-id": facts.claimId,
  "request-id": facts.requestId,
  ...(facts.deviceId === null ? {} : { "device-id": facts.deviceId }),
  "tenant-id": facts.tenantId,
  "time-zone": facts.timeZone,
  "received-at": facts.receivedAt.toISOString(),
  "original-size": String(facts.originalSize),
  sha256: facts.sha256,
  "items-count": String(facts.items),
  "sensors-count": String(facts.readings)
})

/** The claim check for a committed object; also rebuilds one from a stored object's metadata. */
export const claimFor = (object: StoredObject, storage: { storageType: string; bucket: string }): ClaimCheck => {
  const m = object.metadata
  return new ClaimCheck({
    version: 1,
    claim_id: m["claim-id"] ?? "",
    claim_check: object.key,
    storage_type: storage.storageType,
    bucket: storage.bucket,
    file_size: object.size,
    original_size: Number(m["original-size"] ?? 0),
    compression: "gzip",
    timestamp: m["received-at"] ?? "",
    metadata: {
      requestId: m["request-id"] ?? "",
      deviceId: m["device-id"] ?? null,
      tenantId: m["tenant-id"] ?? "default",
      ...(m["time-zone"] === undefined ? {} : { timeZone: m["time-zone"] }),
      itemsCount: Number(m["items-count"] ?? 0),
      totalSensors: Number(m["sensors-count"] ?? 0),
      fileSize: object.size
    }
  })
}
