import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { databases } from "@telemetry/infra/testing"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { jsonNumber } from "../src/analytics/JsonRows.js"

/**
 * The analytics answers write a float8 as the database's text of it (JsonRows.jsonNumber), where they wrote the
 * number node-postgres read from that text (`parseFloat`) with `JSON.stringify`. Both must be the same bytes for
 * every double, as each database writes it, with its default `extra_float_digits` (shortest) and with 0 (15 digits).
 */
const doubles = (): Array<number> => {
  const values: Array<number> = [
    0, -0, NaN, Infinity, -Infinity, 1, -1, 0.1 + 0.2, 1 / 3, 4.31, 4.3100000000000005, 123.456, -7.25,
    1e-4, -1e-4, 9.999999999999999e-5, 1.0000000000000002e-4, 1e-5, 1e-6, 1e-7, 1.5e-7, 1e-300,
    1e15, -1e15, 999999999999999.9, 1e15 - 1, 1e15 + 1, 2 ** 53, 2 ** 53 + 2, 1e16, 1e21, 1e22, 6.0758638724278864e16,
    Number.MAX_VALUE, Number.MIN_VALUE, 2.2250738585072014e-308, Number.EPSILON
  ]
  const bits = new DataView(randomBytes(8 * 20_000).buffer)
  // Any bit pattern: every magnitude, subnormals, NaN.
  for (let i = 0; i < 20_000; i++) values.push(bits.getFloat64(8 * i))
  for (let i = 0; i < 40_000; i++) {
    // Full-precision doubles around the range PostgreSQL writes without an exponent, 1e-4 ≤ |x| < 1e15.
    const sign = Math.random() < 0.5 ? -1 : 1
    values.push(sign * Math.random() * 10 ** (Math.floor(Math.random() * 24) - 6))
  }
  for (let i = 0; i < 20_000; i++) {
    // Short decimals and their sums and means, as sensors send and aggregates make them.
    const a = Math.round(Math.random() * 10 ** (1 + (i % 6))) / 10 ** (i % 4)
    values.push(i % 3 === 0 ? a : i % 3 === 1 ? a + 0.1 * (i % 7) : a / (1 + (i % 9)))
  }
  for (let i = 0; i < 5_000; i++) {
    // Integers near 1e15 and 2^53, where the two ways of writing the shortest digits part.
    values.push((i % 2 === 0 ? 1e15 : 2 ** 53) + Math.floor((Math.random() - 0.5) * 2 ** 20) * (1 + (i % 4)))
  }
  return values
}

/** The text PostgreSQL reads back as exactly `x` (JavaScript's shortest digits; -0 kept). */
const literal = (x: number) => (Object.is(x, -0) ? "-0" : String(x))

for (const database of databases) {
  describe(`float8 text as JSON on ${database.name}`, () => {
    it.layer(database.fresh, { timeout: 120_000 })((it) => {
      it.effect("is what JSON.stringify writes of the number read from it, for every double", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const values = doubles()
          const array = `{${values.map(literal).join(",")}}`
          for (const digits of [1, 0]) {
            const rows = yield* sql.withTransaction(
              Effect.zipRight(
                sql.unsafe(`SET LOCAL extra_float_digits = ${digits}`),
                sql<{ text: string }>`SELECT x::text AS text FROM unnest(${array}::text::float8[]) WITH ORDINALITY AS u(x, n)
                  ORDER BY n`
              )
            )
            expect(rows.length).toBe(values.length)
            let asSent = 0
            const differing: Array<string> = []
            rows.forEach(({ text }, i) => {
              const written = jsonNumber(text)
              if (written === text) asSent++
              // As the answers were written before: node-postgres' parseFloat, then JSON.stringify.
              if (written !== JSON.stringify(parseFloat(text))) differing.push(`${text} -> ${written}`)
              // With the shortest digits, the text reads back as the double itself.
              if (digits === 1 && written !== JSON.stringify(values[i])) differing.push(`${literal(values[i]!)} -> ${written}`)
            })
            expect(differing).toEqual([])
            // Most of them took the way that writes the text as it is.
            expect(asSent).toBeGreaterThan(values.length / 2)
          }
        }))
    })
  })
}

describe("jsonNumber", () => {
  it("writes null, and refuses text that is not a number as PostgreSQL writes one", () => {
    expect(jsonNumber(null)).toBe("null")
    expect(jsonNumber("NaN")).toBe("null")
    expect(jsonNumber("-0")).toBe("0")
    expect(jsonNumber("1e-05")).toBe("0.00001")
    expect(jsonNumber("2.50")).toBe("2.5")
    expect(() => jsonNumber("abc")).toThrow("not a number as PostgreSQL writes one")
  })
})
