// `pnpm bench [--full] [--only worker,ingest,memory,analytics]`: see run.ts; `pnpm bench --soak [minutes]`: see
// soak.ts; `pnpm bench --soak-report` draws the last soak's plot and summary again from bench/soak.json. The
// resolve hook comes first, so that the benchmark's imports of the workspace packages and their dependencies
// resolve (see resolve.mjs).
import { register } from "node:module"

register("./resolve.mjs", import.meta.url)
if (process.argv.includes("--soak-report")) {
  const { NodeRuntime } = await import("@effect/platform-node")
  const { Effect } = await import("effect")
  const { republish } = await import("./soakReport.js")
  NodeRuntime.runMain(Effect.flatMap(republish, (summary) => Effect.sync(() => process.stdout.write(summary))))
} else {
  await import(process.argv.includes("--soak") ? "./soak.js" : "./run.js")
}
