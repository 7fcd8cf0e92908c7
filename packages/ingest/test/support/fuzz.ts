import { gzipSync } from "node:zlib"
import { type Random, seeded } from "./random.js"

export interface BadBody {
  readonly kind: string
  readonly body: Buffer
  readonly headers: Record<string, string>
}

const json = { "content-type": "application/json" }
const gzipped = { ...json, "content-encoding": "gzip" }

const reading = (r: Random) => ({
  sensor_uuid: `s-${r.int(0, 9)}`,
  sensor_tipo: "temperature",
  valor: r.int(-300, 300) / 10,
  sensor_datahora_coleta: new Date(Date.UTC(2026, 10, r.int(1, 28), r.int(0, 23), r.int(0, 59))).toISOString()
})

const item = (r: Random) => ({
  equip_uuid: `eq-${r.int(0, 99)}`,
  equip_nome: "Freezer",
  sensor: Array.from({ length: r.int(1, 5) }, () => reading(r))
})

const valid = (r: Random) => Array.from({ length: r.int(1, 4) }, () => item(r))

const text = (value: unknown) => Buffer.from(JSON.stringify(value))

const nested = (depth: number): unknown => (depth === 0 ? 1 : [nested(depth - 1)])

const wrongValues = [42, -1.5, true, false, null, {}, [], [1, 2], { a: 1 }, "", "text"] as const

/** A valid payload with one field replaced by a value of a type the contract does not allow there. */
const wrongType = (r: Random): unknown => {
  const payload = valid(r) as Array<Record<string, unknown>>
  const target = r.pick(payload)
  const sensor = r.pick(target.sensor as Array<Record<string, unknown>>)
  const choice = r.int(0, 6)
  const notString = r.pick(wrongValues.filter((v) => typeof v !== "string"))
  switch (choice) {
    case 0:
      target.equip_uuid = notString
      break
    case 1:
      target.sensor = r.pick([{}, "sensors", 7, null, []])
      break
    case 2:
      sensor.sensor_uuid = r.pick([...wrongValues.filter((v) => typeof v !== "string"), ""])
      break
    case 3:
      sensor.valor = r.pick([{}, [], [1], true, "not a number", { v: 1 }])
      break
    case 4:
      sensor.sensor_datahora_coleta = r.pick([12345, {}, [], true, "yesterday", "2026-13-01T00:00:00Z"])
      break
    case 5:
      delete target.equip_uuid
      break
    default:
      delete sensor.sensor_uuid
  }
  return payload
}

const outOfRangeDates = [
  "1900-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2150-06-01T00:00:00Z", "9999-12-31T23:59:59Z",
  "2026-02-30T10:00:00Z", "2026-11-31T10:00:00Z", "2026-11-20T24:01:00Z", "2026-11-20T10:61:00Z",
  "2026-11-20T10:00:00+25:00", "-002026-11-20T10:00:00Z", "+275760-09-13T00:00:00Z", "2026-11-20T10:00:00ZZ"
]

/** Bytes that are not UTF-8: lone continuation bytes, overlongs, surrogates, truncated sequences. */
const invalidUtf8 = [[0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82], [0xff], [0xfe, 0xfe]]

const withBytesInString = (r: Random) => {
  const marker = "@@BAD@@"
  const payload = valid(r) as Array<Record<string, unknown>>
  r.pick(payload).equip_nome = `Freezer ${marker}`
  const [before, after] = JSON.stringify(payload).split(marker)
  return Buffer.concat([Buffer.from(before!), Buffer.from(r.pick(invalidUtf8)), Buffer.from(after!)])
}

const nonFinite = (r: Random) => {
  const literal = r.pick(["NaN", "Infinity", "-Infinity", "undefined", "+1", "0x10", ".5", "1e", "--1", "01"])
  return Buffer.from(JSON.stringify(valid(r)).replace(/"valor":[^,}]+/, `"valor":${literal}`))
}

