import {
  HttpApiBuilder,
  HttpApiError,
  HttpIncomingMessage,
  HttpRouter,
  HttpServer,
  HttpServerError,
  HttpServerRequest,
  type HttpServerResponse
} from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { SqlError } from "@effect/sql/SqlError"
import * as DatabaseErrors from "@telemetry/infra/db/DatabaseErrors"
import { portSetting, ShutdownTimeout } from "@telemetry/domain"
import { Cause, Duration, Effect, flow, Layer, Option, Runtime } from "effect"
import { createServer, type ServerResponse, STATUS_CODES } from "node:http"
import type { Duplex } from "node:stream"
import { AccountsUnavailable } from "../auth/Accounts.js"
import * as AnalyticsHandlers from "./AnalyticsHandlers.js"
import * as Auth from "./Auth.js"
import * as AuthHandlers from "./AuthHandlers.js"
import * as ConsoleHandlers from "../console/ConsoleHandlers.js"
import * as Connections from "./Connections.js"
import { TelemetryApi } from "./Api.js"
import { isUploadUrl } from "./IngestApi.js"
import { databaseUnavailable, errorResponse, InternalError, InvalidBody, InvalidParameter, NotFound, RETRY_SOON, TooLarge, Unauthorized, UnsupportedMediaType } from "./errors.js"
import * as HealthHandlers from "./HealthHandlers.js"
import * as HttpMetrics from "./HttpMetrics.js"
import * as IngestHandlers from "./IngestHandlers.js"
import { notJson } from "./jsonContent.js"
import * as MethodNotAllowed from "./MethodNotAllowed.js"
import * as MetricsRoute from "./MetricsRoute.js"
import * as RequestLog from "./RequestLog.js"
import * as SwaggerDocs from "./SwaggerDocs.js"

const failureOf = (cause: Cause.Cause<unknown>) => Option.getOrUndefined(Cause.failureOption(cause))

/**
 * A route's database failing (refused, reset, timed out, restarting), which ends when it recovers: 503 to retry,
 * not the 500 of a fault of ours. A statement the database refuses for what it holds stays a 500.
 */
const databaseDown = (defect: unknown): defect is SqlError | AccountsUnavailable =>
  (defect instanceof SqlError || defect instanceof AccountsUnavailable) && DatabaseErrors.isTransient(defect)

const decodable = (url: string) => {
  try {
    decodeURIComponent(url)
    return true
  } catch {
    return false
  }
}

/**
 * A URL that is not percent-encoded UTF-8 is the client's mistake, in its path (which no route would match) or its
 * query (whose parameters would be read with U+FFFD in place of what was meant).
 */
const wellFormedUrls = <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    decodable(request.url)
      ? app
      : Effect.succeed(errorResponse(
        new InvalidParameter({ message: "the URL is not percent-encoded UTF-8 (or holds a lone surrogate)" })
      )))

/** How many times a URL's query string gives the parameter `name`. */
const timesGiven = (url: string, name: string) => new URL(url, "http://localhost").searchParams.getAll(name).length

/**
 * Bodies the API reads whole to decode them (logins, account administration): small JSON. Uploads stream past it
 * (IngestHandlers reads them itself, under MAX_BODY_BYTES).
 */
const MAX_DECODED_BODY_BYTES = 64 * 1024
const bodyTooLarge = new TooLarge({ message: `the body is over ${MAX_DECODED_BODY_BYTES} bytes` })

/**
 * Refuses a body that is not JSON, or is encoded (415), and one declared over MAX_DECODED_BODY_BYTES before it is
 * read: answered without `connection: close`, Node reads the rest and drops it, and the client gets its 413 (closed
 * on it, a client still sending may see a reset instead). A body that says not its length is cut once over the
 * limit, by closing the connection.
 */
const limitDecodedBodies = <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    if (isUploadUrl(request.url)) return app
    const { headers } = request
    const declared = Number(headers["content-length"] ?? 0)
    const hasBody = declared > 0 || headers["transfer-encoding"] !== undefined
    // JSON, as the API describes them: a form a foreign page posts (a login) is not read as one.
    const wrongType = hasBody ? notJson(headers["content-type"]) : undefined
    if (wrongType !== undefined) return Effect.succeed(errorResponse(wrongType))
    if (hasBody && (headers["content-encoding"] ?? "identity").trim().toLowerCase() !== "identity") {
      return Effect.succeed(errorResponse(
        new UnsupportedMediaType({ message: `Content-Encoding must be absent here, got "${headers["content-encoding"]}"` })
      ))
    }
    return declared > MAX_DECODED_BODY_BYTES
      ? Effect.succeed(errorResponse(bodyTooLarge))
      : HttpIncomingMessage.withMaxBodySize(app, Option.some(MAX_DECODED_BODY_BYTES))
  })

