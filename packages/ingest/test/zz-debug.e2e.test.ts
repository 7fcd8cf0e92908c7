import { expect, layer } from "@effect/vitest"
import * as KafkaMock from "@telemetry/testbed/KafkaMock"
import * as PostgresDatabase from "@telemetry/testbed/PostgresDatabase"
import * as S3Server from "@telemetry/testbed/S3Server"
import { Context, Effect, Layer } from "effect"
import { type Bed, CLAIMS_TOPIC, DLQ_TOPIC, makeBed, MiB, shipment } from "./support/faults.js"

class FaultBed extends Context.Tag("FaultBed")<FaultBed, Bed>() {}
const bed = Layer.scoped(FaultBed, makeBed).pipe(
  Layer.provide(Layer.mergeAll(KafkaMock.layer({ topics: { [CLAIMS_TOPIC]: 3, [DLQ_TOPIC]: 1 } }), S3Server.layer, PostgresDatabase.layer))
)
layer(bed, { timeout: 180_000, excludeTestServices: true })("debug", (it) => {
  it.effect("x", () => Effect.gen(function*() {
    const b = yield* FaultBed
    const big = shipment({ prefix: "big", device: "d1", items: 2, readingsPerItem: 200, encoding: "gzip-stored", padding: 13 * MiB })
    let open = () => {}
    const release = new Promise<void>((r) => (open = r))
    const p = b.post("x", big, { at: 12 * MiB, release })
    const since = b.s3.requests().length
    for (let i = 0; i < 10; i++) {
      yield* Effect.sleep("1 second")
      console.log(i, b.s3.requests().slice(since).join(" ; "))
    }
    open()
    console.log(JSON.stringify(yield* Effect.promise(() => p)))
    console.log(b.s3.requests().slice(since).join("\n"))
    console.log(b.logs(3000))
    expect(1).toBe(1)
  }), 120_000)
})
