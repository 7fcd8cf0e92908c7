import { NodeContext } from "@effect/platform-node"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { haPayload } from "@telemetry/domain/testing"
import * as Migrator from "@telemetry/infra/db/Migrator"
import * as PostgresClient from "@telemetry/infra/db/PostgresClient"
import { bearer } from "@telemetry/ingest/testing/auth"
import { send } from "@telemetry/ingest/testing/client"
import { serverOn } from "@telemetry/ingest/testing/server"
import * as PostgresDatabase from "@telemetry/testbed/PostgresDatabase"
import { Effect, Layer, Redacted } from "effect"
import { decodeJwt } from "jose"
import { runCli } from "./support/cli.js"
import { healthy, started, startPipeline } from "./support/process.js"
import { deployment, freePort } from "./support/stack.js"

const login = (base: string, username: string, password: string, path = "/api/v1/auth/device/login") =>
  Effect.promise(() => send(`${base}${path}`, { body: { username, password } }))

const cli = (name: "device" | "user", args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.promise(() => runCli(name, args, env))

describe("pnpm device and pnpm user", () => {
  it.scopedLive("against PostgreSQL (DATABASE_URL): add, list, disable, enable, passwd; the accounts log in", () =>
    Effect.gen(function*() {
      const database = yield* Effect.acquireRelease(Effect.promise(PostgresDatabase.create), (db) => Effect.promise(db.drop))
      const env = { DATABASE_URL: database.url }

      const added = yield* cli("device", ["add", "--tenant", "acme", "--username", "ha-cli", "--timezone", "america/sao_paulo"], env)
      expect([added.code, added.stderr]).toEqual([0, expect.stringContaining(
        "Created the device account \"ha-cli\" of tenant \"acme\", reading times without a zone in America/Sao_Paulo."
      )])
      // A wrong option is told in the schema's words, not the tree of its refinements.
      const short = yield* cli("device", ["add", "--tenant", "acme", "--username", "ha-short", "--password", "abc"], env)
      expect(short.code).not.toBe(0)
      expect(short.stdout + short.stderr).toContain("a password has at least 8 characters")
      expect(short.stdout + short.stderr).not.toContain("refinement")
      // The generated password, alone on stdout, shown once; stored only as a hash.
      const generated = added.stdout.trim()
      expect(generated).toMatch(/^[\w-]{24}$/)

      const port = yield* Effect.promise(freePort)
      const base = `http://127.0.0.1:${port}`
      const db = Migrator.migrated(PostgresClient.layer({ url: Redacted.make(database.url), poolSize: 2 })).pipe(
        Layer.provideMerge(NodeContext.layer)
      )
      const context = yield* Layer.build(Layer.provideMerge(serverOn(db, port), db))
      const stored = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ password_hash: string; time_zone: string }>`SELECT password_hash, time_zone FROM accounts WHERE username = 'ha-cli'`
      ).pipe(Effect.provide(context))
      expect(stored).toEqual([{ password_hash: expect.stringMatching(/^scrypt\$32768\$8\$1\$/), time_zone: "America/Sao_Paulo" }])
      expect(stored[0]!.password_hash).not.toContain(generated)

      const answer = yield* login(base, "ha-cli", generated)
      expect([answer.status, decodeJwt(answer.json.access_token)]).toEqual([200, expect.objectContaining({
        tenant_id: "acme",
        user_type: "device",
        sub: "ha-cli",
        tz: "America/Sao_Paulo"
      })])

      const refusals = [
        [["add", "--tenant", "acme", "--username", "ha-cli"], "a device account named \"ha-cli\" already exists"],
        [["add", "--tenant", "acme", "--username", "ha-2", "--timezone", "Mars/Olympus"], "is not an IANA time zone"],
        [["disable", "--username", "nobody"], "no device account is named \"nobody\""]
      ] as const
      for (const [args, message] of refusals) {
        const refused = yield* cli("device", args, env)
        expect([args, refused.code, refused.stdout]).toEqual([args, 1, ""])
        expect(refused.stderr, args.join(" ")).toContain(message)
      }

      const reader = yield* cli("user", ["add", "--tenant", "acme", "--username", "grafana", "--password", "reader-password"], env)
      expect([reader.code, reader.stdout]).toEqual([0, ""])
      expect((yield* login(base, "grafana", "reader-password", "/api/v1/auth/login")).status).toBe(200)

      const listed = yield* cli("device", ["list", "--tenant", "acme"], env)
      expect(listed.code).toBe(0)
      expect(listed.stdout.split("\n")[0]).toMatch(/^USERNAME\s+TENANT\s+TIME ZONE\s+STATUS\s+CREATED$/)
      expect(listed.stdout).toMatch(/^ha-cli\s+acme\s+America\/Sao_Paulo\s+enabled\s+\d{4}-/m)
      expect((yield* cli("user", ["list"], env)).stdout).toMatch(/^grafana\s+acme\s+enabled/m)

      expect((yield* cli("device", ["disable", "--username", "ha-cli"], env)).code).toBe(0)
      expect((yield* login(base, "ha-cli", generated)).status).toBe(403)
      expect((yield* cli("device", ["list"], env)).stdout).toMatch(/^ha-cli\s+acme\s+America\/Sao_Paulo\s+disabled/m)
      expect((yield* cli("device", ["enable", "--username", "ha-cli"], env)).code).toBe(0)

      const changed = yield* cli("device", ["passwd", "--username", "ha-cli", "--password", "another-password"], env)
      expect([changed.code, changed.stdout]).toEqual([0, ""])
      expect((yield* login(base, "ha-cli", generated)).status).toBe(401)
      expect((yield* login(base, "ha-cli", "another-password")).status).toBe(200)
    }), { timeout: 180_000 })

  it.scopedLive("while `pnpm start` holds the embedded database, the commands go through it; once it stopped, they open it", () =>
    Effect.gen(function*() {
      const deployed = yield* deployment("accounts-cli")
      const pipeline = yield* started(() => startPipeline(deployed.env))
      yield* Effect.promise(() => healthy(pipeline, deployed.base))

      const added = yield* cli("device", [
        "add",
        "--tenant",
        "home",
        "--username",
        "ha-embedded",
        "--password",
        "embedded-password",
        "--timezone",
        "Europe/Lisbon"
      ], deployed.env)
      expect([added.code, added.stdout]).toEqual([0, ""])
      expect(added.stderr).toContain(`The embedded database is held by a running server: sending the command to it at http://127.0.0.1:`)
      expect(added.stderr).toContain("Created the device account \"ha-embedded\" of tenant \"home\"")

      const answer = yield* login(deployed.base, "ha-embedded", "embedded-password")
      expect([answer.status, decodeJwt(answer.json.access_token).tz]).toEqual([200, "Europe/Lisbon"])
      const accepted = yield* Effect.promise(() =>
        send(`${deployed.base}/api/v1/telemetry/bulk`, { body: haPayload("embedded-eq"), headers: bearer(answer.json.access_token) })
      )
      expect(accepted.status).toBe(202)

      // Signed with another secret, the command's admin token is refused, and it says what to check.
      const stranger = yield* cli("device", ["list"], { ...deployed.env, AUTH_SECRET: "another-secret-of-at-least-32-characters" })
      expect(stranger.code).toBe(1)
      expect(stranger.stderr).toContain("refused the admin token")

      expect((yield* cli("device", ["passwd", "--username", "ha-embedded", "--password", "changed-password"], deployed.env)).code).toBe(0)
      expect((yield* login(deployed.base, "ha-embedded", "changed-password")).status).toBe(200)

      pipeline.child.kill("SIGTERM")
      yield* Effect.promise(() => pipeline.exited)
      const listed = yield* cli("device", ["list"], deployed.env)
      expect(listed.code).toBe(0)
      expect(listed.stderr).not.toContain("held by a running server")
      expect(listed.stderr).not.toContain("No embedded database")
      expect(listed.stdout).toMatch(/^ha-embedded\s+home\s+Europe\/Lisbon\s+enabled/m)

      // Where no database is yet (a first account before the first start; or a mistyped directory, a shell without
      // the deployment's variables), the command makes one, and says so.
      const elsewhere = `${deployed.env.EMBEDDED_DB_DIR}-elsewhere`
      const created = yield* cli("user", ["add", "--tenant", "home", "--username", "grafana", "--password", "reader-password"], {
        ...deployed.env,
        EMBEDDED_DB_DIR: elsewhere,
        EMBEDDED_QUEUE_DIR: `${elsewhere}-queue`
      })
      expect(created.code).toBe(0)
      expect(created.stderr).toContain(`No embedded database in ${elsewhere} (EMBEDDED_DB_DIR) yet: creating it`)
    }), { timeout: 180_000 })
})