/** The longest parameter refusal: a schema's message quotes the value it refused, which may be 60 KB of a username. */
const MAX_REFUSAL = 300
const bounded = (message: string) => (message.length > MAX_REFUSAL ? `${message.slice(0, MAX_REFUSAL - 1)}…` : message)

/**
 * Failures the API does not encode itself get the contract's JSON error body: parameters that fail their schema
 * (400, naming the first offending one), a body that is not JSON (400, without its text: it may hold a password) or
 * over MAX_DECODED_BODY_BYTES (413), unknown routes (404), the database failing (503, logged) and defects (500,
 * logged). A 401 gets the
 * `WWW-Authenticate: Bearer` header (RFC 6750), which the API's encoder cannot add. Other declared errors pass on
 * to the API's encoder.
 */
const contractErrors = HttpApiBuilder.middleware((app) =>
  Effect.catchAllCause(wellFormedUrls(limitDecodedBodies(app)), (cause) => {
    const failure = failureOf(cause)
    // The API decodes a body it cannot read or parse as a defect.
    const unread = Option.getOrUndefined(Cause.dieOption(cause))
    if (unread instanceof HttpServerError.RequestError && unread.reason === "Decode") {
      return Effect.succeed(errorResponse(
        (unread.cause as Error | undefined)?.message === "maxBytes exceeded"
          ? bodyTooLarge
          : new InvalidBody({ message: "the body is not valid JSON" })
      ))
    }
    if (failure instanceof HttpApiError.HttpApiDecodeError) {
      const [issue] = failure.issues
      const path = issue?.path.map(String).join(".") || undefined
      // A parameter given twice is read as a list, which no parameter's schema takes: say so, not what one holds.
      return Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
        const given = path === undefined ? 0 : timesGiven(request.url, path)
        const message = `${path ? `${path}: ` : ""}${given > 1 ? `given ${given} times; give it once` : issue?.message ?? "invalid"}`
        return errorResponse(new InvalidParameter({ message: bounded(message), path }))
      })
    }
    if (failure instanceof Unauthorized) {
      return Effect.succeed(errorResponse(failure, { "www-authenticate": "Bearer" }))
    }
    if (failure instanceof HttpServerError.RouteNotFound) {
      return Effect.succeed(errorResponse(new NotFound({ message: "no such route" })))
    }
    if (failure !== undefined || Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
    if (databaseDown(unread)) return databaseUnavailable(unread)
    return Effect.as(Effect.logError("request failed", cause), errorResponse(new InternalError({ message: "internal error" })))
  }))

const handlers = Layer.mergeAll(IngestHandlers.layer, AnalyticsHandlers.layer, HealthHandlers.layer, AuthHandlers.layer, ConsoleHandlers.layer).pipe(
  Layer.provide(Auth.layer)
)

/**
 * Headers of every answer, unless it sets its own (the console's files are revalidated, not unstored): no sniffing
 * of its type, no framing by another page (the docs), and nothing stored by a browser or proxy (tokens, a tenant's
 * data).
 */
const DEFAULT_HEADERS = { "x-content-type-options": "nosniff", "x-frame-options": "DENY", "cache-control": "no-store" }

/** The headers of a JSON error answered outside the API, after which the connection is closed. */
const closingJsonHeaders = (body: string) => ({
  ...DEFAULT_HEADERS,
  "content-type": "application/json",
  "content-length": Buffer.byteLength(body),
  connection: "close"
})

/**
 * Node answers a request it cannot parse (headers over its limit, malformed HTTP, headers too slow) itself, with an
 * empty body: the contract's JSON error instead, with the headers of every answer.
 */
const answerUnparsed = (error: NodeJS.ErrnoException, socket: Duplex) => {
  if (error.code === "ECONNRESET" || !socket.writable) return socket.destroy()
  const [status, code, message] = error.code === "HPE_HEADER_OVERFLOW"
    ? [431, "headers_too_large", "the request's headers are over the server's limit"]
    : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
    ? [408, "request_timeout", "the request's headers did not come in time"]
    : [400, "invalid_request", "the request is not valid HTTP/1.1"]
  const body = JSON.stringify({ error: code, message })
  const headers = closingJsonHeaders(body)
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
      Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("") + `\r\n${body}`
  )
}

/**
 * The Node HTTP server on `PORT`, stopped gracefully: on shutdown it takes no new connections and the requests in
 * flight finish (their uploads are stored and queued, their clients answered) before storage and queue close;
 * whatever still runs after `SHUTDOWN_TIMEOUT` is cut off, which interrupts it: its upload is not stored and its
 * client, not answered, sends it again.
 */
