/**
 * The provisioned Grafana dashboards against what they read: every SQL target runs, as Grafana would send it and
 * as the read-only role Grafana connects as, on both databases after a known load; every PromQL target parses and
 * names only metrics the processes expose.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it, layer } from "@effect/vitest"
import { parser as promql } from "@prometheus-io/lezer-promql"
import { ClaimQueue, Maintenance, TelemetryStore } from "@telemetry/domain"
import { claim, equipment, haPayload, item, percentileCont, reading, sampleStddev, sensor } from "@telemetry/domain/testing"
import { bearer, deviceToken } from "@telemetry/ingest/testing/auth"
import { databases, storeOn } from "@telemetry/infra/testing"
import { Effect, Stream } from "effect"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { parse as parseYaml } from "yaml"
import { embeddedStack, eventually, freePort } from "./support/stack.js"

const observability = fileURLToPath(new URL("../../../observability/", import.meta.url))
const grafana = join(observability, "grafana")

// ---------------------------------------------------------------------------------------------------------------
// The dashboards' targets

interface Datasource {
  readonly uid: string
  readonly type: string
}

interface Variable {
  readonly name: string
  readonly type: string
  readonly query?: string
  readonly datasource?: Datasource
}

interface Panel {
  readonly title: string
  readonly type: string
  /** A row repeated once per value of this variable: its panels see one value each. */
  readonly repeat?: string
  readonly datasource?: Datasource
  readonly targets?: ReadonlyArray<{ refId: string; datasource?: Datasource; rawSql?: string; expr?: string }>
  readonly panels?: ReadonlyArray<Panel>
}

interface Dashboard {
  readonly uid: string
  readonly title: string
  readonly templating: { readonly list: ReadonlyArray<Variable> }
  readonly panels: ReadonlyArray<Panel>
}

/** One query of a dashboard: a panel's target, or a template variable's query. */
interface Target {
  /** `<dashboard uid> / <panel title or $variable> / <refId>` */
  readonly name: string
  readonly datasourceType: string
  readonly text: string
  /** The variable of the repeated row the panel is in. */
  readonly repeat?: string | undefined
}

const datasourcesDir = join(grafana, "provisioning/datasources")
const datasourceTypes = new Map(
  readdirSync(datasourcesDir)
    .filter((file) => /\.ya?ml$/.test(file))
    .flatMap((file): Array<Datasource> => parseYaml(readFileSync(join(datasourcesDir, file), "utf8")).datasources)
    .map((source) => [source.uid, source.type])
)
const SQL = "grafana-postgresql-datasource"
const PROMETHEUS = "prometheus"

const dashboardsDir = join(grafana, "dashboards")
const dashboards: ReadonlyArray<Dashboard> = readdirSync(dashboardsDir)
  .filter((file) => file.endsWith(".json"))
  .map((file) => JSON.parse(readFileSync(join(dashboardsDir, file), "utf8")))
const dashboard = (uid: string) => dashboards.find((d) => d.uid === uid)!

const typeOf = (source: Datasource | undefined, where: string) => {
  const type = source && datasourceTypes.get(source.uid)
  if (type === undefined) throw new Error(`${where}: data source ${JSON.stringify(source)} is not provisioned`)
  return type
}

/**
 * The targets of a dashboard's panels, a target inheriting its panel's data source. A row holds the panels nested
 * in it (collapsed) or, open, those after it up to the next row.
 */
const panelTargets = (d: Dashboard): ReadonlyArray<Target> => {
  let row: Panel | undefined
  return d.panels.flatMap((panel) => {
    if (panel.type === "row") row = panel
    const inRow = panel.type === "row" ? panel.panels ?? [] : [panel]
    return inRow.flatMap((p) =>
      (p.targets ?? []).map((target) => {
        const name = `${d.uid} / ${p.title} / ${target.refId}`
        const datasourceType = typeOf(target.datasource ?? p.datasource, name)
        return { name, datasourceType, text: target.rawSql ?? target.expr ?? "", repeat: row?.repeat }
      })
    )
  })
}

const queryVariables = (d: Dashboard) => d.templating.list.filter((v) => v.type === "query")

// ---------------------------------------------------------------------------------------------------------------
// Grafana's substitutions, those the dashboards use

/** A variable's current values: several for a multi-value variable or "All". */
type VariableValues = Readonly<Record<string, ReadonlyArray<string>>>

const sqlString = (value: string) => `'${value.replaceAll("'", "''")}'`

