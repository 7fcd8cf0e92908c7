import { QueueError } from "@telemetry/domain"

/** A failure of a queue's `operation` as a QueueError: what was being done, and what the cause says. */
export const queueError = (operation: QueueError["operation"], message: string) => (cause: unknown) =>
  new QueueError({ operation, message: `${message}: ${cause instanceof Error ? cause.message : String(cause)}`, cause })
