import { NodeContext } from "@effect/platform-node"
import { Effect } from "effect"
import { join } from "node:path"
import * as DirectoryLock from "../../src/DirectoryLock.js"

// `lock-holder <directory> <locks> <start>`: tries the locks `<directory>/<i>.pid` one after the other, the i-th at
// the time `start` + i × 20 ms (ms since the epoch) so that other processes try it at the same moment, holding those
// it takes until its stdin ends. Prints a line per lock: "<i> took", or "<i> refused: <why>".
const [directory, locks, start] = process.argv.slice(2)

const stdinEnded = Effect.async<void>((resume) => {
  process.stdin.on("end", () => resume(Effect.void)).resume()
})

Effect.runPromise(
  Effect.scoped(Effect.gen(function*() {
    for (let i = 0; i < Number(locks); i++) {
      yield* Effect.sleep(Math.max(0, Number(start) + i * 20 - Date.now()))
      const outcome = yield* Effect.either(DirectoryLock.hold(join(directory!, `${i}.pid`), `lock ${i}`))
      console.log(outcome._tag === "Right" ? `${i} took` : `${i} refused: ${outcome.left.message}`)
    }
    yield* stdinEnded
  })).pipe(Effect.provide(NodeContext.layer))
)
