import { Clock, Config, Duration, Effect } from "effect"
import { createHmac, randomBytes } from "node:crypto"

/** An entry left unused this long is dropped; `0` turns the cache off. */
const CredentialCacheTtl = Config.duration("AUTH_LOGIN_CACHE_TTL").pipe(
  Config.withDefault(Duration.minutes(10))
)

/** Bound on entries, so that memory stays bounded whatever the number of accounts. */
const CAPACITY = 100_000

interface Entry {
  /** The stored hash the password was verified against: a changed password no longer matches it. */
  readonly storedHash: string
  readonly lastUsed: number
}

export interface Credentials {
  readonly kind: string
  readonly username: string
  readonly password: string
}

/**
 * Credentials verified recently, so that a device logging in every two minutes (the Home Assistant heartbeat)
 * costs an HMAC instead of a scrypt hash each time, without weakening the stored hash. Entries are keyed by an
 * HMAC of kind, username and password under a key drawn at start and never stored, so the cache holds no
 * password and its keys are worthless outside this process. An entry holds the stored hash it was verified
 * against: changing the password invalidates it, and only a correct password can ever hit. It lives while the
 * account keeps logging in, and expires `AUTH_LOGIN_CACHE_TTL` after its last use.
 */
export class CredentialCache extends Effect.Service<CredentialCache>()("@telemetry/CredentialCache", {
  effect: Effect.gen(function*() {
    const ttl = Duration.toMillis(yield* CredentialCacheTtl)
    const key = randomBytes(32)
    const entries = new Map<string, Entry>()
    const digest = ({ kind, password, username }: Credentials) =>
      createHmac("sha256", key).update(JSON.stringify([kind, username, password])).digest("base64url")

    /** Whether these credentials were verified against `storedHash` within the last `ttl`. */
    const holds = (credentials: Credentials, storedHash: string) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        if (ttl <= 0) return false
        const id = digest(credentials)
        const entry = entries.get(id)
        if (entry === undefined) return false
        if (entry.storedHash !== storedHash || now - entry.lastUsed >= ttl) {
          entries.delete(id)
          return false
        }
        // Moved to the end: the Map's order stays that of last use.
        entries.delete(id)
        entries.set(id, { storedHash, lastUsed: now })
        return true
      })

    /** Records credentials just verified against `storedHash`. */
    const remember = (credentials: Credentials, storedHash: string) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        if (ttl <= 0) return
        const id = digest(credentials)
        entries.delete(id)
        entries.set(id, { storedHash, lastUsed: now })
        // A Map iterates in insertion order: the first entries are the least recently used.
        for (const [oldest, entry] of entries) {
          if (entries.size <= CAPACITY && now - entry.lastUsed < ttl) break
          entries.delete(oldest)
        }
      })

    return { holds, remember } as const
  })
}) {}
