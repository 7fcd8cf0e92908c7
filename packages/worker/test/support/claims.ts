import {
  type ClaimCheck,
  claimFor,
  decodePayload,
  factsToMetadata,
  ObjectStore,
  objectKey,
  PayloadConfig,
  type PayloadFacts
} from "@telemetry/domain"
import { ConfigProvider, Effect, Logger, LogLevel, Stream } from "effect"
import { createHash, randomUUID } from "node:crypto"
import { gzipSync } from "node:zlib"

export interface Stashed {
  readonly claim: ClaimCheck
  readonly receivedAt: Date
  /** The object's bytes as stored, to put it back after a test removed it. */
  readonly bytes: Uint8Array
  readonly metadata: Record<string, string>
}

/** Stores a payload as ingest does (gzip, metadata of its facts) and answers the claim check for it. */
export const stash = (
  payload: unknown,
  options: { readonly raw?: Uint8Array; readonly receivedAt?: Date; readonly tenantId?: string; readonly deviceId?: string } = {}
) =>
  Effect.gen(function*() {
    const storage = yield* ObjectStore
    const json = Buffer.from(JSON.stringify(payload))
    const bytes = options.raw ?? gzipSync(json, { level: 1 })
    const claimId = randomUUID()
    const receivedAt = options.receivedAt ?? new Date("2026-11-20T14:00:00.000Z")
    const items = Array.isArray(payload) ? payload.length : 0
    const readings = Array.isArray(payload)
      ? payload.reduce((n: number, i: any) => n + (Array.isArray(i?.sensor) ? i.sensor.length : 0), 0)
      : 0
    const facts: PayloadFacts = {
      claimId,
      requestId: `req-${claimId}`,
      deviceId: options.deviceId ?? "device-1",
      tenantId: options.tenantId ?? "default",
      timeZone: "UTC",
      receivedAt,
      originalSize: json.length,
      sha256: createHash("sha256").update(json).digest("hex"),
      items,
      readings
    }
    const metadata = factsToMetadata(facts)
    const object = yield* storage.put(objectKey(claimId, receivedAt), Stream.make(bytes), Effect.succeed(metadata))
    return { claim: claimFor(facts, object, storage), receivedAt, bytes, metadata } satisfies Stashed
  })

/** Puts a stashed payload's object back (after a test deleted it). */
export const restore = (stashed: Stashed) =>
  Effect.flatMap(ObjectStore, (storage) =>
    storage.put(stashed.claim.claim_check, Stream.make(stashed.bytes), Effect.succeed(stashed.metadata)))

/** One equipment `equipment` with `readings` readings of 4 sensors, one second apart from `start`. */
export const readingsPayload = (equipment: string, readings: number, start = Date.UTC(2026, 10, 10)) => [{
  equip_uuid: equipment,
  sensor: Array.from({ length: readings }, (_, j) => ({
    sensor_uuid: `${equipment}-s${j % 4}`,
    valor: j % 100,
    sensor_datahora_coleta: new Date(start + j * 1000).toISOString()
  }))
}]

export interface LogLine {
  readonly level: string
  readonly message: string
}

/** A logger that appends to `lines`, at every level. */
export const capturingLogs = (lines: Array<LogLine>) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    effect.pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, Logger.make(({ logLevel, message }) => {
        lines.push({ level: logLevel.label, message: Array.isArray(message) ? message.join(" ") : String(message) })
      }))),
      Logger.withMinimumLogLevel(LogLevel.All)
    )

/**
 * Whether the worker's decoder refuses `payload` (then a claim of it is dead-lettered as `invalid_payload`); what
 * it lets through goes to the database, which may refuse it in turn (`unloadable`). Ingest refuses more and more at
 * the door, but the worker must be safe from whatever was stored before.
 */
export const decoderRefuses = (payload: unknown) =>
  Effect.gen(function*() {
    const config = yield* PayloadConfig
    return yield* Stream.make(Buffer.from(JSON.stringify(payload))).pipe(
      decodePayload({ ...config, receivedAt: 0 }),
      Stream.runDrain,
      Effect.isFailure
    )
  }).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map())))

/** What the worker makes of a payload its decoder takes and the database refuses, else of one the decoder refuses. */
export const refusedAs = (payload: unknown) =>
  Effect.map(decoderRefuses(payload), (refused) => (refused ? "invalid_payload" : "unloadable"))
