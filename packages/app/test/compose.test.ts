// No Docker engine runs here, so docker-compose.yml is checked statically: its services, images and health
// checks, the order in which they start, and that every variable it hands the app is one the sources read
// and the README documents.
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"
import { describe, expect, it } from "vitest"
import { parse } from "yaml"

interface Service {
  readonly image?: string
  readonly build?: unknown
  readonly command?: string | ReadonlyArray<string>
  readonly entrypoint?: string | ReadonlyArray<string>
  readonly environment?: Record<string, string | number | boolean | null> | ReadonlyArray<string>
  readonly depends_on?: Record<string, { readonly condition?: string }> | ReadonlyArray<string>
  readonly healthcheck?: { readonly test?: string | ReadonlyArray<string>; readonly disable?: boolean }
  readonly deploy?: { readonly replicas?: number }
  readonly restart?: string
  readonly volumes?: ReadonlyArray<string>
  readonly ports?: ReadonlyArray<string>
  readonly expose?: ReadonlyArray<string | number>
}

const root = fileURLToPath(new URL("../../../", import.meta.url))
// Compose resolves `<<` merge keys; YAML 1.2 parsers only do when asked.
const compose = parse(readFileSync(join(root, "docker-compose.yml"), "utf8"), { merge: true }) as {
  readonly services: Record<string, Service>
  readonly volumes?: Record<string, unknown>
}
const services = compose.services

const words = (value: string | ReadonlyArray<string> | undefined): ReadonlyArray<string> =>
  value === undefined ? [] : typeof value === "string" ? value.split(/\s+/) : value
const commandLine = (service: Service) => [...words(service.entrypoint), ...words(service.command)].join(" ")

const environment = (service: Service): Record<string, string> => {
  const env = service.environment ?? {}
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((entry: string) => [entry.split("=")[0]!, entry.slice(entry.indexOf("=") + 1)]))
  }
  return Object.fromEntries(Object.entries(env).map(([name, value]) => [name, String(value ?? "")]))
}

// `$$NAME` in a compose command is the container's own variable NAME.
const expand = (service: Service, text: string) =>
  text.replace(/\$\$\{?(\w+)\}?/g, (_, name: string) => environment(service)[name] ?? "")

const dependencies = (service: Service): Record<string, string> => {
  const deps = service.depends_on ?? {}
  return Array.isArray(deps)
    ? Object.fromEntries(deps.map((name: string) => [name, "service_started"]))
    : Object.fromEntries(Object.entries(deps).map(([name, dep]) => [name, dep.condition ?? "service_started"]))
}

const appServices = Object.entries(services).filter(([, service]) => service.build !== undefined)
/** The program a service runs: a TypeScript source through tsx, or its build by `pnpm build` in dist/. */
const entryOf = (service: Service) => words(service.command).find((word) => /\.[jt]s$/.test(word))
/** The source of an entry point: dist/main/ingest.js is built from packages/app/src/main/ingest.ts. */
const sourceOf = (entry: string) =>
  entry.startsWith("dist/") ? `packages/app/src/${entry.slice("dist/".length).replace(/\.js$/, ".ts")}` : entry
const runs = (source: string) =>
  appServices.filter(([, service]) => {
    const entry = entryOf(service)
    return entry !== undefined && sourceOf(entry) === source
  })
const ingest = runs("packages/app/src/main/ingest.ts")
const workers = runs("packages/app/src/main/worker.ts")
const initServices = Object.entries(services).filter(([, service]) => /kafka-topics\.sh|\bmc mb\b/.test(commandLine(service)))

const sourceFiles = (dir: string): ReadonlyArray<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : []
  )

