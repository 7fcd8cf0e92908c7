/**
 * 5. Login: the CPU one device login costs the ingest process (compiled `pnpm start`, RUN_WORKER=false, on a fresh
 * PostgreSQL database), with the cache of verified credentials and with it turned off (AUTH_LOGIN_CACHE_TTL="0 seconds", every
 * login a scrypt hash), and what that makes of the Home Assistant heartbeat: every device logging in every 120 s.
 */
import { Effect } from "effect"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { deviceAccounts } from "./accounts.js"
import { ingestApp } from "./services.js"
import { cpuSeconds, freshDatabase, percentile, progress } from "./support.js"

/** The heartbeat the target is stated for: 1 000 devices, each logging in every 120 s. */
export const HEARTBEAT = { devices: 1_000, seconds: 120 } as const

export interface LoginCost {
  readonly logins: number
  /** CPU milliseconds of the ingest process (all its threads) per login. */
  readonly cpuMs: number
  readonly p50: number
  readonly p95: number
  /** Share of one core the heartbeat of HEARTBEAT.devices devices takes at this cost. */
  readonly heartbeatShare: number
}

export interface LoginResult {
  readonly accounts: number
  readonly cached: LoginCost
  readonly uncached: LoginCost
}

const PASSWORD = "bench-device-password"
const CONCURRENCY = 8

const usernameOf = (i: number) => `bench-${String(i).padStart(5, "0")}`

/** Logs in `usernames` (in that order, CONCURRENCY at once); resolves with each login's wall time in ms. */
const logins = (base: string, usernames: ReadonlyArray<string>) =>
  Effect.promise(async () => {
    const times: Array<number> = []
    let next = 0
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < usernames.length) {
        const username = usernames[next++]!
        const start = performance.now()
        const response = await fetch(`${base}/api/v1/auth/device/login`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ username, password: PASSWORD })
        })
        if (response.status !== 200) throw new Error(`login of ${username}: ${response.status} ${await response.text()}`)
        await response.arrayBuffer()
        times.push(performance.now() - start)
      }
    }))
    return times
  })

/**
 * CPU per login of a fresh ingest process configured by `env`, over `measured` logins going round `accounts`
 * accounts, after `warmup` of them logged in once (which fills the cache, where it is on).
 */
const measure = (url: string, dir: string, accounts: number, warmup: number, measured: number, env: Record<string, string>) =>
  Effect.scoped(Effect.gen(function*() {
    const { app, base } = yield* ingestApp({ DATABASE_URL: url, STORAGE_DIR: dir, EMBEDDED_QUEUE_DIR: join(dir, "queue"), ...env })
    const everyone = Array.from({ length: accounts }, (_, i) => usernameOf(i))
    yield* logins(base, everyone.slice(0, warmup))
    const round = Array.from({ length: measured }, (_, i) => everyone[i % accounts]!)
    const before = cpuSeconds(app.pid)
    const times = yield* logins(base, round)
    const cpuMs = ((cpuSeconds(app.pid) - before) * 1000) / measured
    return {
      logins: measured,
      cpuMs,
      p50: percentile(times, 0.5),
      p95: percentile(times, 0.95),
      heartbeatShare: (cpuMs / 1000) * HEARTBEAT.devices / HEARTBEAT.seconds
    } satisfies LoginCost
  }))

export const loginBenchmark = (options: { readonly accounts: number; readonly cachedLogins: number; readonly uncachedLogins: number }) =>
  Effect.gen(function*() {
    const db = yield* freshDatabase
    const dir = yield* Effect.acquireRelease(
      Effect.promise(() => mkdtemp(join(tmpdir(), "bench-login-"))),
      (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
    )
    yield* progress(`login: creating ${options.accounts} device accounts`)
    yield* deviceAccounts({ url: db.url, tenantOf: () => "bench", count: options.accounts, usernameOf, password: PASSWORD })

    yield* progress(`login: ${options.cachedLogins} logins of ${options.accounts} devices, with the credential cache`)
    const cached = yield* measure(db.url, dir, options.accounts, options.accounts, options.cachedLogins, {})
    yield* progress(`login: ${cached.cpuMs.toFixed(2)} ms CPU a login; now ${options.uncachedLogins} without the cache`)
    const uncached = yield* measure(db.url, dir, options.accounts, 10, options.uncachedLogins, {
      AUTH_LOGIN_CACHE_TTL: "0 seconds"
    })
    yield* progress(`login: ${uncached.cpuMs.toFixed(1)} ms CPU a login without the cache`)
    return { accounts: options.accounts, cached, uncached } satisfies LoginResult
  })
