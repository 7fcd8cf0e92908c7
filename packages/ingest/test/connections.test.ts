import { describe, expect, it } from "@effect/vitest"
import { inMemoryStore } from "@telemetry/infra/testing"
import { freePort } from "@telemetry/testbed/FreePort"
import { Effect, Layer } from "effect"
import { connect, type Socket } from "node:net"
import { serverOn } from "./support/server.js"

/** A connection to the server from `localAddress`, with what it received and whether it was closed. */
const connection = (port: number, localAddress: string) =>
  Effect.async<{ readonly socket: Socket; readonly received: () => string; readonly closed: Promise<void> }>((resume) => {
    let received = ""
    let closed!: () => void
    const done = new Promise<void>((resolve) => (closed = resolve))
    const socket = connect({ port, host: "127.0.0.1", localAddress }, () =>
      resume(Effect.succeed({ socket, received: () => received, closed: done })))
    socket.on("data", (chunk) => (received += chunk.toString("latin1")))
    socket.on("close", () => closed())
    socket.on("error", () => undefined)
  })

/** The status line of the answer to a health request sent on `socket`. */
const healthOn = (c: Effect.Effect.Success<ReturnType<typeof connection>>) =>
  Effect.promise(async () => {
    c.socket.write("GET /api/v1/health HTTP/1.1\r\nhost: x\r\n\r\n")
    for (let i = 0; i < 100 && !c.received().includes("\r\n"); i++) await new Promise((r) => setTimeout(r, 50))
    return c.received().split("\r\n")[0]
  })

const within = (closed: Promise<void>, millis: number) =>
  Effect.promise(() => Promise.race([closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), millis))]))

describe("connection limits", () => {
  it.scopedLive("an address holding MAX_CONNECTIONS_PER_ADDRESS connections gets no more (closed unread); another address does; a closed one frees its place", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      yield* Layer.build(serverOn(inMemoryStore(1000), port, { MAX_CONNECTIONS_PER_ADDRESS: "2", HEADERS_TIMEOUT: "1 hour" }))
      const [first, second] = [yield* connection(port, "127.0.0.2"), yield* connection(port, "127.0.0.2")]
      const third = yield* connection(port, "127.0.0.2")
      expect(yield* within(third.closed, 5000)).toBe(true)
      expect(third.received()).toBe("")
      // The two held are served, and so is another address.
      expect(yield* healthOn(first)).toBe("HTTP/1.1 200 OK")
      expect(yield* healthOn(yield* connection(port, "127.0.0.3"))).toBe("HTTP/1.1 200 OK")
      first.socket.destroy()
      yield* Effect.promise(() => first.closed)
      // The server has seen it close once a new connection is served.
      yield* Effect.sleep("200 millis")
      expect(yield* healthOn(yield* connection(port, "127.0.0.2"))).toBe("HTTP/1.1 200 OK")
      expect(yield* within(second.closed, 100)).toBe(false)
    }), { timeout: 60_000 })

  it.scopedLive("a login whose body has not come whole within HEADERS_TIMEOUT of its headers has its connection closed; a whole one is answered", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      yield* Layer.build(serverOn(inMemoryStore(1000), port, { HEADERS_TIMEOUT: "1 second" }))
      const login = (body: string, sent: string) =>
        `POST /api/v1/auth/device/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${sent}`
      const body = JSON.stringify({ username: "nobody", password: "wrong-password" })
      const trickling = yield* connection(port, "127.0.0.5")
      trickling.socket.write(login(body, body.slice(0, 5)))
      expect(yield* within(trickling.closed, 15_000)).toBe(true)
      expect(trickling.received()).toBe("")
      const whole = yield* connection(port, "127.0.0.5")
      whole.socket.write(login(body, body))
      // However long its password check takes (past the timeout under load): its body came whole.
      const answer = yield* Effect.sync(whole.received).pipe(
        Effect.delay("100 millis"),
        Effect.repeat({ until: (text) => text.includes("\r\n") }),
        Effect.timeout("20 seconds")
      )
      expect(answer).toMatch(/^HTTP\/1\.1 401 /)
    }), { timeout: 60_000 })

  it.scopedLive("a connection that sends no complete request headers within HEADERS_TIMEOUT is answered 408 and closed", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      yield* Layer.build(serverOn(inMemoryStore(1000), port, { HEADERS_TIMEOUT: "1 second" }))
      const idle = yield* connection(port, "127.0.0.4")
      const partial = yield* connection(port, "127.0.0.4")
      partial.socket.write("GET /api/v1/health HTTP/1.1\r\nhost: x\r\n")
      for (const c of [idle, partial]) {
        expect(yield* within(c.closed, 15_000)).toBe(true)
        expect(c.received()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n[\s\S]*"error":"request_timeout"/)
      }
    }), { timeout: 60_000 })

  it.scopedLive("a connection is kept open idle for KEEP_ALIVE_TIMEOUT after an answer (longer than Node's 5 s by default), then closed", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      yield* Layer.build(serverOn(inMemoryStore(1000), port, {}))
      const kept = yield* connection(port, "127.0.0.6")
      expect(yield* healthOn(kept)).toBe("HTTP/1.1 200 OK")
      yield* Effect.sleep("6 seconds")
      kept.socket.write("GET /api/v1/health HTTP/1.1\r\nhost: x\r\n\r\n")
      yield* Effect.sleep("1 second")
      expect(kept.received().match(/HTTP\/1\.1 \d+ [A-Za-z ]+/g)).toEqual(["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"])

      const shortPort = yield* Effect.promise(freePort)
      yield* Layer.build(serverOn(inMemoryStore(1000), shortPort, { KEEP_ALIVE_TIMEOUT: "1 second" }))
      const closed = yield* connection(shortPort, "127.0.0.7")
      expect(yield* healthOn(closed)).toBe("HTTP/1.1 200 OK")
      expect(yield* within(closed.closed, 5000)).toBe(true)
    }), { timeout: 60_000 })
})