const nodeServer = Layer.scoped(
  HttpServer.HttpServer,
  Effect.gen(function*() {
    const port = yield* portSetting("PORT", 8080)
    const timeout = yield* ShutdownTimeout
    const limits = yield* Connections.ConnectionLimits
    // Node keeps a connection alive after the answers it gives while closing: its client's next request on it would
    // hold the server open until the deadline. So every answer given from then on closes its connection.
    let stopping = false
    const unanswered = new Set<ServerResponse>()
    const closeAfterAnswer = (response: ServerResponse) => {
      if (!response.headersSent) response.setHeader("connection", "close")
    }
    // The server listens before the API's handler is installed: a request in between would wait for ever, so it
    // is answered 503 instead — once the handler is there (a second listener), it answers alone.
    const server = createServer(Connections.serverOptions(limits), (request, response) => {
      Connections.holdSmallBody(request, response, limits.headersTimeout)
      for (const [name, value] of Object.entries(DEFAULT_HEADERS)) response.setHeader(name, value)
      if (stopping) closeAfterAnswer(response)
      else {
        unanswered.add(response)
        response.once("close", () => unanswered.delete(response))
      }
      if (server.listenerCount("request") > 1) return
      request.resume()
      response.writeHead(503, { "content-type": "application/json", ...RETRY_SOON })
      response.end(JSON.stringify(
        stopping
          ? { error: "stopping", message: "the server is stopping, retry shortly" }
          : { error: "starting", message: "the server is starting, retry shortly" }
      ))
    })
    server.on("clientError", answerUnparsed)
    // A client that asks before sending its body (`Expect: 100-continue`, as curl does for large ones) is told to
    // go on once its upload is read: one refused first (no token, the queue down, over its rate) is answered before
    // a byte of it is sent. Other routes read their small bodies whole: told at once, as Node would.
    server.on("checkContinue", (request, response) => {
      if (!isUploadUrl(request.url)) response.writeContinue()
      server.emit("request", request, response)
    })
    // An expectation other than 100-continue is refused, as Node would (417), but with the contract's JSON error and
    // the headers of every answer, where Node's own answer had neither.
    server.on("checkExpectation", (request, response) => {
      request.resume()
      const body = JSON.stringify({
        error: "expectation_failed",
        message: `Expect: ${String(request.headers.expect).slice(0, 64)} cannot be met; only 100-continue can`
      })
      response.writeHead(417, closingJsonHeaders(body)).end(body)
    })
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    Connections.limit(server, limits, (message) => runFork(Effect.logWarning(message)))
    const http = yield* NodeHttpServer.make(() => server, { port })
    // Added after the server's own close, so it runs first: the deadline starts when closing does.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        stopping = true
        unanswered.forEach(closeAfterAnswer)
        setTimeout(() => {
          if (unanswered.size > 0) {
            runFork(Effect.logWarning(
              `shutdown: ${unanswered.size} request(s) still unanswered after SHUTDOWN_TIMEOUT (${Duration.format(timeout)}) ` +
                "are cut off; their clients, unanswered, send them again"
            ))
          }
          server.closeAllConnections()
        }, Duration.toMillis(timeout)).unref()
      })
    )
    return http
  })
).pipe(Layer.merge(NodeHttpServer.layerContext))

/**
 * The HTTP API on `PORT` (default 8080), its OpenAPI document and Swagger UI; needs the Ingest, Analytics and
 * Tokens services, and the MetricsExposition that GET /metrics serves. Ingest takes device tokens, analytics reader
 * tokens; health and the documents are open.
 */
const DOCS_PATH = "/api/v1/docs"
const OPENAPI_PATH = "/api/v1/openapi.json"

export const layer = HttpApiBuilder.serve(flow(HttpMetrics.middleware, RequestLog.middleware)).pipe(
  Layer.provide(SwaggerDocs.layer(DOCS_PATH)),
  Layer.provide(MetricsRoute.layer),
  Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: OPENAPI_PATH })),
  Layer.provide(MethodNotAllowed.layer([DOCS_PATH, OPENAPI_PATH, MetricsRoute.METRICS_PATH])),
  Layer.provide(contractErrors),
  Layer.provide(HttpApiBuilder.api(TelemetryApi).pipe(Layer.provide(handlers))),
  HttpServer.withLogAddress,
  // Path parameters hold uuids of up to 128 characters, percent-encoded: up to 12 bytes each (the router's
  // default, 100, would answer 404 for a uuid that ingest accepted). Any longer one the URL can hold (Node's 16 KiB
  // of headers) is matched too, so that its schema refuses it with 400 and its reason, not 404.
  Layer.provide(HttpRouter.setRouterConfig({ maxParamLength: 16 * 1024 })),
  Layer.provide(nodeServer)
)
