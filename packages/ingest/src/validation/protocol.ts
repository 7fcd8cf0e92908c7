import { InvalidPayload, PayloadTooLarge } from "@telemetry/domain"
import { Schema } from "effect"
import type { MessagePort } from "node:worker_threads"
import type { Job, Validated } from "./validate.js"

// Messages between ingest's main thread and a validation thread. Each upload gets a MessageChannel of its own:
// the thread receives a Start with one end, and the upload's messages go over it. Closing it (by the main thread,
// when the upload is answered or cut off) ends the upload on the thread.

/** To the thread's parentPort: validate an upload, whose body comes over `port`. */
export interface Start {
  readonly job: Job
  readonly port: MessagePort
}

/** Over the upload's port, to the thread: a piece of the body as sent (its own copy), or its end. */
export type ToThread = { readonly _tag: "Chunk"; readonly bytes: Uint8Array } | { readonly _tag: "End" }

/** Over the upload's port, from the thread. */
export type FromThread =
  /** A chunk was taken in: the main thread may send one more (at most CHUNKS_AHEAD are on their way). */
  | { readonly _tag: "Taken" }
  /** Bytes of JSON decompressed, for the metric. */
  | { readonly _tag: "Decompressed"; readonly bytes: number }
  | { readonly _tag: "Valid"; readonly validated: Validated }
  | { readonly _tag: "Invalid"; readonly error: typeof Refusal.Encoded }
  | { readonly _tag: "Defect"; readonly message: string }

/** Chunks the main thread sends ahead of those the thread took in: what bounds an upload's buffers on the way. */
export const CHUNKS_AHEAD = 8

/** Why a body is refused, encoded to cross the thread boundary. */
export const Refusal = Schema.Union(InvalidPayload, PayloadTooLarge)
