import { UnsupportedMediaType } from "./errors.js"

const JSON_TYPE = /^application\/json\s*(;|$)/i
const CHARSET = /;\s*charset\s*=\s*"?([^";\s]*)/i
/** Charsets whose text is UTF-8 as it is (ASCII is a subset). */
const UTF8_CHARSETS = new Set(["utf-8", "utf8", "us-ascii"])
/** JSON is UTF-8 (RFC 8259): a body said to be in another charset would be read as what it is not. */
const otherCharset = (contentType: string) => {
  const charset = CHARSET.exec(contentType)?.[1]?.toLowerCase()
  return charset !== undefined && !UTF8_CHARSETS.has(charset)
}

/** The refusal of a body whose Content-Type is not JSON, or JSON in another charset than UTF-8; else undefined. */
export const notJson = (contentType: string | undefined): UnsupportedMediaType | undefined =>
  contentType !== undefined && JSON_TYPE.test(contentType) && !otherCharset(contentType)
    ? undefined
    : new UnsupportedMediaType({ message: `Content-Type must be application/json (UTF-8, as JSON is), got "${contentType ?? ""}"` })
