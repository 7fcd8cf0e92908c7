/** Device accounts for the benchmarks that log in as the Home Assistant integration does. */
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { promisify } from "node:util"
import { pgClient, root } from "./support.js"

/**
 * `count` device accounts, named by `usernameOf(0 … count - 1)`, of the tenants `tenantOf` gives them, all with
 * `password`. The command line
 * makes the schema and the first account; the others are copies of its row, sharing its hash (each login still
 * verifies its own row), since hashing thousands of passwords would take minutes.
 */
export const deviceAccounts = (options: {
  readonly url: string
  readonly tenantOf: (i: number) => string
  readonly count: number
  readonly usernameOf: (i: number) => string
  readonly password: string
}) =>
  Effect.scoped(Effect.gen(function*() {
    const first = options.usernameOf(0)
    yield* Effect.promise(() =>
      promisify(execFile)(
        process.execPath,
        ["--import", "tsx", "packages/app/src/cli/device.ts", "add", "--tenant", options.tenantOf(0), "--username", first, "--password", options.password],
        { cwd: root, env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "", DATABASE_URL: options.url } }
      )
    )
    const client = yield* pgClient(options.url)
    const others = Array.from({ length: options.count - 1 }, (_, i) => i + 1)
    yield* Effect.promise(() =>
      client.query(
        `INSERT INTO accounts (kind, tenant_id, username, password_hash)
         SELECT 'device', o.tenant, o.username, a.password_hash
         FROM accounts a, unnest($2::text[], $3::text[]) AS o(tenant, username) WHERE a.username = $1`,
        [first, others.map(options.tenantOf), others.map(options.usernameOf)]
      )
    )
  }))
