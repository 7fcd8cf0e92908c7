import { readFileSync } from "node:fs"

/**
 * The environment the image runs its programs in (the `ENV` lines of the Dockerfile's last stage: Node's options,
 * malloc's arenas), for the tests and benchmarks that run the compiled programs as the image does.
 */
export const imageEnvironment: Readonly<Record<string, string>> = Object.fromEntries(
  Array.from(
    readFileSync(new URL("../../../Dockerfile", import.meta.url), "utf8").split(/^FROM /m).at(-1)!.matchAll(/^ENV (\w+)=(.*)$/gm),
    ([, name, value]) => [name!, value!]
  )
)
