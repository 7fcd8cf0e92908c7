import { HttpRouter, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { freePort } from "@telemetry/testbed/FreePort"
import { Effect, Layer, Option, Stream } from "effect"
import { createServer } from "node:http"
import type { JsonRows } from "../src/analytics/JsonRows.js"
import { jsonRowsResponse } from "../src/http/jsonResponse.js"

/** Rows whose first page is `[1,2` and whose next pages are `rest`. */
const pages = (rest: Stream.Stream<Uint8Array, Error>): JsonRows<Error> => (head, tail) => ({
  first: [Buffer.from(`${head}[1,2`)],
  rest: Option.some(Stream.concat(rest, Stream.make(Buffer.from(`]${tail}`))))
})

/** A server answering GET /rows with `rows` in an envelope, on a free port. */
const serving = (rows: JsonRows<Error>) =>
  Effect.gen(function*() {
    const port = yield* Effect.promise(freePort)
    yield* Layer.build(
      HttpRouter.empty.pipe(
        HttpRouter.get("/rows", jsonRowsResponse({ period: "raw" }, "data", rows)),
        HttpServer.serve(),
        Layer.provide(NodeHttpServer.layer(createServer, { port }))
      )
    )
    return `http://127.0.0.1:${port}/rows`
  })

describe("an answer sent page by page", () => {
  it.scopedLive("is the envelope and every page's rows, in chunks", () =>
    Effect.gen(function*() {
      const url = yield* serving(pages(Stream.make(Buffer.from(",3"), Buffer.from(",4"))))
      const response = yield* Effect.promise(() => fetch(url))
      expect(response.headers.get("transfer-encoding")).toBe("chunked")
      expect(yield* Effect.promise(() => response.json())).toEqual({ period: "raw", data: [1, 2, 3, 4] })
    }))

  it.scopedLive("is cut short, the connection dropped, when its next rows cannot be read", () =>
    Effect.gen(function*() {
      // After the time a query takes: the first page has gone out with the status.
      const url = yield* serving(pages(Stream.concat(Stream.execute(Effect.sleep("100 millis")), Stream.fail(new Error("the database went away")))))
      const response = yield* Effect.promise(() => fetch(url))
      expect(response.status).toBe(200)
      // Not a complete body that lacks rows: reading it fails.
      const read = yield* Effect.promise(() => response.text().then(() => "complete", (e: Error) => `failed: ${e.message}`))
      expect(read).toMatch(/^failed/)
    }))
})
