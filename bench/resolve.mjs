// The bench lives at the repository's root, whose package.json lists none of the workspace packages or their
// dependencies. Bare imports that do not resolve from here are resolved as if imported by these packages.
const fallbacks = ["../packages/app/package.json", "../packages/ingest/package.json", "../packages/worker/package.json",
  "../packages/infra/package.json", "../packages/domain/package.json", "../packages/testbed/package.json"].map((path) => new URL(path, import.meta.url).href)
const bench = new URL("./", import.meta.url).href

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context)
  } catch (error) {
    if (error?.code !== "ERR_MODULE_NOT_FOUND" || !context.parentURL?.startsWith(bench)) throw error
    for (const parentURL of fallbacks) {
      try {
        return await nextResolve(specifier, { ...context, parentURL })
      } catch {}
    }
    throw error
  }
}
