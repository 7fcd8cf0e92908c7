import { FastCheck as fc } from "effect"
import { gzipSync } from "node:zlib"

/** The limits the fuzzed server runs with (as configuration), which the bad bodies exceed. */
export interface FuzzLimits {
  readonly maxStringBytes: number
  readonly maxDepth: number
  readonly maxItems: number
  readonly maxBodyBytes: number
}

/** The documented bounds of identifiers and text attributes (issue 11): longer ones cannot be stored or read back. */
const MAX_ID_LENGTH = 128
const MAX_TEXT_LENGTH = 256

/** A body ingest must refuse, with the status and `path` the contract gives it. */
export interface BadBody {
  readonly kind: Kind
  readonly body: Buffer
  readonly headers: Readonly<Record<string, string>>
  readonly status: 400 | 413 | 415
  /** The `path` of the refusal: exactly `is`, or `within` that object (the key itself is what is wrong). */
  readonly path?: { readonly is: string } | { readonly within: string }
  /** A `Content-Length` announced instead of the body's own: the body is never finished, the answer must come first. */
  readonly declaredLength?: number
}

export const KINDS = [
  "truncated gzip",
  "gzip of garbage",
  "gzip bomb",
  "bytes after the gzip stream",
  "wrong type",
  "deep nesting",
  "huge string",
  "invalid UTF-8",
  "lone surrogate",
  "lone surrogate in a key",
  "NUL in text",
  "uuid too long",
  "text too long",
  "not a JSON number",
  "date out of range",
  "broken structure",
  "too many items",
  "Content-Length over the limit",
  "wrong headers"
] as const
export type Kind = typeof KINDS[number]

const json = { "content-type": "application/json" }
const gzipped = { ...json, "content-encoding": "gzip" }

type Fields = Record<string, unknown>

const reading = fc.record({
  sensor_uuid: fc.nat(9).map((i) => `s-${i}`),
  sensor_tipo: fc.constantFrom("temperature", "humidity", "door"),
  valor: fc.integer({ min: -300, max: 300 }).map((v) => v / 10),
  sensor_datahora_coleta: fc.integer({ min: Date.UTC(2026, 10, 1), max: Date.UTC(2026, 10, 28) })
    .map((t) => new Date(t).toISOString())
})

const item = fc.record({
  equip_uuid: fc.nat(99).map((i) => `eq-${i}`),
  equip_nome: fc.constant("Freezer"),
  sensor: fc.array(reading, { minLength: 1, maxLength: 5 })
})

/** Valid payloads: small, since what makes a body bad is one spot in it. */
const valid = fc.array(item, { minLength: 1, maxLength: 4 })

/** A valid payload and the numbers that choose an item and one of its readings (see `place`). */
const spot = fc.tuple(valid, fc.nat(), fc.nat())

/**
 * The chosen item and reading of a copy of the payload, with their paths as ingest reports them. A copy, because
 * the bodies are made by changing it, and fast-check hands the same generated value out again while shrinking.
 */
const place = ([payload, i, j]: [ReadonlyArray<Fields>, number, number]) => {
  const copy = structuredClone(payload) as Array<Fields>
  const index = i % copy.length
  const sensors = copy[index]!.sensor as Array<Fields>
  const r = j % sensors.length
  return {
    payload: copy,
    item: copy[index]!,
    reading: sensors[r]!,
    itemPath: `[${index}]`,
    readingPath: `[${index}].sensor[${r}]`
  }
}

const text = (value: unknown) => Buffer.from(JSON.stringify(value))

/** A printable ASCII string: what surrounds the bad characters. */
const ascii = (maxLength: number) => fc.string({ maxLength })

/** Text fields of an item and of a reading (a reading's unknown `sensor_*` fields are kept in its metadata). */
const ITEM_TEXT = ["equip_nome", "equip_local", "equip_status", "equip_sirene_ativa"] as const
const READING_TEXT = [
  "sensor_nome", "sensor_tipo", "tipo", "sensor_unidade", "sensor_status", "sensor_telemetria", "status",
  "sensor_fabricante", "sensor_modelo", "sensor_firmware", "sensor_id_hardware", "sensor_via_hub"
] as const
const UNKNOWN_SENSOR_FIELD = "sensor_nota"

/** Any field whose value is text, the uuids included: `[object, field]`. */
const textField = fc.oneof(
  fc.constantFrom(...["equip_uuid", ...ITEM_TEXT].map((f) => ["item", f] as const)),
  fc.constantFrom(...["sensor_uuid", ...READING_TEXT, UNKNOWN_SENSOR_FIELD].map((f) => ["reading", f] as const))
)

