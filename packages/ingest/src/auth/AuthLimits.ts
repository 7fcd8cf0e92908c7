import * as RateLimiter from "@effect/experimental/RateLimiter"
import { integerSetting, positiveDuration } from "@telemetry/domain"
import { Config, Data, Deferred, Duration, Effect, Option } from "effect"
import ipaddr from "ipaddr.js"
import * as RateLimitStore from "../limits/RateLimitStore.js"
import type { AccountKind } from "./Accounts.js"
import type { Principal } from "./Tokens.js"

/** Over a limit: the client may try again after `retryAfter`. */
export class Limited extends Data.TaggedError("Limited")<{
  readonly message: string
  readonly retryAfter: Duration.Duration
}> {}

const AuthLimitsConfig = Config.all({
  /** Analytics requests one reader token (tenant and subject) may make per window, bursts up to it; 0: no limit. */
  perReader: integerSetting("RATE_LIMIT_PER_READER", 600, { min: 0 }),
  /** Requests without a valid token one client address may make per window before they get 429 instead of 401. */
  unauthenticated: integerSetting("RATE_LIMIT_UNAUTHENTICATED", 60, { min: 0 }),
  window: positiveDuration("RATE_LIMIT_WINDOW", Duration.minutes(1)),
  /** Failed logins one username, or one client address, may make per lockout window before logins are refused. */
  loginFailures: integerSetting("LOGIN_MAX_FAILURES", 10, { min: 0 }),
  lockout: positiveDuration("LOGIN_LOCKOUT_WINDOW", Duration.minutes(15))
})

/** How long a successful login keeps its account known at its address, renewed at each success. */
const KNOWN_FOR = Duration.days(7)
/** The most (account, address) pairs kept known, the oldest dropped first, so that logins cannot grow the process. */
const MAX_KNOWN = 100_000

/**
 * Keys that cannot collide whatever the names hold (tenant `a/b` + `c` is not `a` + `b/c`), each limit under a
 * name of its own.
 */
export const keyOf = (limit: string, ...parts: ReadonlyArray<string>) => JSON.stringify([limit, ...parts])

/**
 * What a client address is counted as: an IPv4 address as it is (an IPv4-mapped IPv6 one too), an IPv6 address by
 * its /64, since one host is given a whole /64 and counting its addresses one by one would limit nothing.
 */
export const countedAddress = (address: string) => {
  if (!ipaddr.isValid(address)) return address
  const parsed = ipaddr.process(address)
  return parsed.kind() === "ipv4"
    ? parsed.toString()
    : `${ipaddr.IPv6.networkAddressFromCIDR(`${parsed.toString()}/64`).toString()}/64`
}

/**
 * The limits around authentication, counted per process (behind N ingest instances a client gets up to N times
 * them): a rate per reader token on analytics; a rate per client address of requests without a valid token, so
 * that guessing tokens or hammering the API without one is slowed; and a lockout of logins after repeated failures
 * per username and per address, so that passwords cannot be guessed at speed. An account that logged in from an
 * address is known there: neither lockout refuses it there, only failures of that pair itself, so that a stranger
 * who knows a username, or a broken device behind the same NAT, cannot lock a working device out.
 */
