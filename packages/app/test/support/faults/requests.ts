import { bearer, deviceToken } from "@telemetry/ingest/testing/auth"
import * as http from "node:http"
import type { Shipment } from "./shipments.js"

/** What a client learned of its request. */
export type Outcome =
  | { readonly _tag: "Accepted"; readonly claimId: string; readonly key: string; readonly readings: number }
  | { readonly _tag: "Refused"; readonly status: number; readonly error: string; readonly message: string }
  /** No answer. `bodySent`: the whole body had left the client, so the server may have accepted it. */
  | { readonly _tag: "Lost"; readonly bodySent: boolean; readonly message: string }

export const isAccepted = (o: Outcome): o is Extract<Outcome, { _tag: "Accepted" }> => o._tag === "Accepted"
/** No answer after the whole body left: stored and queued or not, the client cannot know. */
export const isUnknown = (o: Outcome) => o._tag === "Lost" && o.bodySent
/** A claim may have reached the topic: accepted, unknown, or refused because Kafka did not acknowledge in time. */
export const mayBeQueued = (o: Outcome) =>
  isAccepted(o) || isUnknown(o) || (o._tag === "Refused" && o.error === "queue_unavailable")

/** An outcome in a few words: `202`, `503 storage_unavailable`, `lost after the body`. */
export const answer = (o: Outcome) =>
  o._tag === "Accepted" ? "202" : o._tag === "Refused" ? `${o.status} ${o.error}` : `lost${o.bodySent ? " after the body" : ""}`

export interface Hold {
  /** Bytes sent before holding. */
  readonly at: number
  /** The rest is sent when this resolves. */
  readonly release: Promise<void>
}

/** A promise with its resolver, to release a held body. */
export const latch = () => {
  let open = () => {}
  const release = new Promise<void>((resolve) => (open = resolve))
  return { release, open }
}

/** Longer than any retry or timeout of the pipeline: a request still unanswered then is reported as lost. */
const ANSWER_TIMEOUT = 120_000

/**
 * POSTs `s` on a connection of its own (a killed server must not leave a pooled socket behind). With `hold`, the
 * body stops after `hold.at` bytes until `hold.release` resolves, so that a fault can strike in the middle of it.
 */
export const send = (port: number, s: Shipment, hold?: Hold): Promise<Outcome> =>
  new Promise((resolve) => {
    let bodySent = false
    let settled = false
    const settle = (outcome: Outcome) => {
      if (settled) return
      settled = true
      resolve(outcome)
    }
    const request = http.request({
      host: "127.0.0.1",
      port,
      method: "POST",
      path: "/api/v1/telemetry/bulk",
      agent: false,
      timeout: ANSWER_TIMEOUT,
      headers: {
        "content-type": "application/json",
        ...(s.gzipped ? { "content-encoding": "gzip" } : {}),
        "content-length": String(s.body.length),
        "x-request-id": s.requestId,
        "x-device-id": s.device,
        ...bearer(deviceToken("default", s.device))
      }
    }, (response) => {
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on("error", (e) => settle({ _tag: "Lost", bodySent: true, message: `answer cut: ${e.message}` }))
      response.on("end", () => {
        const status = response.statusCode ?? 0
        let json: Record<string, unknown> = {}
        try {
          json = JSON.parse(Buffer.concat(chunks).toString("utf8"))
        } catch {
          // A body that is not JSON shows as an empty error below.
        }
        settle(
          status === 202
            ? {
              _tag: "Accepted",
              claimId: String(json["claim_id"]),
              key: String(json["claim_check"]),
              readings: Number(json["readings"])
            }
            : { _tag: "Refused", status, error: String(json["error"] ?? ""), message: String(json["message"] ?? "") }
        )
      })
    })
    request.on("finish", () => (bodySent = true))
    request.on("timeout", () => request.destroy(new Error(`no answer within ${ANSWER_TIMEOUT} ms`)))
    request.on("error", (e) => settle({ _tag: "Lost", bodySent, message: e.message }))
    if (hold === undefined) {
      request.end(s.body)
      return
    }
    request.write(s.body.subarray(0, hold.at))
    void hold.release.then(() => {
      // An early answer (e.g. 503) may have ended the exchange: the rest then has nowhere to go.
      if (!request.destroyed) request.end(s.body.subarray(hold.at))
    })
  })
