import { StorageError } from "@telemetry/domain"
import { Effect } from "effect"

// User metadata travels as `x-amz-meta-<key>` headers: keys come back lowercased, and values must be printable
// ASCII without surrounding spaces. Other values are stored RFC 2047-encoded, as S3 itself returns non-ASCII ones.
const TOKEN = /^[a-z0-9][a-z0-9._-]*$/
/** Headers minio reports next to user metadata under their own names (its `isSupportedHeader`). */
const RESERVED = new Set([
  "cache-control",
  "content-disposition",
  "content-encoding",
  "content-language",
  "content-type",
  "if-match",
  "if-none-match"
])
const PLAIN = /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/
const ENCODED = /^=\?UTF-8\?B\?([A-Za-z0-9+/]*={0,2})\?=$/i

/** An object's metadata as the values of its user metadata headers; refused when a key could not come back as is. */
export const toHeaders = (
  key: string,
  metadata: Record<string, string>
): Effect.Effect<Record<string, string>, StorageError> => {
  const refused = Object.keys(metadata).find((name) =>
    !TOKEN.test(name) || RESERVED.has(name) || name.startsWith("x-amz-")
  )
  if (refused !== undefined) {
    return Effect.fail(
      new StorageError({
        operation: "put",
        key,
        message: `metadata key "${refused}" cannot round-trip through S3: use lowercase letters, digits, ".", "_", "-"`
      })
    )
  }
  return Effect.succeed(Object.fromEntries(Object.entries(metadata).map(([name, value]) => [
    name,
    PLAIN.test(value) && !ENCODED.test(value) ? value : `=?UTF-8?B?${Buffer.from(value).toString("base64")}?=`
  ])))
}

/** `toHeaders`' values under their header names, for a PUT (a copy names them user metadata instead). */
export const prefixed = (headers: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(headers).map(([name, value]) => [`x-amz-meta-${name}`, value]))

/** The metadata of an object as a HEAD reports it (minio strips the `x-amz-meta-` prefix). */
export const fromHeaders = (metaData: Record<string, unknown>): Record<string, string> =>
  Object.fromEntries(
    Object.entries(metaData)
      .filter(([name]) => !RESERVED.has(name) && !name.startsWith("x-amz-"))
      .map(([name, raw]) => {
        const value = String(raw)
        const encoded = ENCODED.exec(value)
        return [name, encoded ? Buffer.from(encoded[1]!, "base64").toString() : value]
      })
  )
