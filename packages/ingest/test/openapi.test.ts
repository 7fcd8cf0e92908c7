import { expect, layer } from "@effect/vitest"
import * as PgliteClient from "@telemetry/infra/db/PgliteClient"
import { inMemoryStore } from "@telemetry/infra/testing"
import { freePort } from "@telemetry/testbed/FreePort"
import { Effect } from "effect"
import { bearer, deviceToken, readerToken } from "./support/auth.js"
import { serverOn } from "./support/server.js"

const port = await freePort()

const fetchText = (path: string, init?: RequestInit, at = port) =>
  Effect.promise(async () => {
    const response = await fetch(`http://127.0.0.1:${at}${path}`, init)
    return { status: response.status, type: response.headers.get("content-type") ?? "", text: await response.text() }
  })

/** Every endpoint of the contract (§1 bulk and its alias, §4 analytics, §5 health), as the document names them. */
const CONTRACT = [
  "post /api/v1/telemetry/bulk",
  "post /api/v1/telemetria/bulk",
  "get /api/v1/analytics/equipment/{equipmentUuid}/history",
  "get /api/v1/analytics/sensor/{sensorUuid}/history",
  "get /api/v1/analytics/equipment/{equipmentUuid}/stats",
  "get /api/v1/analytics/home-assistant/{equipmentUuid}",
  "get /api/v1/health",
  "get /api/v1/health/detailed",
  "get /api/v1/health/ready"
]

/** Logins of accounts (contract §6), refresh, and the account administration of `pnpm device` and `pnpm user`. */
const ACCOUNTS = [
  "post /api/v1/auth/device/login",
  "post /api/v1/auth/login",
  "post /api/v1/auth/refresh",
  "get /api/v1/admin/accounts",
  "post /api/v1/admin/accounts",
  "post /api/v1/admin/accounts/{kind}/{username}/disable",
  "post /api/v1/admin/accounts/{kind}/{username}/enable",
  "put /api/v1/admin/accounts/{kind}/{username}/password"
]

/** The equipments of the caller's tenant, listed for the console (reader tokens). */
const EQUIPMENTS = ["get /api/v1/equipments", "get /api/v1/equipments/{equipmentUuid}"]

/**
 * The operations behind a bearer token: ingest (device tokens), analytics (reader tokens), refresh (either) and
 * account administration (admin tokens).
 */
const secured = (operation: string) =>
  ["/bulk", "/analytics/", "/auth/refresh", "/admin/", "/equipments"].some((part) => operation.includes(part))

const operations = (spec: any): Array<string> =>
  Object.entries<Record<string, unknown>>(spec.paths).flatMap(([path, methods]) =>
    Object.keys(methods).map((method) => `${method} ${path}`)
  )

