import { logFormat } from "@telemetry/domain"
import { Console, Effect, Layer } from "effect"
import { AuthKeys } from "./AuthConfig.js"
import { Tokens } from "./Tokens.js"

const TENANT = "default"
const DEVICE = "local-device"
const LIFETIME = "30d"

/**
 * An embedded pipeline signs with a secret of its own (AuthConfig.ts), which nobody else knows: it prints a device
 * and a reader token at start, so that it can be used at once — and is never open to requests without a token.
 * Printed for a person only (pretty logs, a terminal's default): logs for machines (JSON or logfmt, the default
 * under Docker) are shipped and kept, and hold no token; they say where to mint them.
 */
export const layer = Layer.effectDiscard(Effect.gen(function*() {
  const { source } = yield* AuthKeys
  if (source._tag !== "File") return
  const signedWith = `AUTH_SECRET is not set: tokens are signed with the secret in ${source.path}` +
    (source.created ? " (generated now)." : ".")
  const mintThem = "other tenants, devices and lifetimes: pnpm token --help; accounts that log in with a password " +
    "(the Home Assistant integration): pnpm device add --help, pnpm user add --help"
  if ((yield* logFormat("stdout")) !== "pretty") {
    return yield* Effect.logInfo(
      `${signedWith} Tokens are printed only with LOG_FORMAT=pretty; mint one with the same secret file: ` +
        `pnpm -s token --type device --tenant ${TENANT} --subject ${DEVICE}; ${mintThem}`
    )
  }
  const tokens = yield* Tokens
  const mint = (userType: "device" | "reader", subject: string) =>
    Effect.orDie(tokens.mint({ userType, tenantId: TENANT, subject, expiresIn: LIFETIME }))
  const device = yield* mint("device", DEVICE)
  const reader = yield* mint("reader", "local-reader")
  yield* Console.log([
    signedWith,
    `Tokens of tenant "${TENANT}", valid until ${device.expiresAt.toISOString()}:`,
    `  # device "${DEVICE}": may POST /api/v1/telemetry/bulk`,
    `  DEVICE_TOKEN=${device.token}`,
    "  # reader: may GET /api/v1/analytics/...",
    `  READER_TOKEN=${reader.token}`,
    `Send one as a header, e.g. curl -H "Authorization: Bearer $DEVICE_TOKEN" ...; ${mintThem}`
  ].join("\n"))
}))