/** A valid payload with `value` in one of the fields `field` draws; refused with that field's path. */
const inTextField = (kind: Kind, field: fc.Arbitrary<readonly ["item" | "reading", string]>, value: fc.Arbitrary<string>) =>
  fc.tuple(spot, field, value).map(([s, [where, name], v]): BadBody => {
    const p = place(s)
    ;(where === "item" ? p.item : p.reading)[name] = v
    return {
      kind,
      body: text(p.payload),
      headers: json,
      status: 400,
      path: { is: `${where === "item" ? p.itemPath : p.readingPath}.${name}` }
    }
  })

/**
 * One UTF-16 surrogate that is not part of a pair: a high one alone, a low one alone, or a low one before a high
 * one. `JSON.stringify` writes them as `\udXXX` escapes, which JSON allows and which are not Unicode.
 */
const loneSurrogate = fc.oneof(
  fc.integer({ min: 0xd800, max: 0xdbff }).map((c) => String.fromCharCode(c)),
  fc.integer({ min: 0xdc00, max: 0xdfff }).map((c) => String.fromCharCode(c)),
  fc.tuple(fc.integer({ min: 0xdc00, max: 0xdfff }), fc.integer({ min: 0xd800, max: 0xdbff }))
    .map(([low, high]) => String.fromCharCode(low, high))
)

/** `inner` between ASCII text (which cannot complete a surrogate pair). */
const surrounded = (inner: fc.Arbitrary<string>) =>
  fc.tuple(ascii(8), inner, ascii(8)).map(([before, middle, after]) => `${before}${middle}${after}`)

/**
 * Text of more than `limit` characters, in the Basic Multilingual Plane so that the count is unambiguous, and within
 * `maxBytes` of UTF-8: over the limit of the field, not over the limit of any JSON string.
 */
const longText = (limit: number, maxBytes: number) =>
  fc.string({
    unit: fc.constantFrom("a", "Z", "7", " ", "-", "é", "°", "日", "😀"),
    minLength: limit + 1,
    maxLength: Math.floor(maxBytes / 4)
  })

const wrongValues = [42, -1.5, true, false, null, {}, [], [1, 2], { a: 1 }, "", "text"] as const
const notString = fc.constantFrom(...wrongValues.filter((v) => typeof v !== "string"))

/** A valid payload with one field of a type the contract does not allow there, or missing. */
const wrongType = fc.tuple(spot, fc.nat(6), notString, fc.nat(5)).map(([s, choice, bad, n]): BadBody => {
  const p = place(s)
  const pick = <A>(choices: ReadonlyArray<A>) => choices[n % choices.length]!
  const field = (() => {
    switch (choice) {
      case 0:
        p.item.equip_uuid = bad
        return `${p.itemPath}.equip_uuid`
      case 1:
        p.item.sensor = pick([{}, "sensors", 7, null, []])
        return `${p.itemPath}.sensor`
      case 2:
        p.reading.sensor_uuid = n === 0 ? "" : bad
        return `${p.readingPath}.sensor_uuid`
      case 3:
        p.reading.valor = pick([{}, [], [1], true, "not a number", { v: 1 }])
        return `${p.readingPath}.valor`
      case 4:
        p.reading.sensor_datahora_coleta = pick([12345, {}, [], true, "yesterday", "2026-13-01T00:00:00Z"])
        return `${p.readingPath}.sensor_datahora_coleta`
      case 5:
        delete p.item.equip_uuid
        return `${p.itemPath}.equip_uuid`
      default:
        delete p.reading.sensor_uuid
        return `${p.readingPath}.sensor_uuid`
    }
  })()
  return { kind: "wrong type", body: text(p.payload), headers: json, status: 400, path: { is: field } }
})

const outOfRangeDate = fc.oneof(
  fc.constantFrom(
    "1900-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2150-06-01T00:00:00Z", "9999-12-31T23:59:59Z",
    "2026-02-30T10:00:00Z", "2026-11-31T10:00:00Z", "2026-11-20T24:01:00Z", "2026-11-20T10:61:00Z",
    "2026-11-20T10:00:00+25:00", "-002026-11-20T10:00:00Z", "+275760-09-13T00:00:00Z", "2026-11-20T10:00:00ZZ"
  ),
  fc.oneof(fc.integer({ min: 1, max: 1969 }), fc.integer({ min: 2100, max: 9999 }))
    .map((year) => `${String(year).padStart(4, "0")}-06-15T12:00:00Z`)
)

/** Bytes that are not UTF-8: lone continuation bytes, overlongs, surrogates, truncated sequences. */
const invalidUtf8 = fc.constantFrom(
  [0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82], [0xff], [0xfe, 0xfe]
)

