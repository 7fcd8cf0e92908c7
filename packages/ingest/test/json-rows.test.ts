import { describe, expect, it } from "@effect/vitest"
import { type Field, rowsWriter, type Sensor } from "../src/analytics/JsonRows.js"

/**
 * The analytics answers' rows as JsonRows writes them, in chunks of 64 KiB, against `JSON.stringify` of the same
 * rows as objects: rows of many sizes and characters of every UTF-8 length cross the chunks' ends.
 */
const fields: ReadonlyArray<Field> = [
  { key: "time", kind: "string", index: 1 },
  { key: "sensor_uuid", kind: "sensor", attribute: "uuid" },
  { key: "sensor_name", kind: "sensor", attribute: "name" },
  { key: "value", kind: "number", index: 2 },
  { key: "metadata", kind: "json", index: 3 },
  { key: "unit", kind: "sensor", attribute: "unit" }
]

const sensors = new Map<number, Sensor>([
  [1, { uuid: "fridge-temp", name: "Temperatura \"interna\" °", type: "temperature", unit: "°C" }],
  [2, { uuid: "door", name: null, type: "door", unit: null }],
  [3, { uuid: "❄-𝄞", name: "Geladeira Cozinha ❄ 𝄞", type: "power", unit: "W" }]
])

// Text of one- to four-byte characters, escapes and controls, `length` UTF-16 units or so.
const text = (length: number, seed: number) => {
  const pieces = ["a", "é", "❄", "𝄞", "\"", "\\", "\n", "\u0001", "€", " "]
  let out = ""
  for (let i = 0; out.length < length; i++) out += pieces[(seed + i * 7) % pieces.length]
  return out
}

const rows = (count: number): Array<Array<unknown>> =>
  Array.from({ length: count }, (_, i) => [
    (i % 3) + 1,
    `2026-12-0${1 + (i % 5)}T${String(i % 24).padStart(2, "0")}:00:00.000Z ${text(i % 40, i)}`,
    i % 11 === 0 ? null : String((i * 0.37) % 97),
    i % 5 === 0 ? { battery: i % 100, note: text(i % 300, i) } : null
  ])

const asObjects = (values: ReadonlyArray<ReadonlyArray<unknown>>) =>
  values.map((row) => {
    const sensor = sensors.get(row[0] as number)!
    return {
      time: row[1],
      sensor_uuid: sensor.uuid,
      sensor_name: sensor.name,
      value: row[2] === null ? null : Number(row[2]),
      metadata: row[3] ?? null,
      unit: sensor.unit
    }
  })

describe("JsonRows", () => {
  const { withSensors, write } = rowsWriter(fields)

  it("writes the same bytes as JSON.stringify of the rows as objects, across chunks", () => {
    expect(withSensors).toBe(true)
    for (const count of [0, 1, 37, 5_000]) {
      const values = rows(count)
      const chunks = write(values, sensors)("{\"period\":\"raw\",\"data\":", "}")
      expect(Buffer.concat(chunks).toString()).toBe(JSON.stringify({ period: "raw", data: asObjects(values) }))
      for (const chunk of chunks) expect(chunk.byteLength).toBeLessThanOrEqual(64 * 1024)
      if (count === 5_000) expect(chunks.length).toBeGreaterThan(10)
    }
  })

  it("writes a row longer than a chunk whole", () => {
    const values = [[1, "2026-12-05T00:00:00.000Z", "1.5", { note: text(100_000, 3) }]]
    const chunks = write(values, sensors)("", "")
    expect(Buffer.concat(chunks).toString()).toBe(JSON.stringify(asObjects(values)))
  })

  it("fails on a row whose sensor was not looked up", () => {
    expect(() => write([[9, "t", "1", null]], sensors)("", "")).toThrow("sensor 9 was not looked up")
  })
})
