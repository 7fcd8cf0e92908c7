import { HttpServerResponse } from "@effect/platform"
import { Stream } from "effect"
import type { JsonRows } from "../analytics/JsonRows.js"

/**
 * `body` as a JSON response whose string goes to Node as it is: Node writes a string to the socket in one native
 * step, where `HttpServerResponse.unsafeJson` first copies it into a Uint8Array with a TextEncoder — for an
 * answer of thousands of rows, as long again as the `JSON.stringify` itself.
 */
export const jsonResponse = (body: unknown) => {
  const text = JSON.stringify(body)
  return HttpServerResponse.raw(text, { contentType: "application/json", contentLength: Buffer.byteLength(text) })
}

/** `envelope` with a last member `key` whose value is `rows` (analytics/JsonRows), sent as the rows' chunks. */
export const jsonRowsResponse = (envelope: object, key: string, rows: JsonRows) => {
  const chunks = rows(`${JSON.stringify(envelope).slice(0, -1)},${JSON.stringify(key)}:`, "}")
  const contentLength = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0)
  const options = { contentType: "application/json", contentLength }
  return chunks.length === 1
    ? HttpServerResponse.raw(chunks[0], options)
    : HttpServerResponse.stream(Stream.fromIterable(chunks), options)
}
