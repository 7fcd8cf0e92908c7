import { Schema } from "effect"

/** The payload breaks the contract; `path` points at the offending field, e.g. `[3].sensor[0].sensor_uuid`. */
export class InvalidPayload extends Schema.TaggedError<InvalidPayload>()("InvalidPayload", {
  message: Schema.String,
  path: Schema.optional(Schema.String)
}) {}

/** A size limit was exceeded: the raw body, the decompressed body, one item, or the item count. */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  message: Schema.String,
  limit: Schema.Number
}) {}

export class StorageError extends Schema.TaggedError<StorageError>()("StorageError", {
  /** `commit`: the request that makes a put's object visible failed without an answer; it may have landed. */
  operation: Schema.Literal("put", "commit", "get", "delete", "list", "head"),
  key: Schema.String,
  message: Schema.String,
  /** Refused for want of space: a full disk, a quota. Freeing space, not waiting, ends it. */
  full: Schema.optional(Schema.Boolean),
  cause: Schema.optional(Schema.Defect)
}) {}

export class ObjectNotFound extends Schema.TaggedError<ObjectNotFound>()("ObjectNotFound", {
  key: Schema.String
}) {
  override get message() {
    return `object ${this.key} does not exist`
  }
}

/** A stored object whose metadata makes no claim: not ours, damaged, or without a tenant. */
export class InvalidStoredObject extends Schema.TaggedError<InvalidStoredObject>()("InvalidStoredObject", {
  key: Schema.String,
  message: Schema.String
}) {}

export class QueueError extends Schema.TaggedError<QueueError>()("QueueError", {
  operation: Schema.Literal("publish", "take", "ack", "check"),
  message: Schema.String,
  /** The queue works but holds no more claims now (for the claim's tenant): nothing failed. */
  full: Schema.optional(Schema.Boolean),
  cause: Schema.optional(Schema.Defect)
}) {}

/** The claim could not be loaded into the database; the claim stays unacknowledged. */
export class LoadError extends Schema.TaggedError<LoadError>()("LoadError", {
  claimId: Schema.String,
  message: Schema.String,
  /** Whether loading again may succeed: false when the database refused the claim's data itself. */
  transient: Schema.Boolean,
  cause: Schema.optional(Schema.Defect)
}) {}

/** The ledger of loaded claims could not be read. */
export class LedgerError extends Schema.TaggedError<LedgerError>()("LedgerError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}
