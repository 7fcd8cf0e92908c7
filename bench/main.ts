// `pnpm bench [--full] [--only worker,ingest,memory,analytics]`: see run.ts; `pnpm bench --soak [minutes]`: see
// soak.ts. The resolve hook comes first, so that the benchmark's imports of the workspace packages and their
// dependencies resolve (see resolve.mjs).
import { register } from "node:module"

register("./resolve.mjs", import.meta.url)
await import(process.argv.includes("--soak") ? "./soak.js" : "./run.js")
