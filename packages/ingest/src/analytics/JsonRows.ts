import { type Option, type Stream } from "effect"

/**
 * Rows written as JSON straight from the database's text of their values: numbers are not parsed into JavaScript
 * numbers to be formatted again, and each sensor's fields are read and written once per answer rather than once a
 * row. The same bytes as decoding the rows into objects and `JSON.stringify`-ing them.
 */

/** A sensor's own fields, which a row names by the sensor's id. */
export interface Sensor {
  readonly uuid: string
  readonly name: string | null
  readonly type: string
  readonly unit: string | null
}

/**
 * A field of a row and how it is written: the row's value at `index`, as `number` from the database's text of a
 * float8 or an integer, `string` from text, `json` from a value the driver parsed (jsonb); or a field of the row's
 * sensor.
 */
export type Field =
  | { readonly key: string; readonly kind: "number" | "string" | "json"; readonly index: number }
  | { readonly key: string; readonly kind: "sensor"; readonly attribute: keyof Sensor }

// Decimal notation with no exponent and no trailing zero, the only text of a float8 written as it is (jsonNumber).
const PLAIN_DECIMAL = /^-?(?:0|[1-9]\d*)(?:\.\d*[1-9])?$/

/**
 * A float8 or integer as PostgreSQL writes it (`float8out`, shortest round-trip digits since PostgreSQL 12), as
 * `JSON.stringify` writes the number it reads as. The same text where PostgreSQL uses decimal notation, i.e.
 * 1e-4 ≤ |x| < 1e15 (exponent notation otherwise): both write the shortest digits that read back as x, and the
 * closest to x when several are as short, which is one string — they differ only in whether a digit string exactly
 * halfway to the next double may be used (JavaScript allows it; PostgreSQL's Ryū not always, seen above 1e15), and
 * below 1e15 such a halfway point has 19 significant digits or more, never the shortest. (With
 * `extra_float_digits` ≤ 0 PostgreSQL writes at most 15 significant digits, which read back and are written again as
 * they are.) Everything else — exponents, -0, NaN, ±Infinity — goes through a number, as JSON.stringify writes it.
 */
export const jsonNumber = (text: string | null): string => {
  if (text === null) return "null"
  if (PLAIN_DECIMAL.test(text) && text !== "-0") return text
  const value = Number(text)
  if (Number.isNaN(value) && text !== "NaN") throw new Error(`not a number as PostgreSQL writes one: ${JSON.stringify(text)}`)
  return JSON.stringify(value)
}

/** A run of fields written alike: the query's values one by one, or a sensor's fields as one piece of text. */
type Segment =
  | {
    readonly kind: "values"
    readonly fields: ReadonlyArray<{ readonly prefix: string; readonly kind: "number" | "string" | "json"; readonly index: number }>
  }
  | { readonly kind: "sensor"; readonly fields: ReadonlyArray<{ readonly prefix: string; readonly attribute: keyof Sensor }> }

const writeValue = (kind: "number" | "string" | "json", value: unknown): string => {
  switch (kind) {
    case "number":
      if (value !== null && typeof value !== "string") throw new Error(`a number column's value is not text: ${typeof value}`)
      return jsonNumber(value)
    case "string":
      if (value !== null && typeof value !== "string") throw new Error(`a text column's value is not text: ${typeof value}`)
      return JSON.stringify(value)
    case "json":
      return JSON.stringify(value ?? null)
  }
}

// Large enough that a chunk holds dozens of rows; small enough for malloc to reuse the memory of earlier answers.
const CHUNK = 64 * 1024

/**
 * Bytes written a row at a time into chunks, sent as they are: the answer's text lies outside the JavaScript heap
 * and each row's pieces die young (one string of the answer kept its thousands of pieces alive until sent, for the
 * collector to copy again and again). Chunks rather than one buffer: one the size of the answer was copied when it
 * grew and, in a long-lived process, its fresh memory pages cost more than the writing itself.
 */
