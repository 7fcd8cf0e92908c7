import { Config, Duration, Effect, Schema } from "effect"
import { randomBytes, scrypt, type ScryptOptions, timingSafeEqual } from "node:crypto"
import { availableParallelism } from "node:os"
import { answeredAs } from "../http/errors.js"

/**
 * scrypt with N = 2^15, r = 8, p = 1: 32 MiB of memory and ~0.1 s of one core per hash (2026 hardware), the
 * parameters recommended for interactive logins. They are stored with each hash, so raising them later leaves
 * existing hashes verifiable.
 */
const PARAMETERS = { N: 2 ** 15, r: 8, p: 1 } as const
const SALT_BYTES = 16
const KEY_BYTES = 32
/** Bounds on parameters read back from the database, so that a corrupt row cannot ask for gigabytes. */
const MAX_N = 2 ** 20
const MAX_RP = 64

const PREFIX = "scrypt"

/**
 * The longest a login may expect to wait for its password check; beyond it, logins are refused at once. A client
 * gives up after a while (the Home Assistant integration after 25 s): a hash computed after that is wasted, and
 * computing it delays every login behind it past its client's patience too.
 */
const MaxWait = Config.duration("LOGIN_MAX_WAIT").pipe(Config.withDefault(Duration.seconds(10)))

/** A first estimate of one hash's time, until hashes are measured. */
const FIRST_ESTIMATE_MS = 100

/** So many logins wait for a password check that another would wait longer than LOGIN_MAX_WAIT. */
export class PasswordChecksBusy extends Schema.TaggedError<PasswordChecksBusy>()("PasswordChecksBusy", {
  waiting: Schema.Number,
  retryAfter: Schema.DurationFromMillis
}, answeredAs(503, "overloaded", "Too many logins wait for a password check; retry after `Retry-After` seconds")) {
  override get message() {
    return `${this.waiting} logins are waiting for a password check; retry in ${Duration.format(this.retryAfter)}`
  }
}

interface Parameters {
  readonly N: number
  readonly r: number
  readonly p: number
}

const derive = (password: string, salt: Buffer, keyBytes: number, { N, p, r }: Parameters) =>
  Effect.async<Buffer>((resume) => {
    // Node refuses scrypt above `maxmem` (32 MiB by default), which N = 2^15, r = 8 just reaches: allow what the
    // parameters need (128·r·(N + p) bytes) and some room.
    const options: ScryptOptions = { N, r, p, maxmem: 128 * r * (N + p) + 1024 * 1024 }
    scrypt(password.normalize("NFC"), salt, keyBytes, options, (error, key) =>
      resume(error ? Effect.die(error) : Effect.succeed(key)))
  })

/** `scrypt$N$r$p$salt$hash`, salt and hash in base64url. */
const format = ({ N, p, r }: Parameters, salt: Buffer, key: Buffer) =>
  [PREFIX, N, r, p, salt.toString("base64url"), key.toString("base64url")].join("$")

const parse = (stored: string) => {
  const [prefix, n, r, p, salt = "", key = "", ...rest] = stored.split("$")
  const parameters = { N: Number(n), r: Number(r), p: Number(p) }
  const decoded = { salt: Buffer.from(salt, "base64url"), key: Buffer.from(key, "base64url") }
  const valid = prefix === PREFIX && rest.length === 0 && decoded.salt.length > 0 && decoded.key.length >= 16 &&
    Number.isInteger(parameters.N) && parameters.N > 1 && parameters.N <= MAX_N &&
    (parameters.N & (parameters.N - 1)) === 0 &&
    [parameters.r, parameters.p].every((x) => Number.isInteger(x) && x >= 1 && x <= MAX_RP)
  return valid ? { parameters, ...decoded } : undefined
}

/**
 * Salted, memory-hard password hashes (node's scrypt), computed on libuv's thread pool: at most cores − 1 at once
 * (at least one), so that a burst of logins (a fleet of devices starting together) leaves a core to the uploads, and
 * neither takes every pool thread from file and zlib work nor multiplies the 32 MiB each hash holds. A check that
 * would wait longer than LOGIN_MAX_WAIT is refused at once (PasswordChecksBusy, 503): such a burst is then served
 * as fast as the cores allow, and the rest come back later, instead of every login timing out in a queue.
 */
export class Passwords extends Effect.Service<Passwords>()("@telemetry/Passwords", {
  effect: Effect.gen(function*() {
    const threads = Math.max(1, availableParallelism() - 1)
    const permits = yield* Effect.makeSemaphore(threads)
    const maxWaitMs = Duration.toMillis(yield* MaxWait)
    let waiting = 0
    let hashMs = FIRST_ESTIMATE_MS
    const limited = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      permits.withPermits(1)(
        Effect.tap(Effect.timed(effect), ([took]) => {
          // A moving average of recent hashes: the machine's speed, and what else it is doing.
          hashMs = 0.8 * hashMs + 0.2 * Duration.toMillis(took)
        })
      ).pipe(Effect.map(([, a]) => a))
    /** `effect` once a thread is free, unless the wait ahead of it is longer than LOGIN_MAX_WAIT. */
    const admitted = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | PasswordChecksBusy, R> =>
      Effect.suspend((): Effect.Effect<A, E | PasswordChecksBusy, R> => {
        const wait = (waiting * hashMs) / threads
        if (wait > maxWaitMs) {
          return Effect.fail(new PasswordChecksBusy({ waiting, retryAfter: Duration.millis(wait) }))
        }
        waiting++
        // A client that leaves while its login waits interrupts it: its hash is never computed.
        return Effect.ensuring(limited(effect), Effect.sync(() => waiting--))
      })

    const hash = (password: string) =>
      Effect.suspend(() => {
        const salt = randomBytes(SALT_BYTES)
        return Effect.map(derive(password, salt, KEY_BYTES, PARAMETERS), (key) => format(PARAMETERS, salt, key))
      }).pipe(limited)

    /** Whether `password` is the one `stored` was made from; an unreadable `stored` matches nothing. */
    const verify = (password: string, stored: string) =>
      Effect.suspend(() => {
        const parsed = parse(stored)
        if (parsed === undefined) return Effect.succeed(false)
        return Effect.map(
          derive(password, parsed.salt, parsed.key.length, parsed.parameters),
          (key) => timingSafeEqual(key, parsed.key)
        )
      }).pipe(admitted)

    /**
     * Verified against when no account has the name, so that an unknown name costs what a wrong password does.
     * Made on first use: a server starts listening before its handlers are built, so building them stays quick.
     */
    const dummy = yield* Effect.cached(hash(randomBytes(KEY_BYTES).toString("base64url")))

    return { hash, verify, dummy } as const
  })
}) {}
