import { createHmac } from "node:crypto"

/** The secret the test servers verify tokens with (`serverOn`, `deployment`, `embeddedStack` set it). */
export const TEST_SECRET = "telemetry-test-secret-0123456789abcdef"

/** The environment that makes a server (or `pnpm token`) use `TEST_SECRET`. */
export const authEnv = { AUTH_SECRET: TEST_SECRET } as const

const base64url = (data: string | Buffer) => Buffer.from(data).toString("base64url")

/**
 * A JWT signed here with HS256, independently of the server's code: any claims, header fields, or secret, so that
 * tests can also forge, tamper and expire tokens.
 */
export const signToken = (
  claims: Record<string, unknown>,
  options: { readonly secret?: string; readonly header?: Record<string, unknown> } = {}
) => {
  const signed = `${base64url(JSON.stringify({ alg: "HS256", typ: "JWT", ...options.header }))}.${base64url(JSON.stringify(claims))}`
  return `${signed}.${createHmac("sha256", options.secret ?? TEST_SECRET).update(signed).digest("base64url")}`
}

/** The claims of a token of `userType` valid for an hour, with `extra` added or overriding. */
export const claimsOf = (userType: "device" | "reader", tenant: string, subject: string, extra: Record<string, unknown> = {}) => {
  const now = Math.floor(Date.now() / 1000)
  return { tenant_id: tenant, user_type: userType, sub: subject, iat: now, exp: now + 3600, ...extra }
}

/** A device token: may ingest into `tenant`, as `device`. */
export const deviceToken = (tenant = "default", device = "test-device") => signToken(claimsOf("device", tenant, device))

/** A reader token: may read `tenant`'s analytics. */
export const readerToken = (tenant = "default", reader = "test-reader") => signToken(claimsOf("reader", tenant, reader))

/** The header that sends `token`. */
export const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