const ENV_NAME = /^[A-Z][A-Z0-9_]*$/
// The names passed straight to `Config.string("NAME")`, `Config.integer("NAME")`, `Config.array(c, "NAME")`,
// `Config.literal(...)("NAME")`…, found in the syntax tree of every source file of every package.
const configNamesRead = (): ReadonlySet<string> => {
  const names = new Set<string>()
  const isConfigCall = (callee: ts.Expression): boolean =>
    (ts.isPropertyAccessExpression(callee) && ts.isIdentifier(callee.expression) &&
      callee.expression.text === "Config" && !["withDefault", "nested"].includes(callee.name.text)) ||
    (ts.isCallExpression(callee) && isConfigCall(callee.expression)) ||
    // The domain's settings (Settings.ts), which read their variable through Config.
    (ts.isIdentifier(callee) && ["integerSetting", "portSetting"].includes(callee.text))
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && isConfigCall(node.expression)) {
      for (const arg of node.arguments) {
        if (ts.isStringLiteralLike(arg) && ENV_NAME.test(arg.text)) names.add(arg.text)
      }
    }
    ts.forEachChild(node, visit)
  }
  for (const pkg of readdirSync(join(root, "packages"))) {
    const src = join(root, "packages", pkg, "src")
    if (!existsSync(src)) continue
    for (const file of sourceFiles(src)) {
      visit(ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest))
    }
  }
  return names
}

const documentedNames = (): ReadonlySet<string> =>
  new Set(
    [...readFileSync(join(root, "README.md"), "utf8").matchAll(/^\| `([A-Z][A-Z0-9_]*)` \|/gm)].map((match) => match[1]!)
  )

