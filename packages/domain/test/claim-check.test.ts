import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { claimFor, factsOf, factsToMetadata, type PayloadFacts } from "../src/ClaimCheck.js"

const facts: PayloadFacts = {
  claimId: "0b0a1b2c-3d4e-4f50-8a61-727384950a1b",
  requestId: "req-1",
  deviceId: "device-7",
  tenantId: "tenant-a",
  timeZone: "America/Sao_Paulo",
  receivedAt: new Date("2026-12-03T00:15:19.700Z"),
  originalSize: 1234,
  sha256: "ab".repeat(32),
  items: 2,
  readings: 17
}
const object = (metadata: Record<string, string>) => ({ key: "telemetry/x/y.json.gz", size: 99, metadata })
const storage = { storageType: "s3", bucket: "telemetry-raw" }

describe("stored facts", () => {
  it("are the object's metadata as S3 keeps it, and read back as they were written", () => {
    const metadata = factsToMetadata(facts)
    expect(metadata).toEqual({
      "claim-id": facts.claimId,
      "request-id": "req-1",
      "device-id": "device-7",
      "tenant-id": "tenant-a",
      "time-zone": "America/Sao_Paulo",
      "received-at": "2026-12-03T00:15:19.700Z",
      "original-size": "1234",
      sha256: facts.sha256,
      "items-count": "2",
      "sensors-count": "17"
    })
    expect(factsOf(object(metadata))).toEqual(Either.right(facts))
    expect(factsOf(object(factsToMetadata({ ...facts, deviceId: null })))).toEqual(Either.right({ ...facts, deviceId: null }))
  })

  it("hold no key for an optional fact left undefined: a store sends every key as a header", () => {
    const untraced = factsToMetadata({ ...facts, timeZone: undefined, traceparent: undefined })
    expect(Object.keys(untraced)).not.toContain("traceparent")
    expect(Object.keys(untraced)).not.toContain("time-zone")
    expect(Object.values(untraced).every((value) => typeof value === "string")).toBe(true)
  })

  it("of an object without a tenant, or damaged, are refused with its key: never taken for another tenant's", () => {
    const { "tenant-id": _, ...withoutTenant } = factsToMetadata(facts)
    for (const metadata of [withoutTenant, { ...withoutTenant, "tenant-id": " " }, { ...factsToMetadata(facts), "claim-id": "x" }, {}]) {
      const refused = factsOf(object(metadata))
      expect(Either.isLeft(refused) && refused.left).toMatchObject({ _tag: "InvalidStoredObject", key: "telemetry/x/y.json.gz" })
    }
  })

  it("make the claim check of their object", () => {
    expect(claimFor(facts, object(factsToMetadata(facts)), storage)).toMatchObject({
      claim_id: facts.claimId,
      claim_check: "telemetry/x/y.json.gz",
      storage_type: "s3",
      file_size: 99,
      original_size: 1234,
      timestamp: "2026-12-03T00:15:19.700Z",
      metadata: { tenantId: "tenant-a", deviceId: "device-7", timeZone: "America/Sao_Paulo", itemsCount: 2, totalSensors: 17 }
    })
  })
})