export class AuthLimits extends Effect.Service<AuthLimits>()("@telemetry/AuthLimits", {
  effect: Effect.gen(function*() {
    const config = yield* AuthLimitsConfig
    const limiter = yield* RateLimiter.RateLimiter

    /** Takes one token of `key`'s bucket, failing once it is empty. */
    const take = (key: string, limit: number, window: Duration.Duration, what: string) =>
      limit <= 0
        ? Effect.void
        : limiter.consume({ algorithm: "token-bucket", key, limit, window }).pipe(
          Effect.catchAll((e) =>
            e.reason === "Exceeded"
              ? Effect.fail(new Limited({ message: what, retryAfter: e.retryAfter }))
              // The in-memory store does not fail; were it remote, a broken limiter must not stop requests.
              : Effect.logWarning(`rate limit not checked: ${e.message}`)
          ),
          Effect.asVoid
        )

    const reader = (principal: Principal) =>
      take(
        keyOf("reader rate", principal.tenantId, principal.subject),
        config.perReader,
        config.window,
        `reader "${principal.subject}" is over its limit of ${config.perReader} requests per ${Duration.format(config.window)}`
      )

    const unauthenticated = (peer: string) => {
      const address = countedAddress(peer)
      return take(
        keyOf("unauthenticated", address),
        config.unauthenticated,
        config.window,
        `too many requests without a valid token from ${address}: at most ${config.unauthenticated} per ` +
          Duration.format(config.window)
      )
    }

    // Failed logins count in a window that starts with the first of them; once `loginFailures` are in, logins stop
    // until it ends (a fixed window: each failure extends it by lockout / loginFailures).
    const keysOf = (kind: AccountKind, username: string, address: string) => {
      const counted = countedAddress(address)
      return {
        // The address first: a locked-out address then adds no counter per username it tries.
        shared: [keyOf("login failures from address", counted), keyOf("login failures of user", kind, username)],
        pair: keyOf("login failures of known login", kind, username, counted)
      }
    }
    const failureWindow = (key: string, tokens: number) =>
      limiter.consume({ algorithm: "fixed-window", key, limit: config.loginFailures, window: config.lockout, tokens })

    // The pairs of successful logins, each with when it is forgotten. A Map keeps the order of insertion and a
    // success inserts its pair anew, so the first entries are the oldest: those expired or over MAX_KNOWN go first.
    const known = new Map<string, number>()
    const isKnown = (pair: string) =>
      Effect.clockWith((clock) => Effect.sync(() => (known.get(pair) ?? 0) > clock.unsafeCurrentTimeMillis()))

    // Attempts under way per key, each a failure to be: a burst of guesses sent at once must not all pass the check
    // before the first of their failures is counted (80 at once got 76 hashed, the right password among them). An
    // attempt is let through while the key's remaining failures exceed the attempts under way on it; past that it
    // waits for one to end (a success leaves room, a failure may lock the key out), so that the devices of one NAT
    // logging in together are not refused, only taken in turns. `checking` makes each check and its reservation one
    // step; `attemptEnded` is completed, and replaced, as each attempt ends.
    const checking = yield* Effect.makeSemaphore(1)
    const underWay = new Map<string, number>()
    let attemptEnded = yield* Deferred.make<void>()

    const lockedOut = (resetAfter: Duration.Duration) =>
      new Limited({
        message: `too many failed logins for this username or from this address; try again in ${
          Duration.format(Duration.seconds(Math.ceil(Duration.toSeconds(resetAfter))))
        }`,
        retryAfter: resetAfter
      })

    /** Reserves an attempt on `keys`; or, when one of them has no room for it yet, the end of an attempt to await. */
    const reserve = (keys: ReadonlyArray<string>) =>
      checking.withPermits(1)(Effect.gen(function*() {
        for (const key of keys) {
          const window = yield* failureWindow(key, 0).pipe(
            Effect.catchTag("RateLimiterError", (e) => Effect.as(Effect.logWarning(`login lockout not checked: ${e.message}`), undefined))
          )
          if (window === undefined) continue
          if (window.remaining <= 0) return yield* lockedOut(window.resetAfter)
          if (window.remaining <= (underWay.get(key) ?? 0)) return Option.some(attemptEnded)
        }
        for (const key of keys) underWay.set(key, (underWay.get(key) ?? 0) + 1)
        return Option.none()
      }))

    const release = (keys: ReadonlyArray<string>) =>
      checking.withPermits(1)(Effect.gen(function*() {
        for (const key of keys) {
          const left = (underWay.get(key) ?? 1) - 1
          if (left > 0) underWay.set(key, left)
          else underWay.delete(key)
        }
        const ended = attemptEnded
        attemptEnded = yield* Deferred.make<void>()
        yield* Deferred.succeed(ended, undefined)
      }))

    /**
     * Runs `attempt` (which counts its own failure or success) unless the login is locked out (its pair when known,
     * else the username or the address): then fails with Limited. Waits while attempts under way could lock it out.
     */
    const loginAttempt = <A, E, R>(
      kind: AccountKind,
      username: string,
      address: string,
      attempt: Effect.Effect<A, E, R>
    ): Effect.Effect<A, E | Limited, R> => {
      if (config.loginFailures <= 0) return attempt
      const { pair, shared } = keysOf(kind, username, address)
      const keys = (remembered: boolean) => remembered ? [pair] : shared
      const tried: Effect.Effect<A, E | Limited, R> = Effect.flatMap(isKnown(pair), (remembered) =>
        Effect.acquireUseRelease(
          reserve(keys(remembered)),
          Option.match({
            onNone: () => Effect.asSome(attempt),
            onSome: (ended) => Effect.as(Deferred.await(ended), Option.none<A>())
          }),
          (waited) => Option.isNone(waited) ? release(keys(remembered)) : Effect.void
        )).pipe(Effect.flatMap(Option.match({ onNone: () => tried, onSome: Effect.succeed })))
      return tried
    }

    /** Counts a failure against the username and the address, and against the pair when known. */
    const loginFailed = (kind: AccountKind, username: string, address: string) => {
      if (config.loginFailures <= 0) return Effect.void
      const { pair, shared } = keysOf(kind, username, address)
      return Effect.flatMap(isKnown(pair), (remembered) =>
        Effect.forEach(
          remembered ? [...shared, pair] : shared,
          (key) => Effect.ignore(failureWindow(key, 1)),
          { discard: true }
        ))
    }

    /** Makes the account known at the address for KNOWN_FOR more. */
    const loginSucceeded = (kind: AccountKind, username: string, address: string) =>
      config.loginFailures <= 0 ? Effect.void : Effect.clockWith((clock) =>
        Effect.sync(() => {
          const now = clock.unsafeCurrentTimeMillis()
          const { pair } = keysOf(kind, username, address)
          known.delete(pair)
          known.set(pair, now + Duration.toMillis(KNOWN_FOR))
          for (const [oldest, until] of known) {
            if (until > now && known.size <= MAX_KNOWN) break
            known.delete(oldest)
          }
        })
      )

    return { reader, unauthenticated, loginAttempt, loginFailed, loginSucceeded } as const
  }),
  dependencies: [RateLimitStore.layer]
}) {}