/**
 * SQL as Grafana's PostgreSQL data source sends it: `${name:sqlstring}` becomes the variable's values quoted and
 * joined with commas, `$__timeFilter(column)` a BETWEEN over the dashboard's time range (RFC 3339, UTC). Anything
 * else starting with `$` is left, so that a macro the test does not know fails the query loudly.
 */
const interpolateSql = (text: string, variables: VariableValues, range: { from: Date; to: Date }) =>
  text
    .replace(/\$__timeFilter\(([^)]+)\)/g, (_, column: string) =>
      `${column.trim()} BETWEEN ${sqlString(range.from.toISOString())} AND ${sqlString(range.to.toISOString())}`)
    .replace(/\$\{(\w+):sqlstring\}/g, (whole, name: string) => {
      const values = variables[name]
      if (values === undefined) throw new Error(`${whole}: no value for the variable`)
      return values.map(sqlString).join(",")
    })

/**
 * PromQL as Grafana's Prometheus data source sends it: `$__rate_interval` is at least four scrape intervals (the
 * data source's `timeInterval`, 15 s) — one minute at the dashboards' default resolution.
 */
const interpolatePromql = (text: string) => text.replaceAll("$__rate_interval", "1m")

// ---------------------------------------------------------------------------------------------------------------
// SQL: a known load, then every query on both databases

const HOUR = 3_600_000
const day = Date.UTC(2025, 0, 15)
const at = (hours: number, minutes: number) => day + hours * HOUR + minutes * 60_000

const freezer = equipment("dash-freezer", { name: "Freezer" })
const temperature = sensor("dash-temp", { name: "Temperature", type: "temperature", unit: "°C" })
const door = sensor("dash-door", { name: "Door", type: "door" })
/** The temperatures of 08:00–09:00 and of 09:00–10:00 that day. */
const eight = [1, 2, 6]
const nine = [4]
const loaded = [
  item(freezer, [temperature, door], [
    reading("dash-temp", at(8, 0), 1),
    reading("dash-temp", at(8, 10), 2),
    reading("dash-temp", at(8, 20), 6),
    reading("dash-temp", at(9, 5), 4),
    reading("dash-door", at(8, 1), null, { status: "open" }),
    reading("dash-door", at(8, 2), null, { status: "closed" })
  ])
]
/** The same equipment uuid in another tenant: nothing of it may show for the default tenant. */
const otherTenant = [
  item(equipment("dash-freezer"), [sensor("dash-temp", { type: "temperature" })], [reading("dash-temp", at(8, 30), 100)])
]
const range = { from: new Date(day - 24 * HOUR), to: new Date(day + 24 * HOUR) }

const iso = (hours: number) => new Date(day + hours * HOUR).toISOString()
const all = [...eight, ...nine]
const round = (x: number | null) => x === null ? null : Number(x.toPrecision(12))

/** What each query of the Equipment telemetry dashboard answers for the default tenant's freezer, every sensor. */
const expected: Record<string, { columns: ReadonlyArray<string>; rows: ReadonlyArray<ReadonlyArray<unknown>> }> = {
  "$tenant": { columns: ["tenant_id"], rows: [["default"], ["other"]] },
  "$equipment": { columns: ["__value", "__text"], rows: [["dash-freezer", "Freezer (dash-freezer)"]] },
  "$sensor": {
    columns: ["__value", "__text"],
    rows: [["dash-door", "Door · door"], ["dash-temp", "Temperature · temperature"]]
  },
  "Sensors of the equipment over the time range / A": {
    columns: ["sensor", "sensor_uuid", "type", "unit", "avg", "min", "max", "samples", "active_minutes", "last_hour"],
    rows: [
      ["Door", "dash-door", "door", null, null, null, null, 2, 2, iso(8)],
      ["Temperature", "dash-temp", "temperature", "°C", 3.25, 1, 6, 4, 4, iso(9)]
    ]
  },
  "Hourly average, min–max band and p95 / A": {
    columns: ["time", "min", "avg", "max", "p95"],
    rows: [
      [iso(8), null, null, null, null],
      [iso(8), 1, 3, 6, round(percentileCont(eight, 0.95))],
      [iso(9), 4, 4, 4, 4]
    ]
  },
  "Samples per hour / A": { columns: ["time", "samples"], rows: [[iso(8), 2], [iso(8), 3], [iso(9), 1]] },
  "Active minutes per hour / A": { columns: ["time", "active_minutes"], rows: [[iso(8), 2], [iso(8), 3], [iso(9), 1]] },
  "Days / A": {
    columns: ["day", "avg", "min", "max", "median", "p95", "stddev", "samples", "active_hours"],
    rows: [
      [iso(0), null, null, null, null, null, null, 2, 1],
      [iso(0), 3.25, 1, 6, round(percentileCont(all, 0.5)), round(percentileCont(all, 0.95)), round(sampleStddev(all)), 4, 2]
    ]
  }
}

