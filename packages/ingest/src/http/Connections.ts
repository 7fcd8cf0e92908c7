import { integerConfig, integerSetting, positiveDuration } from "@telemetry/domain"
import { Config, Duration, Effect, Option } from "effect"
import type { IncomingMessage, Server, ServerResponse } from "node:http"
import { countedAddress } from "../auth/AuthLimits.js"
import { TrustedProxyHops } from "./Auth.js"
import { isUploadUrl } from "./IngestApi.js"

/**
 * How many connections the server holds, and how long one may take to send its request's headers: each connection
 * is a file descriptor, and a client holding thousands of them idle (or sending headers a byte at a time) left none
 * for storage's files, failing every tenant's uploads.
 */
const ConnectionSettings = Config.all({
  /** Connections open at once in all; past it new ones are closed at once. */
  total: integerSetting("MAX_CONNECTIONS", 10_000, { min: 1 }),
  /**
   * Connections one client address (an IPv6 one by its /64) may hold open at once; 0: no limit. By default 256, or
   * none behind `TRUSTED_PROXY_HOPS` proxies, whose own address every connection comes from.
   */
  perAddress: Config.option(integerConfig("MAX_CONNECTIONS_PER_ADDRESS", { min: 0 })),
  /** How long a connection may take to send a request's headers, from its first byte (an idle one: keepAliveTimeout). */
  headersTimeout: positiveDuration("HEADERS_TIMEOUT", Duration.seconds(15)),
  /**
   * How long a connection is kept open, idle, after an answer. Node's default (5 s) is shorter than its clients'
   * own (aiohttp's 15 s, Go's 90 s, none for urllib3): a client sending its next request just as the server closed
   * the connection had it reset (ECONNRESET), its request unanswered. Longer than most clients', they close first.
   */
  keepAliveTimeout: positiveDuration("KEEP_ALIVE_TIMEOUT", Duration.seconds(65))
})

/** The limits in force: `MAX_CONNECTIONS_PER_ADDRESS` as set, else 256, or none behind proxies. */
export const ConnectionLimits = Effect.gen(function*() {
  const { headersTimeout, keepAliveTimeout, perAddress, total } = yield* ConnectionSettings
  const hops = yield* TrustedProxyHops
  return { total, perAddress: Option.getOrElse(perAddress, () => (hops > 0 ? 0 : 256)), headersTimeout, keepAliveTimeout }
})

/** How often Node looks for connections past their headers' timeout. */
const CHECK_INTERVAL_MS = 1000
/** A refused connection is logged at most this often (a flood would write a line for each). */
const WARN_EVERY_MS = 30_000

/**
 * The options of `http.createServer`: a connection's headers held to their timeout, an idle one kept to its, and no
 * limit on a whole request's time — Node's default (5 minutes) cut every upload that took longer, however fast its
 * bytes came; uploads are held to `MIN_BODY_RATE` instead.
 */
export const serverOptions = (limits: { readonly headersTimeout: Duration.Duration; readonly keepAliveTimeout: Duration.Duration }) => ({
  headersTimeout: Duration.toMillis(limits.headersTimeout),
  keepAliveTimeout: Duration.toMillis(limits.keepAliveTimeout),
  requestTimeout: 0,
  connectionsCheckingInterval: CHECK_INTERVAL_MS
})

/**
 * Holds `server` to the limits: past `total` connections Node closes new ones; past `perAddress` from one client
 * address, a new one is closed before anything is read from it. `warn` reports refusals, at most once in 30 s.
 */
export const limit = (
  server: Server,
  limits: { readonly total: number; readonly perAddress: number },
  warn: (message: string) => void
) => {
  server.maxConnections = limits.total
  if (limits.perAddress === 0) return
  const open = new Map<string, number>()
  let refused = 0
  let warnedAt = 0
  server.on("connection", (socket) => {
    const address = countedAddress(socket.remoteAddress ?? "")
    const count = open.get(address) ?? 0
    if (count >= limits.perAddress) {
      socket.destroy()
      refused++
      const now = Date.now()
      if (now - warnedAt >= WARN_EVERY_MS) {
        warn(
          `connections refused: ${refused} from addresses holding MAX_CONNECTIONS_PER_ADDRESS (${limits.perAddress}) ` +
            `open already, the last from ${address}`
        )
        warnedAt = now
        refused = 0
      }
      return
    }
    open.set(address, count + 1)
    socket.once("close", () => {
      const left = open.get(address)! - 1
      if (left === 0) open.delete(address)
      else open.set(address, left)
    })
  })
}

/**
 * A request other than an upload — a login, an account's change: small bodies — whose body has not come whole
 * within `timeout` of its headers, and that is not answered yet, has its connection closed: a login trickling its
 * body would hold it for ever (uploads are held to `MIN_BODY_RATE` instead).
 */
export const holdSmallBody = (request: IncomingMessage, response: ServerResponse, timeout: Duration.Duration) => {
  if (isUploadUrl(request.url)) return
  const timer = setTimeout(() => {
    if (!request.complete) request.socket.destroy()
  }, Duration.toMillis(timeout)).unref()
  response.once("close", () => clearTimeout(timer))
}