class Output {
  private readonly chunks: Array<Uint8Array> = []
  private chunk = Buffer.allocUnsafe(CHUNK)
  private length = 0
  write(text: string): void {
    // UTF-8 takes at most 3 bytes for a UTF-16 unit.
    if (this.length + 3 * text.length > this.chunk.length) {
      if (this.length > 0) this.chunks.push(this.chunk.subarray(0, this.length))
      this.chunk = Buffer.allocUnsafe(Math.max(CHUNK, 3 * text.length))
      this.length = 0
    }
    this.length += this.chunk.write(text, this.length)
  }
  written(): ReadonlyArray<Uint8Array> {
    this.chunks.push(this.chunk.subarray(0, this.length))
    return this.chunks
  }
}

/**
 * An answer's rows as the JSON text of an array, written between a `head` and a `tail` (an envelope's), in chunks:
 * those of its first page, and the rest of its pages, read from the database as the client takes them, if any.
 */
export type JsonRows<E = never> = (head: string, tail: string) => {
  readonly first: ReadonlyArray<Uint8Array>
  /** A page's chunks come as one chunk of the stream. */
  readonly rest: Option.Option<Stream.Stream<Uint8Array, E>>
}

/**
 * Writes rows as the JSON text (UTF-8) of an array of objects with the keys of `fields` in that order. A row's
 * first value is its sensor's id; `sensors` holds every sensor a row names, needed when `withSensors`.
 */
export const rowsWriter = (fields: ReadonlyArray<Field>) => {
  const segments: Array<Segment> = []
  fields.forEach((field, i) => {
    const prefix = `${i === 0 ? "{" : ","}${JSON.stringify(field.key)}:`
    const last = segments[segments.length - 1]
    if (field.kind === "sensor") {
      const entry = { prefix, attribute: field.attribute }
      if (last?.kind === "sensor") (last.fields as Array<typeof entry>).push(entry)
      else segments.push({ kind: "sensor", fields: [entry] })
    } else {
      const entry = { prefix, kind: field.kind, index: field.index }
      if (last?.kind === "values") (last.fields as Array<typeof entry>).push(entry)
      else segments.push({ kind: "values", fields: [entry] })
    }
  })
  const width = Math.max(1, ...fields.map((field) => (field.kind === "sensor" ? 0 : field.index + 1)))
  const sensorText = (sensor: Sensor | undefined, id: unknown, segment: Extract<Segment, { kind: "sensor" }>) => {
    if (sensor === undefined) throw new Error(`a row's sensor ${String(id)} was not looked up`)
    let text = ""
    for (const field of segment.fields) text += field.prefix + JSON.stringify(sensor[field.attribute])
    return text
  }

  /**
   * One answer written page by page: `page` writes its rows (after `head` and `[` the first time), and `]` and
   * `tail` after the last page's, each page into chunks of its own.
   */
  const answer = (head: string) => {
    // Per segment of sensor fields, their text for each sensor, written on its first row.
    const written = segments.map(() => new Map<unknown, string>())
    let opened = false
    let count = 0
    return (
      rows: ReadonlyArray<ReadonlyArray<unknown>>,
      sensors: ReadonlyMap<unknown, Sensor>,
      tail?: string
    ): ReadonlyArray<Uint8Array> => {
      if (rows.length > 0 && rows[0]!.length < width) throw new Error(`rows of ${rows[0]!.length} values, ${width} needed`)
      const out = new Output()
      if (!opened) out.write(head + "[")
      opened = true
      for (let r = 0; r < rows.length; r++) {
        const row = rows[r]!
        let text = count++ === 0 ? "" : ","
        for (let s = 0; s < segments.length; s++) {
          const segment = segments[s]!
          if (segment.kind === "sensor") {
            const id = row[0]
            let sensorFields = written[s]!.get(id)
            if (sensorFields === undefined) {
              sensorFields = sensorText(sensors.get(id), id, segment)
              written[s]!.set(id, sensorFields)
            }
            text += sensorFields
          } else {
            for (const field of segment.fields) text += field.prefix + writeValue(field.kind, row[field.index])
          }
        }
        out.write(text + "}")
      }
      if (tail !== undefined) out.write("]" + tail)
      return out.written()
    }
  }

  /** All the rows of an answer at once. */
  const write = (rows: ReadonlyArray<ReadonlyArray<unknown>>, sensors: ReadonlyMap<unknown, Sensor> = new Map()) =>
  (head: string, tail: string) => answer(head)(rows, sensors, tail)

  return { answer, write, withSensors: segments.some((segment) => segment.kind === "sensor") } as const
}