/** A row as comparable values: timestamps as ISO text, numbers to 12 digits (the databases differ in the last bits). */
const normalized = (row: Record<string, unknown>) =>
  Object.values(row).map((v) => v instanceof Date ? v.toISOString() : typeof v === "number" ? round(v) : v)
/** Rows in a stable order: sensors of one bucket come in no defined order. */
const sorted = (rows: ReadonlyArray<ReadonlyArray<unknown>>) =>
  [...rows].sort((a, b) => JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)

/** The reader role, as grafana-db-init creates it (again: the script changes nothing the second time). */
const createReader = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql.unsafe(readFileSync(join(observability, "timescaledb/reader.sql"), "utf8")))

/**
 * `text` as Grafana runs it: as the reader role of reader.sql, read-only. SET ROLE keeps the session's other
 * settings, so the role's own ones are set by hand for the transaction.
 */
const asReader = (text: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(Effect.gen(function*() {
      yield* sql.unsafe("SET LOCAL ROLE telemetry_reader")
      yield* sql.unsafe("SET LOCAL transaction_read_only = on")
      return yield* sql.unsafe<Record<string, unknown>>(text)
    })))

const equipmentDashboard = dashboard("equipment-telemetry")
const sqlTargets: ReadonlyArray<Target> = [
  ...queryVariables(equipmentDashboard).map((v) => ({
    name: `$${v.name}`,
    datasourceType: typeOf(v.datasource, v.name),
    text: v.query!
  })),
  ...panelTargets(equipmentDashboard).map((t) => ({ ...t, name: t.name.slice(`${equipmentDashboard.uid} / `.length) }))
]

describe("the dashboards' targets", () => {
  it("are SQL on the TimescaleDB data source for Equipment telemetry, PromQL on Prometheus for Pipeline", () => {
    expect(dashboards.map((d) => d.title).sort()).toEqual(["Equipment telemetry", "Pipeline"])
    expect(new Set(sqlTargets.map((t) => t.datasourceType))).toEqual(new Set([SQL]))
    expect(new Set(panelTargets(dashboard("pipeline")).map((t) => t.datasourceType))).toEqual(new Set([PROMETHEUS]))
    // Every SQL query has its expected answer below, and nothing else is expected.
    expect(sqlTargets.map((t) => t.name).sort()).toEqual(Object.keys(expected).sort())
    // The per-sensor panels are in the row repeated for each sensor.
    expect(sqlTargets.filter((t) => t.repeat === "sensor").map((t) => t.name.split(" / ")[0])).toEqual(
      ["Hourly average, min–max band and p95", "Samples per hour", "Active minutes per hour", "Days"]
    )
  })
})

for (const database of databases) {
  describe(`Equipment telemetry's SQL on ${database.name}`, () => {
    layer(storeOn(database, 1_000), { timeout: 120_000 })((it) => {
      it.effect("every query runs as the reader role and answers the loaded readings, in the panels' columns", () =>
        Effect.gen(function*() {
          const store = yield* TelemetryStore
          yield* store.load(claim(), Stream.fromIterable(loaded))
          yield* store.load(claim({ tenantId: "other" }), Stream.fromIterable(otherTenant))
          yield* createReader

          // The variables in order, each seeing the ones before: the user picks the freezer; "All" sensors.
          const variables: Record<string, ReadonlyArray<string>> = { tenant: ["default"], equipment: ["dash-freezer"] }
          for (const target of sqlTargets) {
            const { columns, rows: expectedRows } = expected[target.name]!
            // A panel of a repeated row runs once per value; together they answer the expected rows.
            const runs = target.repeat === undefined
              ? [variables]
              : variables[target.repeat]!.map((value) => ({ ...variables, [target.repeat!]: [value] }))
            const answers = yield* Effect.forEach(runs, (values) =>
              asReader(interpolateSql(target.text, values, range)).pipe(
                Effect.mapError((e) => new Error(`${target.name}: ${e.message}`, { cause: e }))
              ))
            for (const rows of answers) {
              expect(rows.length, target.name).toBeGreaterThan(0)
              expect(Object.keys(rows[0]!), target.name).toEqual(columns)
            }
            expect(sorted(answers.flat().map(normalized)), target.name).toEqual(sorted(expectedRows))
            if (target.name === "$sensor") variables.sensor = answers[0]!.map((row) => String(row.__value))
          }
        }))

      it.effect("the reader role cannot write, nor read the accounts", () =>
        Effect.gen(function*() {
          yield* createReader
          const refusal = (text: string) => Effect.map(Effect.flip(asReader(text)), (e) => String(e.cause))
          expect(yield* refusal("DELETE FROM telemetry_data")).toMatch(/read-only transaction|permission denied/)
          expect(yield* refusal("SELECT * FROM accounts")).toMatch(/permission denied/)
        }))
    })
  })
}

