import { Config, DateTime, Option } from "effect"

/** How payloads are read, by ingest (validation) and worker (loading) alike. */
export const PayloadConfig = Config.all({
  /** Zone of naive reading times. */
  timeZone: Config.string("DEFAULT_TIMEZONE").pipe(
    Config.validate({
      message: "must be an IANA time zone such as UTC or America/Sao_Paulo",
      validation: (zone) => Option.isSome(DateTime.zoneMakeNamed(zone))
    }),
    Config.withDefault("UTC")
  ),
  maxItems: Config.integer("MAX_ITEMS").pipe(Config.withDefault(10_000)),
  maxItemBytes: Config.integer("MAX_ITEM_BYTES").pipe(Config.withDefault(64 * 1024 * 1024)),
  maxDepth: Config.integer("MAX_JSON_DEPTH").pipe(Config.withDefault(16)),
  /** Bytes of one JSON string (a key or a value), as sent. */
  maxStringBytes: Config.integer("MAX_JSON_STRING_BYTES").pipe(Config.withDefault(64 * 1024)),
  /** Limit on a payload's decompressed JSON. */
  maxDecompressedBytes: Config.integer("MAX_DECOMPRESSED_BYTES").pipe(Config.withDefault(2 * 1024 * 1024 * 1024))
})
export type PayloadConfig = Config.Config.Success<typeof PayloadConfig>
