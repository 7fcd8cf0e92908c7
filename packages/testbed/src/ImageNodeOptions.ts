import { readFileSync } from "node:fs"

/**
 * The Node options the image runs its programs with (the Dockerfile's `ENV NODE_OPTIONS`), for the tests and
 * benchmarks that run the compiled programs as the image does.
 */
export const imageNodeOptions =
  readFileSync(new URL("../../../Dockerfile", import.meta.url), "utf8").match(/^ENV NODE_OPTIONS=(.*)$/m)?.[1] ?? ""
