import { describe, expect, it } from "@effect/vitest"
import { haPayload } from "@telemetry/domain/testing"
import { inMemoryStore } from "@telemetry/infra/testing"
import { freePort } from "@telemetry/testbed/FreePort"
import { Deferred, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { Agent, type IncomingMessage, request as httpRequest } from "node:http"
import { bearer, deviceToken } from "./support/auth.js"
import { serverOn } from "./support/server.js"

describe("graceful shutdown of the HTTP server", () => {
  it.live("an upload in flight is answered, with its kept-alive connection closed after: nothing holds the server to its deadline", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(serverOn(inMemoryStore(1000), port, { SHUTDOWN_TIMEOUT: "1 hour" }), scope)
      const body = Buffer.from(JSON.stringify(haPayload("shutdown-eq")))
      // A client that keeps its connections alive, to send its next request on the same one.
      const agent = new Agent({ keepAlive: true })
      const answered = yield* Deferred.make<IncomingMessage>()
      const socketClosed = yield* Deferred.make<void>()
      const upload = httpRequest(`http://127.0.0.1:${port}/api/v1/telemetry/bulk`, {
        method: "POST",
        agent,
        headers: { "content-type": "application/json", ...bearer(deviceToken()) }
      }, (response) => {
        response.socket.once("close", () => Deferred.unsafeDone(socketClosed, Exit.void))
        response.resume()
        response.once("end", () => Deferred.unsafeDone(answered, Exit.succeed(response)))
      })
      upload.write(body.subarray(0, 100))
      yield* Effect.sleep("300 millis")
      // Shutdown begins while the upload is in flight.
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* Effect.sleep("300 millis")
      upload.end(body.subarray(100))
      const response = yield* Deferred.await(answered)
      expect([response.statusCode, response.headers.connection]).toEqual([202, "close"])
      yield* Deferred.await(socketClosed)
      yield* Fiber.join(closing)
      agent.destroy()
    }), { timeout: 60_000 })
})
