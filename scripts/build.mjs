// `pnpm build`: the entry points compiled to JavaScript in dist/, for production (`node dist/main/ingest.js`).
// Our code and the packages it uses are bundled, minified but for their names; PGlite alone stays external and is
// loaded from its own directory (it finds its WASM and data files beside itself). Code splitting keeps each adapter
// in a chunk of its own, so that a process loads kafkajs, minio, pg or PGlite only when Infrastructure chooses that
// adapter.
//
// Layout: every file of dist/ sits one directory below it (main/, cli/, threads/, chunks/), so "../../" from any of
// them is the repository's root. dist/ runs inside the repository it was built from, which keeps node_modules,
// migrations/ and the console's static files where the bundled modules look for them.
import * as esbuild from "esbuild"
import { existsSync } from "node:fs"
import { mkdir, readFile, rm, symlink } from "node:fs/promises"
import { builtinModules } from "node:module"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../", import.meta.url))
const dist = join(root, "dist")

/** What `pnpm <script>` runs through tsx from packages/app/src (servers and command lines) is what gets compiled. */
const scripts = JSON.parse(await readFile(join(root, "package.json"), "utf8")).scripts
const fromScripts = Object.entries(scripts).flatMap(([script, command]) => {
  const match = /--import tsx (packages\/app\/src\/((?:main|cli)\/[\w-]+)\.ts)\b/.exec(command)
  if (!match) return []
  if (!existsSync(join(root, match[1]))) {
    console.error(`warning: \`pnpm ${script}\` runs ${match[1]}, which does not exist: not compiled`)
    return []
  }
  return [{ in: `./${match[1]}`, out: match[2] }]
})

/** Entry points that no script runs: worker-thread modules, loaded by URL (see `sourceRelative` below). */
const threads = [{ in: "./packages/ingest/src/validation/thread.ts", out: "threads/validation" }]

const entryPoints = [...fromScripts, ...threads]
for (const entry of entryPoints) {
  if (entry.out.split("/").length !== 2) throw new Error(`${entry.in}: its output must be <directory>/<name>, got ${entry.out}`)
}

const isBuiltin = (specifier) => specifier.startsWith("node:") || builtinModules.includes(specifier.split("/")[0])
const packageName = (specifier) => specifier.split("/").slice(0, specifier.startsWith("@") ? 2 : 1).join("/")

/**
 * Packages are bundled with our code. Effect's are side-effect free ES modules: only what we use of their barrels is
 * loaded (else @effect/platform alone holds the 13 MB of Scalar's bundle as strings, and @effect/platform-node loads
 * the cluster and RPC modules). The others too: loaded from node_modules, file by file, a package costs about twice
 * the memory (minio: 37 MiB of RSS against 15 bundled, its dependencies' CommonJS included; the ingest process idle:
 * 180 → 151 MiB with the minifying below).
 */
const unbundled = /^(@unni-craftsman\/pglite|pg-native)(\/|$)/
const bundled = (specifier) => !unbundled.test(specifier)
/** Optional packages that are not installed (pg's native binding): left to fail at run time, where it is caught. */
const optional = new Set(["pg-native"])

/**
 * Bare imports of the others stay external. Each is linked into dist/node_modules from the directory it resolves to
 * for the module that imports it (pnpm gives each workspace package its own node_modules), and two modules needing
 * different versions of one package fail the build.
 */
const externals = new Map()
const externalPackages = {
  name: "external-packages",
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.pluginData === "resolving" || isBuiltin(args.path) || bundled(args.path)) return undefined
      const resolved = await build.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, pluginData: "resolving" })
      if (resolved.errors.length > 0 && optional.has(args.path)) return { path: args.path, external: true }
      if (resolved.errors.length > 0) return { errors: resolved.errors }
      const name = packageName(args.path)
      const marker = `/node_modules/${name}/`
      const directory = resolved.path.slice(0, resolved.path.lastIndexOf(marker) + marker.length - 1)
      const known = externals.get(name)
      if (known !== undefined && known !== directory) {
        return { errors: [{ text: `${name} resolves to both ${known} and ${directory}: one bundle cannot import both` }] }
      }
      externals.set(name, directory)
      return { path: args.path, external: true }
    })
  }
}

/**
 * effect's FastCheck module re-exports fast-check for Arbitrary, which only tests use; bundled effect keeps that
 * import alive, and fast-check's 220 modules would load in every process. The programs get an empty module instead.
 */
