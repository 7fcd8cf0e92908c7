import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { Chunk, Effect, Option, Stream } from "effect"
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

/**
 * `envelope` with a last member `key` whose value is `rows` (analytics/JsonRows), sent as the rows' chunks: with
 * its length when they are all there, else as the client takes them. Should reading the next rows fail then, the
 * status is already sent: the connection is dropped (logged), so that the client sees an answer cut short rather
 * than a complete one missing rows.
 */
export const jsonRowsResponse = <E>(envelope: object, key: string, rows: JsonRows<E>) =>
  Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
    const { first, rest } = rows(`${JSON.stringify(envelope).slice(0, -1)},${JSON.stringify(key)}:`, "}")
    if (Option.isSome(rest)) {
      return HttpServerResponse.stream(
        Stream.concat(Stream.fromChunk(Chunk.unsafeFromArray(first as Array<Uint8Array>)), rest.value).pipe(
          Stream.tapErrorCause((cause) =>
            Effect.zipRight(
              Effect.logError("an answer was cut short: its next rows could not be read", cause),
              Effect.sync(() => NodeHttpServerRequest.toServerResponse(request).destroy())
            )
          )
        ),
        { contentType: "application/json" }
      )
    }
    const contentLength = first.reduce((sum, chunk) => sum + chunk.byteLength, 0)
    const options = { contentType: "application/json", contentLength }
    return first.length === 1
      ? HttpServerResponse.raw(first[0], options)
      : HttpServerResponse.stream(Stream.fromIterable(first), options)
  })