const structural = (r: Random): Buffer => {
  const body = JSON.stringify(valid(r))
  return Buffer.from(r.pick([
    () => "",
    () => "[]",
    () => "{}",
    () => JSON.stringify(item(r)),
    () => "\"a string\"",
    () => "12",
    () => "null",
    () => body.slice(0, r.int(1, body.length - 1)),
    () => `${body}]`,
    () => `${body} trailing`,
    () => `${body}${body}`,
    () => body.replace(/,/, ",,"),
    () => body.replace(/:/, ""),
    () => `[${"{".repeat(r.int(1, 5))}`,
    () => String.fromCharCode(...Array.from({ length: r.int(1, 200) }, () => r.int(0, 255)))
  ])())
}

/**
 * Bad bodies of every kind the issue names, `count` in all: truncated gzip, gzip bombs, wrong types, deep
 * nesting, huge strings, invalid UTF-8, NaN/Infinity, dates out of range, broken structure, wrong headers.
 * The gzip bomb (64 MiB of spaces inside a valid-looking array, ~64 KiB sent) is made once and reused.
 */
export const badBodies = (seed: number, count: number, limits: { readonly maxStringBytes: number; readonly maxDepth: number; readonly maxItems: number }): ReadonlyArray<BadBody> => {
  const r = seeded(seed)
  const bomb = gzipSync(Buffer.concat([Buffer.from("["), Buffer.alloc(64 * 1024 * 1024, 0x20), text(item(r)), Buffer.from("]")]), { level: 9 })
  const kinds: ReadonlyArray<() => BadBody> = [
    () => {
      const full = gzipSync(text(valid(r)))
      return { kind: "truncated gzip", body: full.subarray(0, r.int(0, full.length - 1)), headers: gzipped }
    },
    () => ({ kind: "gzip of garbage", body: Buffer.from(Array.from({ length: r.int(1, 300) }, () => r.int(0, 255))), headers: gzipped }),
    () => ({ kind: "gzip bomb", body: bomb, headers: gzipped }),
    () => ({ kind: "wrong type", body: text(wrongType(r)), headers: json }),
    () => {
      const payload = valid(r) as Array<Record<string, unknown>>
      r.pick(payload).extra = nested(limits.maxDepth + r.int(1, 200))
      return { kind: "deep nesting", body: text(payload), headers: json }
    },
    () => {
      const payload = valid(r) as Array<Record<string, unknown>>
      const huge = "x".repeat(limits.maxStringBytes + r.int(1, 100_000))
      if (r.next() < 0.5) r.pick(payload).equip_nome = huge
      else r.pick(payload)[huge] = 1
      return { kind: "huge string", body: text(payload), headers: r.next() < 0.5 ? json : gzipped }
    },
    () => ({ kind: "invalid UTF-8", body: withBytesInString(r), headers: json }),
    () => ({ kind: "NaN/Infinity", body: nonFinite(r), headers: json }),
    () => {
      const payload = valid(r) as Array<Record<string, unknown>>
      r.pick(r.pick(payload).sensor as Array<Record<string, unknown>>).sensor_datahora_coleta = r.pick(outOfRangeDates)
      return { kind: "date out of range", body: text(payload), headers: json }
    },
    () => ({ kind: "broken structure", body: structural(r), headers: json }),
    () => ({
      kind: "too many items",
      body: text(Array.from({ length: limits.maxItems + r.int(1, 20) }, () => item(r))),
      headers: json
    }),
    () => ({
      kind: "wrong headers",
      body: text(valid(r)),
      headers: r.pick([
        { "content-type": "text/plain" },
        { "content-type": "application/xml" },
        { ...json, "content-encoding": "br" },
        { ...json, "content-encoding": "deflate" }
      ])
    })
  ]
  return Array.from({ length: count }, (_, i) => kinds[i % kinds.length]!())
}