describe("docker-compose.yml", () => {
  it("runs Kafka, MinIO, TimescaleDB (TSL build, PostgreSQL 17), ingest and at least two workers", () => {
    expect(services.kafka?.image).toMatch(/^(docker\.io\/)?apache\/kafka:[\w.-]+$/)
    expect(services.minio?.image).toMatch(/^([\w.-]+\/)?minio\/minio:[\w.-]+$/)
    // The `-oss` images lack continuous aggregates (TimescaleDB License features).
    expect(services.timescaledb?.image).toMatch(/^(docker\.io\/)?timescale\/timescaledb:[\w.-]*pg17$/)

    expect(ingest.map(([name]) => name)).toEqual(["ingest"])
    expect(environment(services.ingest!).RUN_WORKER).toBe("false")
    const replicas = workers.reduce((sum, [, service]) => sum + (service.deploy?.replicas ?? 1), 0)
    expect(replicas).toBeGreaterThanOrEqual(2)
    for (const [, service] of [...ingest, ...workers]) {
      const [program, ...args] = words(service.command)
      expect(program).toBe("node")
      // The sources need tsx; their build (dist/) does not.
      if (!entryOf(service)!.startsWith("dist/")) expect(args.slice(0, 2)).toEqual(["--import", "tsx"])
    }
  })

  it("starts each app service on an entry point that exists, built by the image when it is compiled", () => {
    const entries = [...ingest, ...workers].map(([name, service]) => [name, entryOf(service)!] as const)
    expect(entries.filter(([, entry]) => !existsSync(join(root, sourceOf(entry))))).toEqual([])
    if (entries.some(([, entry]) => entry.startsWith("dist/"))) {
      expect(readFileSync(join(root, "Dockerfile"), "utf8")).toMatch(/\bpnpm (run )?build\b/)
    }
  })

  it("has health checks where services serve, ingest's on GET /api/v1/health, the workers' on their METRICS_PORT", () => {
    for (const name of ["kafka", "minio", "timescaledb", "ingest", ...workers.map(([name]) => name), "prometheus", "grafana"]) {
      const check = services[name]?.healthcheck
      expect(check?.disable, name).not.toBe(true)
      expect(words(check?.test).filter((word) => word !== "NONE").length, name).toBeGreaterThan(1)
    }
    expect(words(services.timescaledb!.healthcheck!.test).join(" ")).toContain("pg_isready")
    const port = environment(services.ingest!).PORT ?? "8080"
    expect(words(services.ingest!.healthcheck!.test).join(" ")).toContain(`:${port}/api/v1/health`)
    for (const [name, service] of workers) {
      const metricsPort = environment(service).METRICS_PORT ?? WORKER_METRICS_PORT
      expect(words(service.healthcheck!.test).join(" "), name).toContain(`:${metricsPort}/api/v1/health/ready`)
      // Reachable by Prometheus on the compose network, not published on the host.
      expect((service.expose ?? []).map(String), name).toContain(metricsPort)
      expect(service.ports ?? [], name).toEqual([])
    }
  })

  it("starts ingest and workers once the infrastructure is healthy and its topics and bucket exist", () => {
    expect(initServices.map(([name]) => name).sort()).toEqual(["kafka-init", "minio-init"])
    for (const [name, service] of initServices) {
      expect(service.restart ?? "no", name).toBe("no")
    }
    for (const [name, service] of appServices) {
      const deps = dependencies(service)
      for (const infra of ["kafka", "minio", "timescaledb"]) expect(deps[infra], `${name} → ${infra}`).toBe("service_healthy")
      for (const [init] of initServices) expect(deps[init], `${name} → ${init}`).toBe("service_completed_successfully")
      expect(service.restart, name).toMatch(/^(always|unless-stopped|on-failure)/)
    }
  })

  it("keeps the data of Kafka, MinIO and TimescaleDB in declared named volumes", () => {
    for (const name of ["kafka", "minio", "timescaledb"]) {
      const sources = (services[name]?.volumes ?? []).map((mount) => mount.split(":")[0]!)
      expect(sources.filter((source) => source in (compose.volumes ?? {})).length, name).toBe(1)
    }
  })

  it("hands ingest and workers only variables that the sources read", () => {
    const read = configNamesRead()
    const unread = appServices.flatMap(([name, service]) =>
      Object.keys(environment(service)).filter((variable) => !read.has(variable)).map((variable) => `${name}: ${variable}`)
    )
    expect(unread).toEqual([])
  })

  it("hands ingest and workers only variables that the README's configuration table documents", () => {
    const documented = documentedNames()
    const undocumented = appServices.flatMap(([name, service]) =>
      Object.keys(environment(service)).filter((variable) => !documented.has(variable)).map((variable) => `${name}: ${variable}`)
    )
    expect(undocumented).toEqual([])
  })

  it("points KAFKA_TOPIC at a topic kafka-init creates with 3 partitions, beside a 1-partition dead-letter topic", () => {
    const init = services["kafka-init"]!
    const partitions = new Map(
      expand(init, commandLine(init)).split("kafka-topics.sh").filter((call) => /--create\b/.test(call)).map((call) => [
        /--topic\s+(\S+)/.exec(call)?.[1],
        Number(/--partitions\s+(\d+)/.exec(call)?.[1])
      ])
    )
    expect(partitions.get("telemetry.dlq")).toBe(1)
    const advertised = environment(services.kafka!).KAFKA_ADVERTISED_LISTENERS ?? ""
    for (const [name, service] of appServices) {
      const env = environment(service)
      expect(env.KAFKA_TOPIC, name).toBeDefined()
      expect(partitions.get(env.KAFKA_TOPIC!), name).toBe(3)
      for (const broker of (env.KAFKA_BROKERS ?? "").split(",")) expect(advertised, name).toContain(`//${broker}`)
    }
  })

  it("gives the app the addresses and credentials of MinIO and TimescaleDB, and the bucket minio-init creates", () => {
    const minio = environment(services.minio!)
    const postgres = environment(services.timescaledb!)
    const init = services["minio-init"]!
    const bucket = /\bmc mb\b[^&;]*?\s"?\w+\/([\w.-]+)"?/.exec(expand(init, commandLine(init)))?.[1]
    for (const [name, service] of appServices) {
      const env = environment(service)
      expect(new URL(env.S3_ENDPOINT!).host, name).toBe("minio:9000")
      expect([env.S3_ACCESS_KEY, env.S3_SECRET_KEY], name).toEqual([minio.MINIO_ROOT_USER, minio.MINIO_ROOT_PASSWORD])
      expect(env.STORAGE_BUCKET, name).toBe(bucket)
      const database = new URL(env.DATABASE_URL!)
      expect([database.host, database.username, database.password, database.pathname], name).toEqual([
        "timescaledb:5432",
        postgres.POSTGRES_USER,
        postgres.POSTGRES_PASSWORD,
        `/${postgres.POSTGRES_DB}`
      ])
    }
  })
})

