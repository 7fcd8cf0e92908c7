import { HttpServerResponse } from "@effect/platform"

/**
 * `body` as a JSON response whose string goes to Node as it is: Node writes a string to the socket in one native
 * step, where `HttpServerResponse.unsafeJson` first copies it into a Uint8Array with a TextEncoder — for an
 * answer of thousands of rows, as long again as the `JSON.stringify` itself.
 */
export const jsonResponse = (body: unknown) => {
  const text = JSON.stringify(body)
  return HttpServerResponse.raw(text, { contentType: "application/json", contentLength: Buffer.byteLength(text) })
}

const CLOSE = Buffer.from("}")

/** `envelope` with a last member `key` whose value is `rows`, JSON already (UTF-8, analytics/JsonRows). */
export const jsonRowsResponse = (envelope: object, key: string, rows: Uint8Array) => {
  const body = Buffer.concat([Buffer.from(`${JSON.stringify(envelope).slice(0, -1)},${JSON.stringify(key)}:`), rows, CLOSE])
  return HttpServerResponse.raw(body, { contentType: "application/json", contentLength: body.length })
}