const withoutFastCheck = {
  name: "without-fast-check",
  setup(build) {
    build.onResolve({ filter: /^fast-check$/ }, () => ({ path: "fast-check", namespace: "absent" }))
    build.onLoad({ filter: /.*/, namespace: "absent" }, () => ({ contents: "export {}", loader: "js" }))
  }
}

/**
 * `import { A, B } from "@effect/platform"` (or -node) becomes `import * as A from "@effect/platform/A"`, ...: what
 * such a barrel re-exports is one namespace per module, and esbuild cannot drop the modules behind a barrel that
 * re-export a whole external package (`export * from "undici"`), so through the barrel every process would load
 * undici and ws.
 */
const deepImports = (source) =>
  source.replace(/import\s*\{([^}]*)\}\s*from\s*"(@effect\/platform(?:-node)?)"/g, (_statement, names, pkg) =>
    names.split(",").map((name) => name.trim()).filter((name) => name !== "" && !name.startsWith("type "))
      .map((name) => {
        const [imported, local = imported] = name.split(/\s+as\s+/)
        return `import * as ${local} from "${pkg}/${imported}"`
      }).join("; "))

/**
 * Paths relative to a bundled module's source stay relative to its source, so that they resolve as under tsx:
 * `new URL("<path>", import.meta.url)` (migrations, the console's static files) and `createRequire(import.meta.url)`
 * (uPlot from the console's node_modules). Except `new URL("./x.ts", import.meta.url)` naming another entry point,
 * which becomes the URL of that entry's compiled file (a worker thread's module). Any other `import.meta.url` is the
 * compiled file's own.
 */
const compiledEntries = new Map(entryPoints.map((entry) => [resolve(root, entry.in), entry.out]))
const sourceRelative = (path, source) => {
  if (!source.includes("import.meta.url")) return source
  const sourceUrl = `new URL(${JSON.stringify(`../../${relative(root, path)}`)}, import.meta.url)`
  return source
    .replace(/new URL\(\s*(["'])([^"']+)\1\s*,\s*import\.meta\.url\s*\)/g, (_call, _quote, target) => {
      const out = compiledEntries.get(resolve(dirname(path), target))
      return out === undefined
        ? `new URL(${JSON.stringify(target)}, ${sourceUrl})`
        : `new URL(${JSON.stringify(`../${out}.js`)}, import.meta.url)`
    })
    .replace(/createRequire\(\s*import\.meta\.url\s*\)/g, `createRequire(${sourceUrl})`)
}

/** Our TypeScript, with the two rewrites above. */
const workspaceSources = {
  name: "workspace-sources",
  setup(build) {
    build.onLoad({ filter: /[\\/]packages[\\/].*\.ts$/ }, async (args) => ({
      contents: sourceRelative(args.path, deepImports(await readFile(args.path, "utf8"))),
      loader: "ts"
    }))
  }
}

await rm(dist, { recursive: true, force: true })
// One build per entry point: esbuild decides what of a package is live across all the entry points of a build, and
// puts what an entry can reach into its chunks, so a shared build would load in every process what any one uses
// (the HTTP server and OpenTelemetry in the validation threads). Chunks of all builds share dist/chunks.
const results = await Promise.all(entryPoints.map((entry) =>
  esbuild.build({
    absWorkingDir: root,
    entryPoints: [entry],
    outdir: dist,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    chunkNames: "chunks/[name]-[hash]",
    metafile: true,
    logLevel: "warning",
    // Smaller sources to hold in memory; identifiers are kept, so that stack traces still name the functions.
    minifyWhitespace: true,
    minifySyntax: true,
    // The bundled CommonJS packages require Node's modules (and optional packages): ES modules have no `require`.
    banner: { js: 'import { createRequire as __createRequire } from "node:module"; const require = __createRequire(import.meta.url);' },
    plugins: [withoutFastCheck, externalPackages, workspaceSources]
  })
))

await mkdir(join(dist, "node_modules"), { recursive: true })
for (const [name, directory] of [...externals].sort()) {
  const link = join(dist, "node_modules", name)
  await mkdir(dirname(link), { recursive: true })
  // Relative, so that dist/ and node_modules/ can move together (e.g. into an image).
  await symlink(relative(dirname(link), directory), link, "dir")
}

const outputs = Object.assign({}, ...results.map((result) => result.metafile.outputs))
const bytes = Object.values(outputs).reduce((sum, output) => sum + output.bytes, 0)
console.error(
  `dist/: ${entryPoints.length} entry points, ${Object.keys(outputs).length} files, ` +
    `${(bytes / 1e6).toFixed(1)} MB; ${externals.size} external packages linked in dist/node_modules`
)
