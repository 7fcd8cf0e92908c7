import { FileSystem, Path } from "@effect/platform"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"
import { gzipSync } from "node:zlib"

/** A file of the console, held in memory: the pages are small and read on every visit. */
export interface StaticFile {
  readonly contentType: string
  readonly body: Uint8Array
  /** The body gzip-compressed, for clients that accept it. */
  readonly gzipped: Uint8Array
  readonly etag: string
}

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml"
}

const resolve = createRequire(import.meta.url).resolve

/** uPlot from node_modules, served as our own files: the console loads nothing from elsewhere. */
const vendored = {
  "uplot.js": resolve("uplot/dist/uPlot.esm.js"),
  "uplot.css": resolve("uplot/dist/uPlot.min.css")
}

/** The console's files by name: those of `static/` beside this module, and the vendored ones. */
export const load = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const dir = fileURLToPath(new URL("./static/", import.meta.url))
  const own = (yield* fs.readDirectory(dir)).map((name) => [name, path.join(dir, name)] as const)
  const files = new Map<string, StaticFile>()
  for (const [name, file] of [...own, ...Object.entries(vendored)]) {
    const contentType = contentTypes[path.extname(name)]
    if (contentType === undefined) return yield* Effect.dieMessage(`console: no content type for ${name}`)
    const body = yield* fs.readFile(file)
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`
    files.set(name, { contentType, body, gzipped: gzipSync(body), etag })
  }
  return files as ReadonlyMap<string, StaticFile>
})