// Where the file or folder a service sees at `target` is in the repository (a bind mount of `./…`).
const hostPath = (service: Service, target: string): string => {
  for (const mount of service.volumes ?? []) {
    const [source, at] = mount.split(":") as [string, string]
    if (source.startsWith(".") && (target === at || target.startsWith(`${at}/`))) {
      return join(root, source, target.slice(at.length))
    }
  }
  throw new Error(`nothing of the repository is mounted at ${target}`)
}

const containerPorts = (service: Service) => (service.ports ?? []).map((port) => port.split(":").at(-1))
const readYaml = (path: string) => parse(readFileSync(path, "utf8"))
const yamlFiles = (dir: string) => readdirSync(dir).filter((name) => /\.ya?ml$/.test(name)).map((name) => join(dir, name))

// The worker's default METRICS_PORT, where each replica serves /metrics when compose does not set it.
const WORKER_METRICS_PORT = "9464"

interface ScrapeJob {
  readonly job_name: string
  readonly metrics_path?: string
  readonly static_configs?: ReadonlyArray<{ readonly targets: ReadonlyArray<string> }>
  readonly dns_sd_configs?: ReadonlyArray<{ readonly names: ReadonlyArray<string>; readonly type?: string; readonly port: number }>
}

interface Datasource {
  readonly uid: string
  readonly type: string
  readonly url: string
  readonly user?: string
  readonly jsonData?: { readonly database?: string }
  readonly secureJsonData?: { readonly password?: string }
}