const nested = (depth: number): unknown => (depth === 0 ? 1 : [nested(depth - 1)])

const structural = fc.tuple(valid, item, fc.nat(), fc.nat(14), fc.uint8Array({ minLength: 1, maxLength: 200 }))
  .map(([payload, one, n, choice, noise]) => {
    const body = JSON.stringify(payload)
    return Buffer.from([
      () => "",
      () => "[]",
      () => "{}",
      () => JSON.stringify(one),
      () => "\"a string\"",
      () => "12",
      () => "null",
      () => body.slice(0, 1 + (n % (body.length - 1))),
      () => `${body}]`,
      () => `${body} trailing`,
      () => `${body}${body}`,
      () => body.replace(/,/, ",,"),
      () => body.replace(/:/, ""),
      () => `[${"{".repeat(1 + (n % 5))}`,
      () => String.fromCharCode(...noise)
    ][choice]!())
  })

const MiB = 1024 * 1024
const ITEM = JSON.stringify({ equip_uuid: "eq-1", sensor: [{ sensor_uuid: "s-1", valor: 1 }] })
// Compressed once each: compressing megabytes for every body would cost more than sending it.
const oneMemberBombs = new Map<number, Buffer>()
let blankMember: Buffer | undefined

/** An array whose blanks run to `n` MiB before its item, as one gzip member (~1 KiB a MiB). */
const oneMemberBomb = (n: number) => {
  let bomb = oneMemberBombs.get(n)
  if (bomb === undefined) {
    bomb = gzipSync(Buffer.concat([Buffer.from("["), Buffer.alloc(n * MiB, 0x20), Buffer.from(`${ITEM}]`)]), { level: 9 })
    oneMemberBombs.set(n, bomb)
  }
  return bomb
}

/** The same as a series of members: the array's start, one member per MiB of blanks, its item and end. */
const manyMemberBomb = (n: number) => {
  blankMember ??= gzipSync(Buffer.alloc(MiB, 0x20), { level: 9 })
  return Buffer.concat([gzipSync("["), ...Array.from({ length: n }, () => blankMember!), gzipSync(`${ITEM}]`)])
}

/** Gzip bodies that expand some 1 000 times. */
const bomb = fc.tuple(fc.integer({ min: 2, max: 16 }), fc.boolean())
  .map(([mib, members]) => members ? manyMemberBomb(mib) : oneMemberBomb(mib))

