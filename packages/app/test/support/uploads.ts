import { bearer, deviceToken } from "@telemetry/ingest/testing/auth"
import { Effect } from "effect"
import { request } from "node:http"

export interface Reply {
  readonly status: number
  readonly json: any
}

const BULK = "/api/v1/telemetry/bulk"

/**
 * POSTs `body` as it is (plain or gzip JSON, or any bytes) to the bulk endpoint with `token`, on a connection of its
 * own: a kept-alive one may be closed by the server just as it is reused, which would fail the request for nothing.
 */
export const postBytes = (base: string, body: Uint8Array | string, token: string, headers: Record<string, string> = {}) =>
  Effect.async<Reply, Error>((resume) => {
    const req = request(`${base}${BULK}`, {
      method: "POST",
      agent: false,
      timeout: 60_000,
      headers: { "content-type": "application/json", ...bearer(token), ...headers }
    }, (response) => {
      let text = ""
      response.setEncoding("utf8")
      response.on("data", (chunk) => (text += chunk))
      response.on("end", () => resume(Effect.succeed({ status: response.statusCode ?? 0, json: text === "" ? undefined : JSON.parse(text) })))
    })
    req.on("timeout", () => req.destroy(new Error("no answer within 60 s")))
    req.on("error", (e) => resume(Effect.fail(e)))
    req.end(body)
    return Effect.sync(() => req.destroy())
  }).pipe(Effect.orDie)

/**
 * POSTs `body` to `path` as a client does that asks first (`Expect: 100-continue`): the body goes only once the
 * server says to go on. Answers what the server answered, and whether it said to go on.
 */
export const askingFirst = (base: string, path: string, body: string, headers: Record<string, string> = {}) =>
  Effect.async<Reply & { readonly continued: boolean }>((resume) => {
    let continued = false
    const req = request(`${base}${path}`, {
      method: "POST",
      agent: false,
      headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), expect: "100-continue", ...headers }
    })
    req.on("continue", () => {
      continued = true
      req.end(body)
    })
    req.on("response", (response) => {
      let text = ""
      response.setEncoding("utf8")
      response.on("data", (chunk) => (text += chunk))
      response.on("end", () => resume(Effect.succeed({ status: response.statusCode ?? 0, json: text === "" ? undefined : JSON.parse(text), continued })))
    })
    req.on("error", (e) => resume(Effect.die(e)))
    req.flushHeaders()
    return Effect.sync(() => req.destroy())
  })

/** POSTs `payload` as plain JSON. */
export const postJson = (base: string, payload: unknown, token: string) => postBytes(base, JSON.stringify(payload), token)

/**
 * An upload that announces `declaredLength` (the body's own length unless given) and sends its first `bytesEach`
 * bytes (1 unless given) at once, then as many every `everyMs` (none if not given): a client that holds its
 * connection open, or a slow link. Answers what the server answered, status 0 with the error if the connection
 * failed first.
 */
export const trickle = (
  base: string,
  body: Uint8Array,
  token: string,
  options: { readonly everyMs?: number; readonly declaredLength?: number; readonly bytesEach?: number } = {}
) =>
  Effect.async<Reply>((resume) => {
    let sent = 0
    let settled = false
    let timer: ReturnType<typeof setInterval> | undefined
    const req = request(`${base}${BULK}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "content-length": String(options.declaredLength ?? body.length),
        ...bearer(token)
      }
    })
    const settle = (reply: Reply) => {
      if (settled) return
      settled = true
      clearInterval(timer)
      req.destroy()
      resume(Effect.succeed(reply))
    }
    const next = () => {
      if (sent < body.length) req.write(body.subarray(sent, (sent += options.bytesEach ?? 1)))
    }
    req.on("response", (response) => {
      let text = ""
      response.setEncoding("utf8")
      response.on("data", (chunk) => (text += chunk))
      response.on("end", () => settle({ status: response.statusCode ?? 0, json: text === "" ? undefined : JSON.parse(text) }))
    })
    // Writing on after the server answered and closed fails: the answer, if there is one, is what counts.
    req.on("error", (e) => setTimeout(() => settle({ status: 0, json: e.message }), 1_000))
    next()
    if (options.everyMs !== undefined) timer = setInterval(next, options.everyMs)
    return Effect.sync(() => {
      clearInterval(timer)
      req.destroy()
    })
  })

/**
 * POSTs a gzip body as device `device` of the tenant "default", retrying a 429 or 503 after its `Retry-After`;
 * answers the final status.
 */
export const postGzipAs = async (base: string, body: Buffer, device: string): Promise<number> => {
  const response = await fetch(`${base}${BULK}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "content-encoding": "gzip",
      "x-device-id": device,
      ...bearer(deviceToken("default", device))
    },
    body: body as unknown as BodyInit
  })
  await response.arrayBuffer()
  if (response.status !== 429 && response.status !== 503) return response.status
  await new Promise((resolve) => setTimeout(resolve, Number(response.headers.get("retry-after") ?? 1) * 1000))
  return postGzipAs(base, body, device)
}
