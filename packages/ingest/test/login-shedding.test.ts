import { describe, expect, layer } from "@effect/vitest"
import { databases, storeOn } from "@telemetry/infra/testing"
import { freePort } from "@telemetry/testbed/FreePort"
import { ConfigProvider, Effect, Layer } from "effect"
import { Accounts } from "../src/auth/Accounts.js"
import * as SqlAccounts from "../src/auth/SqlAccounts.js"
import { authEnv } from "./support/auth.js"
import { send } from "./support/client.js"
import { serverOn } from "./support/server.js"

// No login may wait for a password check behind another: a burst is served one hash at a time, the rest refused.
const env = { LOGIN_MAX_WAIT: "0 millis", AUTH_LOGIN_CACHE_TTL: "0 millis" }
const DEVICES = 8
const postgres = databases.find((d) => d.name.includes("PostgreSQL"))!
const port = await freePort()
const base = `http://127.0.0.1:${port}`

const usernameOf = (i: number) => `burst-${i}`
const login = (i: number) =>
  Effect.promise(() =>
    send(`${base}/api/v1/auth/device/login`, {
      body: { username: usernameOf(i), password: `${usernameOf(i)}-pw` },
      localAddress: `127.0.0.${60 + i}`
    })
  )

describe("a burst of logins beyond what the hashing threads serve within LOGIN_MAX_WAIT", () => {
  const db = storeOn(postgres, 1_000)
  const context = Layer.merge(serverOn(db, port, env), SqlAccounts.layer).pipe(
    Layer.provideMerge(db),
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({ ...authEnv, ...env })))))
  )

  layer(context, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("is answered at once with 503 overloaded and Retry-After, counts as no failed login, and the refused log in later", () =>
      Effect.gen(function*() {
        const accounts = yield* Accounts
        for (let i = 0; i < DEVICES; i++) {
          yield* accounts.add({ kind: "device", tenantId: "burst", username: usernameOf(i), password: `${usernameOf(i)}-pw`, timeZone: null })
        }
        const answers = yield* Effect.forEach(Array.from({ length: DEVICES }, (_, i) => i), login, { concurrency: "unbounded" })
        const refused = answers.flatMap((answer, i) => (answer.status === 503 ? [i] : []))
        expect(answers.every((a) => a.status === 200 || a.status === 503), JSON.stringify(answers.map((a) => a.status))).toBe(true)
        expect(answers.filter((a) => a.status === 200).length).toBeGreaterThanOrEqual(1)
        expect(refused.length).toBeGreaterThanOrEqual(1)
        for (const i of refused) {
          expect(answers[i]!.json).toEqual({ error: "overloaded", message: expect.stringMatching(/waiting for a password check/) })
          expect(Number(answers[i]!.headers["retry-after"])).toBeGreaterThanOrEqual(1)
        }
        // One at a time nothing waits: each refused device gets its token (a refusal is no failed attempt).
        for (const i of refused) expect((yield* login(i)).status).toBe(200)
      }))
  })
})