/** What may follow a complete gzip stream and is not another member of it. */
const afterGzip = fc.oneof(
  fc.integer({ min: 1, max: 64 * 1024 }).map((n) => Buffer.alloc(n)),
  fc.constantFrom(Buffer.from("\n"), Buffer.from(" ")),
  fc.uint8Array({ minLength: 1, maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
  valid.map(text)
)

/** Bad bodies of every kind, each equally likely. */
export const badBody = (limits: FuzzLimits): fc.Arbitrary<BadBody> =>
  fc.oneof(
    valid.chain((payload) => {
      const full = gzipSync(text(payload))
      return fc.nat(full.length - 1).map((n): BadBody => ({ kind: "truncated gzip", body: full.subarray(0, n), headers: gzipped, status: 400 }))
    }),
    fc.uint8Array({ minLength: 1, maxLength: 300 }).map((bytes): BadBody => ({
      kind: "gzip of garbage",
      body: Buffer.from(bytes),
      headers: gzipped,
      status: 400
    })),
    bomb.map((body): BadBody => ({ kind: "gzip bomb", body, headers: gzipped, status: 413 })),
    fc.tuple(valid, afterGzip).map(([payload, after]): BadBody => ({
      kind: "bytes after the gzip stream",
      body: Buffer.concat([gzipSync(text(payload)), after]),
      headers: gzipped,
      status: 400
    })),
    wrongType,
    fc.tuple(spot, fc.integer({ min: 1, max: 200 })).map(([s, extra]): BadBody => {
      const p = place(s)
      p.item.extra = nested(limits.maxDepth + extra)
      return { kind: "deep nesting", body: text(p.payload), headers: json, status: 400, path: { is: p.itemPath } }
    }),
    fc.tuple(spot, fc.integer({ min: 1, max: limits.maxStringBytes }), fc.boolean(), fc.boolean()).map(
      ([s, over, asKey, zipped]): BadBody => {
        const p = place(s)
        const huge = "x".repeat(limits.maxStringBytes + over)
        if (asKey) p.item[huge] = 1
        else p.item.equip_nome = huge
        const body = text(p.payload)
        return zipped
          ? { kind: "huge string", body: gzipSync(body), headers: gzipped, status: 400, path: { is: p.itemPath } }
          : { kind: "huge string", body, headers: json, status: 400, path: { is: p.itemPath } }
      }
    ),
    fc.tuple(spot, invalidUtf8).map(([s, bytes]): BadBody => {
      const p = place(s)
      const marker = "@@BAD@@"
      p.item.equip_nome = `Freezer ${marker}`
      const [before, after] = JSON.stringify(p.payload).split(marker)
      return {
        kind: "invalid UTF-8",
        body: Buffer.concat([Buffer.from(before!), Buffer.from(bytes), Buffer.from(after!)]),
        headers: json,
        status: 400
      }
    }),
    inTextField("lone surrogate", textField, surrounded(loneSurrogate)),
    fc.tuple(spot, surrounded(loneSurrogate)).map(([s, key]): BadBody => {
      const p = place(s)
      // A reading's unknown `sensor_*` field is kept in its metadata. (An item's unknown members are dropped unread,
      // whatever they hold, as a large item's parts never read them.)
      p.reading[`sensor_${key}`] = 1
      return {
        kind: "lone surrogate in a key",
        body: text(p.payload),
        headers: json,
        status: 400,
        path: { within: p.readingPath }
      }
    }),
    inTextField("NUL in text", textField, surrounded(fc.constant("\u0000"))),
    inTextField(
      "uuid too long",
      fc.constantFrom(["item", "equip_uuid"] as const, ["reading", "sensor_uuid"] as const),
      longText(MAX_ID_LENGTH, limits.maxStringBytes)
    ),
    inTextField(
      "text too long",
      fc.oneof(
        fc.constantFrom(...ITEM_TEXT.map((f) => ["item", f] as const)),
        fc.constantFrom(...READING_TEXT.map((f) => ["reading", f] as const))
      ),
      longText(MAX_TEXT_LENGTH, limits.maxStringBytes)
    ),
    // Not NaN, Infinity or -Infinity: as Python's json.dumps writes them, they are read as null.
    fc.tuple(valid, fc.constantFrom("nan", "+Infinity", "NaN1", "undefined", "+1", "0x10", ".5", "1e", "--1", "01"))
      .map(([payload, literal]): BadBody => ({
        kind: "not a JSON number",
        body: Buffer.from(JSON.stringify(payload).replace(/"valor":[^,}]+/, `"valor":${literal}`)),
        headers: json,
        status: 400
      })),
    fc.tuple(spot, outOfRangeDate).map(([s, date]): BadBody => {
      const p = place(s)
      p.reading.sensor_datahora_coleta = date
      return {
        kind: "date out of range",
        body: text(p.payload),
        headers: json,
        status: 400,
        path: { is: `${p.readingPath}.sensor_datahora_coleta` }
      }
    }),
    structural.map((body): BadBody => ({ kind: "broken structure", body, headers: json, status: 400 })),
    fc.array(item, { minLength: limits.maxItems + 1, maxLength: limits.maxItems + 5 }).map((items): BadBody => ({
      kind: "too many items",
      body: text(items),
      headers: json,
      status: 413
    })),
    fc.tuple(
      valid,
      fc.oneof(fc.integer({ min: limits.maxBodyBytes + 1, max: 4 * limits.maxBodyBytes }), fc.maxSafeInteger()),
      fc.nat(64),
      fc.boolean()
    ).map(([payload, declared, sent, zipped]): BadBody => ({
      kind: "Content-Length over the limit",
      body: text(payload).subarray(0, sent),
      headers: zipped ? gzipped : json,
      status: 413,
      declaredLength: Math.max(declared, limits.maxBodyBytes + 1)
    })),
    fc.tuple(
      valid,
      fc.constantFrom<Record<string, string>>(
        { "content-type": "text/plain" },
        { "content-type": "application/xml" },
        { ...json, "content-encoding": "br" },
        { ...json, "content-encoding": "deflate" }
      )
    ).map(([payload, headers]): BadBody => ({ kind: "wrong headers", body: text(payload), headers, status: 415 }))
  ).map((bad) => Object.assign(bad, { [fc.toStringMethod]: () => describeBody(bad) }))

/** A bad body in one line, for fast-check's report of a counterexample (the bytes would be unreadable). */
export const describeBody = (bad: BadBody) => {
  const shown = bad.body.subarray(0, 200).toString("latin1").replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)
  return `${bad.kind} (${bad.body.length} bytes${bad.declaredLength ? `, Content-Length ${bad.declaredLength}` : ""}, ` +
    `${JSON.stringify(bad.headers)}, expects ${bad.status}${bad.path ? ` ${JSON.stringify(bad.path)}` : ""}): ${shown}`
}
