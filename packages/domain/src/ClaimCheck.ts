import { Either, Option, ParseResult, Schema } from "effect"
import { InvalidStoredObject } from "./errors.js"
import type { StoredObject } from "./services/ObjectStore.js"

const Count = Schema.NonNegativeInt
/** A tenant: every stored object and claim names one, and never gets one by default. */
const Tenant = Schema.NonEmptyTrimmedString

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
    tenantId: Tenant,
    /** The IANA zone the payload's naive reading times are read in (absent in claims of earlier versions). */
    timeZone: Schema.optional(Schema.String),
    /** The ingest request's trace (W3C), so that the worker's spans join it (absent when not traced). */
    traceparent: Schema.optional(Schema.String),
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

/** What ingest learns of a payload while validating it; stored as object metadata (`StoredFacts`). */
export const PayloadFacts = Schema.Struct({
  claimId: Schema.UUID,
  requestId: Schema.String,
  deviceId: Schema.NullOr(Schema.String),
  tenantId: Tenant,
  /** The zone its naive reading times were read in: the device account's, else DEFAULT_TIMEZONE. */
  timeZone: Schema.optional(Schema.String),
  /** The trace of the request that brought it (W3C `traceparent`), when traced. */
  traceparent: Schema.optional(Schema.String),
  receivedAt: Schema.DateFromSelf,
  originalSize: Count,
  sha256: Schema.String,
  items: Count,
  readings: Count
})
export type PayloadFacts = typeof PayloadFacts.Type

const Whole = Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative())
const key = <S extends Schema.Schema.Any>(schema: S, name: string) =>
  Schema.propertySignature(schema).pipe(Schema.fromKey(name))

/**
 * The facts as an object's metadata: lower-case keys and text values, as S3 keeps them. Decoding the metadata of a
 * stored object checks it: an object without a tenant, or damaged, is refused, never taken for another's.
 */
export const StoredFacts = Schema.Struct({
  claimId: key(Schema.UUID, "claim-id"),
  requestId: key(Schema.String, "request-id"),
  deviceId: Schema.optionalWith(Schema.String, { nullable: true, as: "Option" }).pipe(Schema.fromKey("device-id")),
  tenantId: key(Tenant, "tenant-id"),
  timeZone: Schema.optional(Schema.String).pipe(Schema.fromKey("time-zone")),
  traceparent: Schema.optional(Schema.String),
  receivedAt: key(Schema.Date, "received-at"),
  originalSize: key(Whole, "original-size"),
  sha256: Schema.String,
  items: key(Whole, "items-count"),
  readings: key(Whole, "sensors-count")
})

const encodeStoredFacts = Schema.encodeSync(StoredFacts)
const decodeStoredFacts = Schema.decodeUnknownEither(StoredFacts)

// An optional fact left undefined has no key at all: stores send every key as a header value.
export const factsToMetadata = (facts: PayloadFacts): Record<string, string> =>
  Object.fromEntries(
    Object.entries(encodeStoredFacts({ ...facts, deviceId: Option.fromNullable(facts.deviceId) }))
      .filter(([, value]) => value !== undefined)
  ) as Record<string, string>

/** The facts a stored object's metadata holds, or why they cannot be read (not ours, damaged, no tenant). */
export const factsOf = (object: StoredObject): Either.Either<PayloadFacts, InvalidStoredObject> =>
  Either.mapBoth(decodeStoredFacts(object.metadata), {
    onLeft: (error) => new InvalidStoredObject({ key: object.key, message: ParseResult.TreeFormatter.formatErrorSync(error) }),
    onRight: (facts): PayloadFacts => ({ ...facts, deviceId: Option.getOrNull(facts.deviceId) })
  })

/** The claim check for a committed object with the facts of its payload. */
export const claimFor = (
  facts: PayloadFacts,
  object: StoredObject,
  storage: { readonly storageType: string; readonly bucket: string }
): ClaimCheck =>
  new ClaimCheck({
    version: 1,
    claim_id: facts.claimId,
    claim_check: object.key,
    storage_type: storage.storageType,
    bucket: storage.bucket,
    file_size: object.size,
    original_size: facts.originalSize,
    compression: "gzip",
    timestamp: facts.receivedAt.toISOString(),
    metadata: {
      requestId: facts.requestId,
      deviceId: facts.deviceId,
      tenantId: facts.tenantId,
      ...(facts.timeZone === undefined ? {} : { timeZone: facts.timeZone }),
      ...(facts.traceparent === undefined ? {} : { traceparent: facts.traceparent }),
      itemsCount: facts.items,
      totalSensors: facts.readings,
      fileSize: object.size
    }
  })
