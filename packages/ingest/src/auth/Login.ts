import { DefaultTimeZone } from "@telemetry/domain"
import { Config, Data, Duration, Effect, Option } from "effect"
import { AccountCredentials, type AccountKind, type StoredCredentials } from "./Accounts.js"
import { AuthLimits } from "./AuthLimits.js"
import { CredentialCache } from "./CredentialCache.js"
import { Passwords } from "./Passwords.js"
import { type Principal, Tokens } from "./Tokens.js"

/** How long the tokens of logins and refreshes are valid. */
const TokenTtl = Config.duration("AUTH_TOKEN_TTL").pipe(Config.withDefault(Duration.hours(24)))

/** Unknown username or wrong password: the client is told neither which nor, by the time taken, whether. */
export class InvalidCredentials extends Data.TaggedError("InvalidCredentials")<{}> {
  override get message() {
    return "invalid username or password"
  }
}

export class AccountDisabled extends Data.TaggedError("AccountDisabled")<{
  readonly kind: AccountKind
  readonly username: string
}> {
  override get message() {
    return `the ${this.kind} account "${this.username}" is disabled; ask the administrator to enable it`
  }
}

export interface Issued {
  readonly token: string
  readonly expiresAt: Date
  /** Seconds from now. */
  readonly expiresIn: number
}

/**
 * Logins of device and reader accounts, and refreshes of the tokens they got. A login verifies the password
 * against the stored scrypt hash — or, for an unknown username, against a dummy hash of the same cost, so that
 * both answers take as long — unless the same credentials were verified against the same hash a moment ago
 * (CredentialCache). A disabled account's correct password gets its own refusal; a wrong one is just wrong.
 */
export class Login extends Effect.Service<Login>()("@telemetry/Login", {
  effect: Effect.gen(function*() {
    const credentials = yield* AccountCredentials
    const passwords = yield* Passwords
    const cache = yield* CredentialCache
    const limits = yield* AuthLimits
    const tokens = yield* Tokens
    const lifetime = Math.max(1, Math.round(Duration.toSeconds(yield* TokenTtl)))
    const defaultZone = yield* DefaultTimeZone
    // A device account's token always names the zone its naive times are read in — DEFAULT_TIMEZONE when the
    // account names none — so that its uploads need not ask the database for it (and go on while it is down).
    const zoneOf = (kind: AccountKind, account: { readonly timeZone: string | null }) =>
      kind === "device" ? account.timeZone ?? defaultZone : account.timeZone

    const issue = (principal: Principal) =>
      tokens.mint({
        userType: principal.userType,
        tenantId: principal.tenantId,
        subject: principal.subject,
        timeZone: principal.timeZone,
        expiresIn: `${lifetime} seconds`
      }).pipe(
        // Names come from accounts or verified tokens: minting cannot refuse them.
        Effect.orDie,
        Effect.map(({ expiresAt, token }): Issued => ({ token, expiresAt, expiresIn: lifetime }))
      )

    const passwordHolds = (kind: AccountKind, username: string, password: string, stored: StoredCredentials) => {
      const given = { kind, username, password }
      return Effect.flatMap(cache.holds(given, stored.passwordHash), (cached) =>
        cached ? Effect.succeed(true) : passwords.verify(password, stored.passwordHash).pipe(
          Effect.tap((verified) => verified ? cache.remember(given, stored.passwordHash) : Effect.void)
        ))
    }

    /** A token for the account `username` of `kind`, asked for from `address`. */
    const login = (kind: AccountKind, username: string, password: string, address: string) =>
      limits.loginAttempt(kind, username, address, Effect.gen(function*() {
        const found = yield* credentials.find(kind, username)
        if (Option.isNone(found)) {
          yield* passwords.verify(password, yield* passwords.dummy)
        } else if (yield* passwordHolds(kind, username, password, found.value)) {
          const { account } = found.value
          if (account.disabled) return yield* new AccountDisabled({ kind, username })
          yield* limits.loginSucceeded(kind, username, address)
          return yield* issue({ userType: kind, tenantId: account.tenantId, subject: account.username, timeZone: zoneOf(kind, account) })
        }
        yield* limits.loginFailed(kind, username, address)
        return yield* new InvalidCredentials()
      }))

    /**
     * A fresh token for the principal of a valid one. When it is an account's (same kind, name and tenant), the
     * account must still be enabled and its current time zone is taken; tokens of `pnpm token` stay as they are.
     */
    const refresh = (principal: Principal & { readonly userType: AccountKind }) =>
      Effect.gen(function*() {
        const account = Option.filter(
          Option.map(yield* credentials.find(principal.userType, principal.subject), (found) => found.account),
          (account) => account.tenantId === principal.tenantId
        )
        if (Option.isNone(account)) return yield* issue(principal)
        if (account.value.disabled) return yield* new AccountDisabled({ kind: principal.userType, username: principal.subject })
        return yield* issue({ ...principal, timeZone: zoneOf(principal.userType, account.value) })
      })

    return { login, refresh } as const
  })
}) {}
