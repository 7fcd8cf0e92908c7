import type { ClientOptions } from "minio"
import * as http from "node:http"
import * as https from "node:https"

/** The connection of a request made no progress (connecting, sending or receiving) for the request timeout. */
export class RequestTimedOut extends Error {
  readonly code = "ETIMEDOUT"
  constructor(readonly timeoutMillis: number) {
    super(`no progress for ${timeoutMillis} ms`)
  }
}

/** The server answered with a status that says "try again" (throttled, or failing on its side). */
export class TransientStatus extends Error {
  constructor(readonly status: number) {
    super(`HTTP ${status} ${http.STATUS_CODES[status] ?? ""}`.trim())
  }
}

/** The statuses S3 and MinIO answer while throttling or in trouble; 501 means "not implemented" and stays. */
const isTransientStatus = (status: number) => status === 408 || status === 429 || (status >= 500 && status !== 501)

/** Failures of the connection itself, whatever the request. */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN"
])
/** S3 error codes that may come with a 4xx yet only ask for the request again. */
const TRANSIENT_S3_CODES = new Set(["RequestTimeout", "SlowDown"])

/** Whether the same request may succeed if sent again: network trouble, timeouts, throttling, 5xx. */
export const isTransient = (cause: unknown): boolean => {
  if (cause instanceof TransientStatus || cause instanceof RequestTimedOut) return true
  if (cause instanceof AggregateError && cause.errors.some(isTransient)) return true
  const code = (cause as { code?: unknown } | null)?.code
  return typeof code === "string" && (NETWORK_CODES.has(code) || TRANSIENT_S3_CODES.has(code))
}

export interface S3Transport {
  readonly transport: NonNullable<ClientOptions["transport"]>
  readonly agent: http.Agent
}

/**
 * minio's HTTP transport with two changes. A request whose connection makes no progress for `timeoutMillis` is
 * destroyed — socket included — with a `RequestTimedOut`, so a hung server cannot hang us. It is an idle timeout,
 * not a total one, so a long transfer that keeps moving is not cut; and it is off while the reader of a response
 * holds it back (Node pauses the socket then), so a slow reader is not taken for a hung server. And a transient
 * status fails the request with a `TransientStatus` instead of reaching minio, whose own retry would answer it with
 * an untyped error and leave the response unread, its connection taken until the server closes it.
 */
export const make = (protocol: string, timeoutMillis: number): S3Transport => {
  const base = protocol === "https:" ? https : http
  const agent = new base.Agent({ keepAlive: true })
  const request = (options: http.RequestOptions, callback?: (response: http.IncomingMessage) => void) => {
    let response: http.IncomingMessage | undefined
    const outgoing = base.request({ ...options, timeout: timeoutMillis }, (incoming) => {
      const status = incoming.statusCode ?? 0
      if (isTransientStatus(status)) {
        outgoing.destroy(new TransientStatus(status))
        return
      }
      response = incoming
      const socket = incoming.socket
      const heldBack = () => socket.setTimeout(0)
      const wanted = () => socket.setTimeout(timeoutMillis)
      socket.on("pause", heldBack).on("resume", wanted)
      // The socket goes back to the pool for other requests.
      incoming.once("close", () => socket.off("pause", heldBack).off("resume", wanted))
      callback?.(incoming)
    })
    outgoing.on("timeout", () => {
      const error = new RequestTimedOut(timeoutMillis)
      // Once the response came, its reader is the one waiting: it gets the reason rather than a bare "aborted".
      response?.destroy(error)
      outgoing.destroy(error)
    })
    return outgoing
  }
  return { transport: { request } as S3Transport["transport"], agent }
}