layer(serverOn(inMemoryStore(1_000), port), { timeout: 120_000, excludeTestServices: true })("OpenAPI", (it) => {
  it.effect("/api/v1/openapi.json lists every endpoint, with the contract's error body", () =>
    Effect.gen(function*() {
      const response = yield* fetchText("/api/v1/openapi.json")
      expect(response.status).toBe(200)
      const spec = JSON.parse(response.text)
      expect(spec.openapi).toMatch(/^3\./)
      expect(operations(spec).sort()).toEqual([...CONTRACT, ...ACCOUNTS, ...EQUIPMENTS].sort())

      const history = spec.paths["/api/v1/analytics/equipment/{equipmentUuid}/history"].get
      expect(history.parameters.map((p: any) => p.name).sort()).toEqual(
        ["end_date", "equipmentUuid", "limit", "period", "sensor_type", "start_date"]
      )
      expect(history.responses["400"].content["application/json"].schema).toEqual({
        $ref: "#/components/schemas/InvalidParameter"
      })
      expect(spec.components.schemas.InvalidParameter.required).toEqual(["error", "message"])
      expect(JSON.stringify(spec)).not.toContain("HttpApiDecodeError")
      const bulk = spec.paths["/api/v1/telemetry/bulk"].post
      expect(Object.keys(bulk.responses).sort()).toEqual(["202", "400", "401", "403", "408", "409", "413", "415", "422", "429", "500", "503"])
      // What the server answers for every route beside the handlers (Server.ts) is documented where it can happen.
      for (const [path, method, codes] of [
        ["/api/v1/analytics/equipment/{equipmentUuid}/history", "get", ["400", "503"]],
        ["/api/v1/equipments", "get", ["400", "503"]],
        ["/api/v1/admin/accounts", "post", ["400", "413", "503"]],
        ["/api/v1/auth/device/login", "post", ["400", "413", "503"]]
      ] as const) {
        expect([path, Object.keys(spec.paths[path][method].responses)]).toEqual([path, expect.arrayContaining([...codes])])
      }
      // Unknown fields are ignored (contract §1), so the documented body does not forbid them.
      expect(JSON.stringify(bulk.requestBody)).not.toContain("additionalProperties")
    }))

  it.effect("every documented path is served (none answers 404)", () =>
    Effect.gen(function*() {
      const spec = JSON.parse((yield* fetchText("/api/v1/openapi.json")).text)
      for (const operation of operations(spec)) {
        const [method, path] = operation.split(" ") as [string, string]
        const concrete = path.replace(/\{\w+\}/g, "x")
        // A body of the wrong type: the bulk route answers 415 without storing anything.
        const token = method === "post" ? deviceToken() : readerToken()
        const response = yield* fetchText(concrete, {
          method: method.toUpperCase(),
          headers: { "content-type": "text/plain", ...(secured(operation) ? bearer(token) : {}) }
        })
        if (ACCOUNTS.includes(operation)) expect([operation, response.status]).not.toEqual([operation, 404])
        // No equipment "x": the route answers that it has none, not that the route is missing.
        else if (operation === EQUIPMENTS[1]) expect(JSON.parse(response.text).message).not.toBe("no such route")
        else expect([operation, response.status]).toEqual([operation, method === "post" ? 415 : 200])
        expect(response.type, operation).toContain("application/json")
      }
      const unknown = yield* fetchText("/api/v1/nothing-here")
      expect([unknown.status, JSON.parse(unknown.text)]).toEqual([404, { error: "not_found", message: "no such route" }])
    }))

  it.effect("a path asked with a method it does not serve gets 405 with Allow; an unknown path 404", () =>
    Effect.gen(function*() {
      const spec = JSON.parse((yield* fetchText("/api/v1/openapi.json")).text)
      const served = Object.entries<Record<string, unknown>>(spec.paths).map(([path, methods]) =>
        [path.replace(/\{\w+\}/g, "x"), Object.keys(methods).map((m): string => m.toUpperCase())] as const
      )
      // Beside the documented API: the documents, the metrics and the console's page.
      const undocumented = ["/api/v1/openapi.json", "/api/v1/docs", "/metrics", "/"].map((path) => [path, ["GET"] as Array<string>] as const)
      for (const [path, methods] of [...served, ...undocumented]) {
        const allow = [...methods, ...(methods.includes("GET") ? ["HEAD"] : [])]
        for (const method of ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].filter((m) => !methods.includes(m))) {
          const response = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}${path}`, { method }))
          const header = response.headers.get("allow") ?? ""
          expect([method, path, response.status, header.split(", ").sort()]).toEqual([method, path, 405, [...allow].sort()])
          expect(yield* Effect.promise(() => response.json())).toEqual({
            error: "method_not_allowed",
            message: `${method} is not served at this path; it serves ${header}`
          })
        }
      }
      const head = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/api/v1/health`, { method: "HEAD" }))
      expect(head.status).toBe(200)
      const unknown = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/api/v1/nothing-here`, { method: "DELETE" }))
      expect(unknown.status).toBe(404)
    }))

  it.effect("ingest and analytics require a bearer JWT, documented with their 401 and 403; health is open", () =>
    Effect.gen(function*() {
      const spec = JSON.parse((yield* fetchText("/api/v1/openapi.json")).text)
      expect(spec.components.securitySchemes).toEqual({
        bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: expect.stringContaining("tenant") }
      })
      for (const operation of operations(spec)) {
        const [method, path] = operation.split(" ") as [string, string]
        const documented = spec.paths[path][method]
        if (secured(operation)) {
          expect([operation, documented.security]).toEqual([operation, [{ bearer: [] }]])
          expect(documented.responses["401"].content["application/json"].schema, operation).toEqual({
            $ref: "#/components/schemas/Unauthorized"
          })
          expect(JSON.stringify(documented.responses["403"].content["application/json"].schema), operation).toContain(
            "\"#/components/schemas/Forbidden\""
          )
        } else {
          expect([operation, documented.security ?? []]).toEqual([operation, []])
          // Logins are open too; their answers are tested with accounts (accounts.test.ts).
          if (method !== "get") continue
          const open = yield* fetchText(path)
          expect([operation, open.status]).toEqual([operation, 200])
        }
      }
      expect(spec.components.schemas.Unauthorized.properties.error.enum).toEqual(["unauthorized"])
      expect(spec.components.schemas.Forbidden.properties.error.enum).toEqual(["forbidden"])
    }))

  it.effect("/api/v1/docs serves Swagger UI over the same document, with no external assets", () =>
    Effect.gen(function*() {
      const response = yield* fetchText("/api/v1/docs")
      expect(response.status).toBe(200)
      expect(response.type).toContain("text/html")
      expect(response.text).toContain("SwaggerUIBundle")
      expect(response.text).not.toMatch(/<script[^>]+src=|<link[^>]+href=/)
      const embedded = /<script id="swagger-spec" type="application\/json">([\s\S]*?)<\/script>/.exec(response.text)
      const spec = JSON.parse((yield* fetchText("/api/v1/openapi.json")).text)
      expect(operations(JSON.parse(embedded![1]!)).sort()).toEqual(operations(spec).sort())
    }))
})

// A database without the schema: every analytics query fails.
const brokenPort = await freePort()
layer(serverOn(PgliteClient.layer({}), brokenPort), { timeout: 120_000, excludeTestServices: true })("failures", (it) => {
  it.effect("a failing database answers 500 with the contract's error body", () =>
    Effect.gen(function*() {
      const response = yield* fetchText("/api/v1/analytics/equipment/eq-a/history", { headers: bearer(readerToken()) }, brokenPort)
      expect([response.status, response.type]).toEqual([500, "application/json"])
      expect(JSON.parse(response.text)).toEqual({ error: "internal_error", message: "internal error" })
    }))
})
