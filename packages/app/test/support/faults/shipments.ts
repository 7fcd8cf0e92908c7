import { bulkPayload } from "@telemetry/domain/testing"
import { randomUUID } from "node:crypto"
import { gzipSync } from "node:zlib"

export const MiB = 1024 * 1024

/** Readings start five days back, so the newest of a few thousand a sensor stays in the past and in retention. */
const DAY = 86_400_000
const START = Math.floor(Date.now() / DAY) * DAY - 5 * DAY

/** One request: its body, and what the database must hold for it (its equipments' uuids start with `prefix`). */
export interface Shipment {
  readonly requestId: string
  readonly device: string
  readonly prefix: string
  readonly readings: number
  readonly body: Buffer
  readonly gzipped: boolean
}

export interface ShipmentSpec {
  /** Unique per shipment, without "-": the database tells its rows apart by it. */
  readonly prefix: string
  readonly device: string
  readonly items: number
  readonly readingsPerItem: number
  /** `gzip-stored`: gzip without compression (level 0), so the object is as large as the JSON. */
  readonly encoding: "plain" | "gzip" | "gzip-stored"
  /** Blanks between consecutive items: bulk that costs the pipeline bytes but no readings. */
  readonly padding?: number
}

export const shipment = (spec: ShipmentSpec): Shipment => {
  const items = bulkPayload(spec.items, spec.readingsPerItem, START, spec.prefix).map((item) => JSON.stringify(item))
  const json = Buffer.from(`[${items.join(`,${" ".repeat(spec.padding ?? 0)}`)}]`)
  const body = spec.encoding === "plain" ? json : gzipSync(json, { level: spec.encoding === "gzip" ? 6 : 0 })
  return {
    requestId: randomUUID(),
    device: spec.device,
    prefix: spec.prefix,
    readings: spec.items * spec.readingsPerItem,
    body,
    gzipped: spec.encoding !== "plain"
  }
}