describe("docker-compose.yml: Prometheus and Grafana", () => {
  const prometheus = services.prometheus!
  const grafana = services.grafana!
  const dbInit = services["grafana-db-init"]!
  const provisioning = hostPath(grafana, "/etc/grafana/provisioning")
  const datasources: ReadonlyArray<Datasource> = yamlFiles(join(provisioning, "datasources"))
    .flatMap((file) => readYaml(file).datasources)
  const dashboardDirs: ReadonlyArray<string> = yamlFiles(join(provisioning, "dashboards"))
    .flatMap((file) => readYaml(file).providers)
    .map((provider: { options: { path: string } }) => hostPath(grafana, provider.options.path))

  it("runs Prometheus and Grafana from pinned images, on ports 9090 and 3000, their data in named volumes", () => {
    expect(prometheus.image).toMatch(/^(docker\.io\/)?prom\/prometheus:v\d+\.\d+\.\d+$/)
    expect(grafana.image).toMatch(/^(docker\.io\/)?grafana\/grafana(-oss)?:\d+\.\d+\.\d+$/)
    expect(containerPorts(prometheus)).toEqual(["9090"])
    expect(containerPorts(grafana)).toEqual(["3000"])
    for (const [service, data] of [[prometheus, "/prometheus"], [grafana, "/var/lib/grafana"]] as const) {
      const source = (service.volumes ?? []).find((mount) => mount.split(":")[1] === data)?.split(":")[0]
      expect(compose.volumes ?? {}, data).toHaveProperty(source!)
    }
  })

  it("scrapes /metrics of ingest on its PORT and of every worker replica, found by DNS, on METRICS_PORT", () => {
    const configFile = words(prometheus.command).find((word) => word.startsWith("--config.file="))!.split("=")[1]!
    const jobs: ReadonlyArray<ScrapeJob> = readYaml(hostPath(prometheus, configFile)).scrape_configs
    for (const job of jobs) expect(job.metrics_path ?? "/metrics", job.job_name).toBe("/metrics")

    const [ingestName, ingestService] = ingest[0]!
    const ingestTarget = `${ingestName}:${environment(ingestService).PORT}`
    expect(jobs.filter((job) => job.static_configs?.some((c) => c.targets.includes(ingestTarget)))).toHaveLength(1)

    for (const [name, service] of workers) {
      const port = Number(environment(service).METRICS_PORT ?? WORKER_METRICS_PORT)
      // The service name resolves to the address of each replica: one A record per container.
      const found = jobs.flatMap((job) => job.dns_sd_configs ?? []).filter((c) => c.names.includes(name))
      expect(found.map((c) => [c.type ?? "SRV", c.port]), name).toEqual([["A", port]])
    }
  })

  it("starts Prometheus after the app without waiting for its health, and Grafana once Prometheus and its database role are ready", () => {
    expect(Object.keys(dependencies(prometheus)).sort()).toEqual([...ingest, ...workers].map(([name]) => name).sort())
    expect(dependencies(grafana)).toEqual({
      prometheus: "service_healthy",
      "grafana-db-init": "service_completed_successfully"
    })
    expect(dependencies(dbInit)).toEqual({ timescaledb: "service_healthy" })
    expect(dbInit.restart).toBe("no")
  })

  it("gives Grafana's admin a password from the environment with no default, and no anonymous access or sign-up", () => {
    const env = environment(grafana)
    // `${NAME:?message}`: compose refuses to start without NAME.
    expect(env.GF_SECURITY_ADMIN_PASSWORD).toMatch(/^\$\{\w+:?\?[^}]*\}$/)
    expect(env.GF_AUTH_ANONYMOUS_ENABLED).toBe("false")
    expect(env.GF_USERS_ALLOW_SIGN_UP).toBe("false")
  })

  it("provisions a Prometheus data source on the prometheus service", () => {
    const sources = datasources.filter((source) => source.type === "prometheus")
    expect(sources.map((source) => source.url)).toEqual([`http://prometheus:${containerPorts(prometheus)[0]}`])
  })

  it("provisions the database as the read-only role that grafana-db-init creates, with the password it sets", () => {
    const postgres = environment(services.timescaledb!)
    const [source, ...others] = datasources.filter((s) => s.type === "grafana-postgresql-datasource")
    expect(others).toEqual([])
    expect([source!.url, source!.jsonData?.database]).toEqual(["timescaledb:5432", postgres.POSTGRES_DB])

    // The init connects as the database's owner and runs the repository's reader.sql.
    const init = environment(dbInit)
    expect([init.PGHOST, init.PGUSER, init.PGPASSWORD, init.PGDATABASE]).toEqual([
      "timescaledb",
      postgres.POSTGRES_USER,
      postgres.POSTGRES_PASSWORD,
      postgres.POSTGRES_DB
    ])
    const script = expand(dbInit, commandLine(dbInit))
    const sqlFile = /psql [^\n]*-f (\S+)/.exec(script)![1]!
    const role = /CREATE ROLE (\w+)/.exec(readFileSync(hostPath(dbInit, sqlFile), "utf8"))![1]
    expect(source!.user).toBe(role)

    // Grafana reads the password from its environment, where it is the one the init gives the role.
    const variable = /^\$\{?(\w+)\}?$/.exec(source!.secureJsonData?.password ?? "")![1]!
    const password = environment(grafana)[variable]
    expect(password).toBeTruthy()
    expect(script).toContain(`ALTER ROLE ${role} PASSWORD :'password'`)
    expect(script).toContain(`-v password="${password}"`)
  })

  it("provisions the Equipment telemetry and Pipeline dashboards, on provisioned data sources", () => {
    const dashboards = dashboardDirs.flatMap((dir) =>
      readdirSync(dir).filter((name) => name.endsWith(".json")).map((name) => JSON.parse(readFileSync(join(dir, name), "utf8")))
    )
    expect(dashboards.map((dashboard) => dashboard.title).sort()).toEqual(["Equipment telemetry", "Pipeline"])
    const uids = new Set(datasources.map((source) => source.uid))
    const used = new Set<string>()
    const collect = (node: unknown): void => {
      if (Array.isArray(node)) return node.forEach(collect)
      if (node === null || typeof node !== "object") return
      const { datasource, ...rest } = node as Record<string, unknown>
      if (datasource !== undefined) used.add((datasource as { uid: string }).uid)
      Object.values(rest).forEach(collect)
    }
    collect(dashboards)
    expect([...used].filter((uid) => !uids.has(uid))).toEqual([])
    expect(used.size).toBe(2)
  })
})