// ---------------------------------------------------------------------------------------------------------------
// PromQL: parsed, and naming only what the processes expose

/** The metric names a PromQL expression selects; a syntax error fails. */
const metricNames = (expr: string): ReadonlyArray<string> => {
  const names: Array<string> = []
  const errors: Array<number> = []
  promql.parse(expr).iterate({
    enter: (node) => {
      if (node.type.isError) errors.push(node.from)
      if (node.name === "Identifier" && node.node.parent?.name === "VectorSelector") names.push(expr.slice(node.from, node.to))
    }
  })
  if (errors.length > 0) throw new Error(`not PromQL at ${errors.join(", ")}: ${expr}`)
  return names
}

/** The sample names of a Prometheus text exposition (histograms as their _bucket, _sum and _count series). */
const exposedNames = (text: string) =>
  new Set(
    text.split("\n").filter((line) => line !== "" && !line.startsWith("#")).map((line) => /^[a-zA-Z_:][\w:]*/.exec(line)![0])
  )

/** The values of a metric's samples, whatever their labels. */
const values = (text: string, name: string) =>
  text.split("\n").filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .map((line) => Number(line.split(" ").at(-1)))
const total = (text: string, name: string) => values(text, name).reduce((a, b) => a + b, 0)

const port = await freePort()
const base = `http://127.0.0.1:${port}`

describe("Pipeline's PromQL against /metrics of ingest and worker in one process", () => {
  layer(embeddedStack(port), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("every expression parses, and every metric it names is exposed after a load, a refusal and a dead letter", () =>
      Effect.gen(function*() {
        const post = (body: string, headers: Record<string, string>) =>
          Effect.promise(() => fetch(`${base}/api/v1/telemetry/bulk`, { method: "POST", headers, body }).then((r) => r.status))
        const asDevice = { "content-type": "application/json", ...bearer(deviceToken()) }
        // Readings of six hours ago (naive local times, whatever the zone): in the window the maintenance run below
        // materializes into telemetry_hourly.
        const hoursAgo = (h: number, m: number) => new Date(Date.now() - h * 3_600_000 + m * 60_000).toISOString().slice(0, 19)
        const [first] = haPayload("dashboards-1", [hoursAgo(6, 0), hoursAgo(6, 10), hoursAgo(6, 20)])
        // Accepted twice (the second time, renamed, its readings are stored already), and one refusal.
        expect(yield* post(JSON.stringify([first]), asDevice)).toBe(202)
        expect(yield* post(JSON.stringify([{ ...first, equip_nome: "Renamed" }]), asDevice)).toBe(202)
        expect(yield* post("{not json", asDevice)).toBe(400)
        // A claim whose object does not exist: dead-lettered.
        yield* Effect.flatMap(ClaimQueue, (queue) => queue.publish(claim()))

        const scrape = Effect.promise(() => fetch(`${base}/metrics`).then((r) => r.text()))
        // Two claims loaded, one dead-lettered.
        yield* eventually(scrape, (t) => total(t, "telemetry_worker_claims_total") === 3)
        // The maintenance jobs run (the aggregates get a watermark), and the status sampler reads their outcome.
        const before = Math.floor(Date.now() / 1000)
        yield* Effect.flatMap(Maintenance.Maintenance, (m) => m.runAll)
        const lastSuccess = (t: string) => Math.max(...values(t, "telemetry_maintenance_last_success_timestamp_seconds"))
        yield* eventually(scrape, (t) => lastSuccess(t) >= before)
        const text = yield* scrape
        expect(total(text, "telemetry_worker_readings_duplicate_total")).toBe(3)
        const exposed = exposedNames(text)

        const used = panelTargets(dashboard("pipeline")).flatMap((target) =>
          metricNames(interpolatePromql(target.text)).map((name) => ({ name, target: target.name }))
        )
        expect(used.length).toBeGreaterThan(0)
        expect(used.filter(({ name }) => !exposed.has(name)), [...exposed].join(" ")).toEqual([])
      }))
  })
})
