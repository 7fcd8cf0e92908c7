import { Config, DateTime, Option } from "effect"
import { integerSetting } from "./Settings.js"

/** Zone of naive reading times from a device whose account names none. */
export const DefaultTimeZone = Config.string("DEFAULT_TIMEZONE").pipe(
  Config.validate({
    message: "must be an IANA time zone such as UTC or America/Sao_Paulo",
    validation: (zone) => Option.isSome(DateTime.zoneMakeNamed(zone))
  }),
  Config.withDefault("UTC")
)

/** How payloads are read, by ingest (validation) and worker (loading) alike. */
export const PayloadConfig = Config.all({
  /** Zone of naive reading times. */
  timeZone: DefaultTimeZone,
  maxItems: integerSetting("MAX_ITEMS", 10_000, { min: 1 }),
  maxItemBytes: integerSetting("MAX_ITEM_BYTES", 64 * 1024 * 1024, { min: 1 }),
  maxDepth: integerSetting("MAX_JSON_DEPTH", 16, { min: 4 }),
  /** Bytes of one JSON string (a key or a value), as sent. */
  maxStringBytes: integerSetting("MAX_JSON_STRING_BYTES", 64 * 1024, { min: 1 }),
  /** Limit on a payload's decompressed JSON. */
  maxDecompressedBytes: integerSetting("MAX_DECOMPRESSED_BYTES", 2 * 1024 * 1024 * 1024, { min: 1 })
})
export type PayloadConfig = Config.Config.Success<typeof PayloadConfig>
