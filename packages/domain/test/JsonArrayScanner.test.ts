import { describe, expect, it } from "vitest"
import { JsonArrayScanner, JsonScanError, type ScannerLimits } from "../src/json/JsonArrayScanner.js"
import { piecesOf, utf8 } from "./support/bytes.js"
import { randomJson } from "./support/randomJson.js"

const roomy: ScannerLimits = { maxElementBytes: 1 << 20, maxDepth: 64, maxStringBytes: 1 << 20 }

const scanChunks = (chunks: ReadonlyArray<Uint8Array>, limits: ScannerLimits = roomy): Array<unknown> => {
  const scanner = new JsonArrayScanner(limits)
  const out: Array<unknown> = []
  for (const chunk of chunks) out.push(...scanner.push(chunk))
  scanner.end()
  expect(scanner.count).toBe(out.length)
  return out
}

const scan = (text: string, limits: ScannerLimits = roomy): Array<unknown> => scanChunks([utf8(text)], limits)

const splitAt = (bytes: Uint8Array, ...offsets: Array<number>): Array<Uint8Array> => {
  const bounds = [0, ...offsets, bytes.length]
  return bounds.slice(1).map((end, k) => bytes.subarray(bounds[k]!, end))
}

/** Runs `feed` and returns the JsonScanError it throws. */
const scanError = (feed: () => unknown): JsonScanError => {
  try {
    feed()
  } catch (e) {
    expect(e).toBeInstanceOf(JsonScanError)
    return e as JsonScanError
  }
  throw new Error("expected a JsonScanError")
}

const errorOf = (text: string | Uint8Array, limits: ScannerLimits = roomy): JsonScanError =>
  scanError(() => scanChunks([typeof text === "string" ? utf8(text) : text], limits))

const tricky = " \n[ {\"a\":\"x]},\\\"\\\\\",\"b\":[1,{\"c\":[]}],\"ü€😀\":\"\\u00e9\\n\\\"\"} , \"str]\\\"},[{\\\\\"\t,-1.5e+3," +
  "true,false,null,[],{},[[[\"deep\"]]], \"日本語\",0 ]\r\n "

describe("JsonArrayScanner", () => {
  it("returns each element parsed", () => {
    expect(scan(tricky)).toEqual(JSON.parse(tricky))
    expect(scan("[]")).toEqual([])
    expect(scan(" [ ] ")).toEqual([])
    expect(scan("[1]")).toEqual([1])
    expect(scan("[\"\"]")).toEqual([""])
  })

  it("is correct at every 2-chunk split point", () => {
    const bytes = utf8(tricky)
    const expected = JSON.parse(tricky)
    for (let k = 0; k <= bytes.length; k++) {
      expect(scanChunks(splitAt(bytes, k)), `split at ${k}`).toEqual(expected)
    }
  })

  it("is correct at every 3-chunk split", () => {
    const bytes = utf8(tricky)
    const expected = JSON.parse(tricky)
    for (let a = 0; a <= bytes.length; a++) {
      for (let b = a; b <= bytes.length; b++) {
        expect(scanChunks(splitAt(bytes, a, b))).toEqual(expected)
      }
    }
  })

  it("is correct with 1-byte chunks", () => {
    const bytes = utf8(tricky)
    const chunks = Array.from(bytes, (_, k) => bytes.subarray(k, k + 1))
    expect(scanChunks(chunks)).toEqual(JSON.parse(tricky))
  })

  it("returns elements from the push that completes them", () => {
    const scanner = new JsonArrayScanner(roomy)
    expect(scanner.push(utf8("[{\"a\":"))).toEqual([])
    expect(scanner.push(utf8("1},2,"))).toEqual([{ a: 1 }, 2])
    expect(scanner.push(utf8("3"))).toEqual([]) // a number might continue
    expect(scanner.push(utf8("4]"))).toEqual([34])
    scanner.end()
    expect(scanner.count).toBe(3)
  })

  it("reassembles multi-byte characters split across chunks", () => {
    const bytes = utf8("[\"é€😀\",{\"k😀\":\"日本\"}]")
    for (let k = 0; k <= bytes.length; k++) {
      expect(scanChunks(splitAt(bytes, k))).toEqual(["é€😀", { "k😀": "日本" }])
    }
  })

  it("reassembles elements of any size spanning many chunks, one after another", () => {
    const elements = [3_000_000, 100_000, 10, 2_000_000, 70_000].map((n, k) => ({ k, text: "é".repeat(n / 2) }))
    const bytes = utf8(JSON.stringify(elements))
    expect(scanChunks(piecesOf(bytes, 65_536), { ...roomy, maxElementBytes: 8_000_000, maxStringBytes: 8_000_000 })).toEqual(elements)
  })

  it("does not keep references to the caller's chunk buffers", () => {
    const buffer = utf8("[\"abc")
    const scanner = new JsonArrayScanner(roomy)
    scanner.push(buffer)
    buffer.fill(0x20) // a reader reusing its buffer
    expect(scanner.push(utf8("def\"]"))).toEqual(["abcdef"])
  })

  it("accepts a UTF-8 BOM before the array, even split", () => {
    const bytes = utf8("\uFEFF [1]")
    expect(bytes[0]).toBe(0xef)
    for (let k = 0; k <= bytes.length; k++) expect(scanChunks(splitAt(bytes, k))).toEqual([1])
  })

  it("matches JSON.parse on random documents in random chunks", () => {
    const { random, value } = randomJson(42)
    for (let round = 0; round < 200; round++) {
      const doc = Array.from({ length: Math.floor(random() * 6) }, () => value(1))
      const bytes = utf8(JSON.stringify(doc, null, random() < 0.5 ? 2 : undefined))
      const cuts: Array<number> = []
      for (let k = 0; k < bytes.length; k++) if (random() < 0.1) cuts.push(k)
      expect(scanChunks(splitAt(bytes, ...cuts))).toEqual(doc)
    }
  })

  describe("errors", () => {
    it("not_an_array as soon as the first value byte shows it", () => {
      for (const text of ["{\"a\":1}", "  1", "\"[\"", "null", "x[]", " \uFEFF[]"]) {
        const scanner = new JsonArrayScanner(roomy)
        expect(scanError(() => scanner.push(utf8(text))).kind, text).toBe("not_an_array")
      }
      expect(errorOf(new Uint8Array([0xef, 0xbb, 0x5b, 0x5d])).kind).toBe("not_an_array")
      expect(errorOf("").kind).toBe("not_an_array")
      expect(errorOf(" \n").kind).toBe("not_an_array")
    })

    it("syntax for structure the scanner can see", () => {
      for (const text of ["[1,,2]", "[,1]", "[1 2]", "[1,]", "[1}", "[}", "[{}}]", "[[]]]", "[1\"a\"]", "[1]x", "[1]]", "[] []"]) {
        expect(errorOf(text).kind, text).toBe("syntax")
      }
      expect(errorOf("[1,2 3]").index).toBe(2)
    })

    it("syntax for trailing garbage arriving after the array closed", () => {
      const scanner = new JsonArrayScanner(roomy)
      expect(scanner.push(utf8("[1] \n"))).toEqual([1])
      expect(scanError(() => scanner.push(utf8("x"))).kind).toBe("syntax")
    })

    it("syntax with the element index and JSON.parse's message for bad element contents", () => {
      const error = errorOf("[1, {\"a\":}, 3]")
      expect(error.kind).toBe("syntax")
      expect(error.index).toBe(1)
      let parseMessage = ""
      try {
        JSON.parse("{\"a\":}")
      } catch (e) {
        parseMessage = (e as Error).message
      }
      expect(error.message).toContain(parseMessage)

      for (const text of ["[tru]", "[01]", "[{\"a\" 1}]", "[{]", "[[}]", "[\"a\nb\"]", "[1:2]", "[\uFEFF1]"]) {
        expect(errorOf(text).kind, text).toBe("syntax")
      }
    })

    it("syntax for invalid UTF-8 inside an element", () => {
      const bytes = new Uint8Array([...utf8("[\"a"), 0xff, ...utf8("\"]")])
      const error = errorOf(bytes)
      expect(error.kind).toBe("syntax")
      expect(error.message).toContain("UTF-8")
      expect(errorOf(new Uint8Array([...utf8("[\""), 0xe2, 0x82, ...utf8("\"]")])).kind).toBe("syntax")
    })

    it("element_too_large at the limit, in every element kind", () => {
      const limits = { ...roomy, maxElementBytes: 10 }
      const fits = ["\"12345678\"", "[1,2,3,45]", "1234567890", "{\"a\":\"12\"}"]
      for (const element of fits) {
        expect(element.length).toBe(10)
        expect(scan(`[0, ${element} ]`, limits)).toEqual([0, JSON.parse(element)])
        const tooBig = element.replace("1", "11")
        const error = errorOf(`[0, ${tooBig} ]`, limits)
        expect(error.kind, tooBig).toBe("element_too_large")
        expect(error.index).toBe(1)
      }
    })

    it("element_too_large across chunks, before the element ends", () => {
      const scanner = new JsonArrayScanner({ ...roomy, maxElementBytes: 1000 })
      scanner.push(utf8("[\"" + "a".repeat(600)))
      expect(scanError(() => scanner.push(utf8("a".repeat(600)))).kind).toBe("element_too_large")

      const primitive = new JsonArrayScanner({ ...roomy, maxElementBytes: 1000 })
      primitive.push(utf8("["))
      for (let k = 0; k < 999; k++) primitive.push(utf8("1"))
      expect(scanError(() => primitive.push(utf8("11"))).kind).toBe("element_too_large")
    })

    it("too_deep immediately, counting the top-level array as depth 1", () => {
      const limits = { ...roomy, maxDepth: 3 }
      expect(scan("[[[1]],{\"a\":[]}]", limits)).toEqual([[[1]], { a: [] }])
      expect(scan("[\"[[[[[[{{{{\"]", limits)).toEqual(["[[[[[[{{{{"])

      const scanner = new JsonArrayScanner(limits)
      scanner.push(utf8("[1,[{"))
      const error = scanError(() => scanner.push(utf8("\"a\":[")))
      expect(error.kind).toBe("too_deep")
      expect(error.index).toBe(1)

      expect(errorOf("[[]]", { ...roomy, maxElementBytes: 100, maxDepth: 1 }).kind).toBe("too_deep")
      expect(scan("[1]", { ...roomy, maxElementBytes: 100, maxDepth: 1 })).toEqual([1])
      const attack = "[" + "[".repeat(1e6)
      expect(scanError(() => new JsonArrayScanner(roomy).push(utf8(attack))).kind).toBe("too_deep")
    })

    it("string_too_long for a key or a value longer than the limit, counted in bytes as sent", () => {
      const limits = { ...roomy, maxStringBytes: 4 }
      // 4 bytes each as sent: ASCII, an escape pair, a 4-byte character, a \u escape is 6.
      const fits = ["[\"abcd\"]", "[{\"abcd\":\"wxyz\"}]", "[[\"a\\\"b\"]]", "[\"😀\"]", "[\"\"]"]
      for (const text of fits) expect(scan(text, limits), text).toEqual(JSON.parse(text))
      const tooLong = ["[\"abcde\"]", "[{\"abcde\":1}]", "[{\"a\":\"abcde\"}]", "[\"a😀\"]", "[\"\\u00e9\"]", "[\"ab\\n\\n\"]"]
      for (const text of tooLong) {
        const error = errorOf(`[1, ${text.slice(1, -1)}]`, limits)
        expect(error.kind, text).toBe("string_too_long")
        expect(error.index, text).toBe(1)
      }
    })

    it("string_too_long at every split point, and before a long string ends", () => {
      const limits = { ...roomy, maxStringBytes: 8 }
      const fits = utf8("[{\"k\":\"12\\\"4567\"},\"a\\\\bcdef\"]")
      const tooLong = utf8("[{\"k\":\"12\\\"45678\"}]")
      for (let k = 0; k <= fits.length; k++) expect(scanChunks(splitAt(fits, k), limits)).toHaveLength(2)
      for (let k = 0; k <= tooLong.length; k++) {
        expect(scanError(() => scanChunks(splitAt(tooLong, k), limits)).kind, `split at ${k}`).toBe("string_too_long")
      }
      const scanner = new JsonArrayScanner({ ...roomy, maxStringBytes: 1000 })
      scanner.push(utf8("[{\"a\":\"" + "x".repeat(600)))
      expect(scanError(() => scanner.push(utf8("x".repeat(600)))).kind).toBe("string_too_long")
    })

    it("truncated when the array is not closed", () => {
      for (const text of ["[", "[1", "[1,", "[{\"a\":", "[\"abc", "[\"a\\", "[1,2", "[[]"]) {
        const error = errorOf(text)
        expect(error.kind, text).toBe("truncated")
      }
      expect(errorOf("[1,2,{").index).toBe(2)
    })

    it("unstorable_string for an escaped NUL or lone surrogate, however the escape is cut, and not for other escapes", () => {
      for (const escape of ["\\u0000", "\\uDC00", "\\ud800", "\\uDBFFx", "\\udfff", "\\uDe00"]) {
        const bytes = utf8(`[{"a":"\\u00e9"},{"s":["ok","x${escape}"]}]`)
        for (let k = 0; k <= bytes.length; k++) {
          const error = scanError(() => scanChunks(splitAt(bytes, k)))
          expect([error.kind, error.index, error.path], `${escape} split at ${k}`).toEqual(["unstorable_string", 1, ".s[1]"])
        }
      }
      for (const escape of ["\\u00e9", "\\ud83d\\ude00", "\\\\u0000", "\\u1000", "\\ue000", "\\u0D80", "\\uD7FF"]) {
        const text = `[{"s":["x${escape}"]}]`
        const bytes = utf8(text)
        for (let k = 0; k <= bytes.length; k++) expect(scanChunks(splitAt(bytes, k)), `${escape} split at ${k}`).toEqual(JSON.parse(text))
      }
    })

    it("keeps failing after an error", () => {
      const scanner = new JsonArrayScanner(roomy)
      const error = scanError(() => scanner.push(utf8("[1,,")))
      expect(scanError(() => scanner.push(utf8("2]")))).toBe(error)
      expect(scanError(() => scanner.end())).toBe(error)
    })
  })

  describe("a large object element (parsed in pieces cut along its array member)", () => {
    /** ~230 kB of readings, with what could fool a cut: commas, brackets and quotes in strings, nested values. */
    const readings = (count: number) =>
      Array.from({ length: count }, (_, k) => ({
        sensor_uuid: `s-${k % 7}`,
        sensor_nome: k % 5 === 0 ? "a,b],[{\"c\\" : "Temperatura °C 日本",
        valor: k % 3 === 0 ? null : k / 8,
        meta: k % 11 === 0 ? { list: [1, [2, { x: "]" }]], e: {} } : [],
        sensor_datahora_coleta: "2026-12-04T10:00:00"
      }))
    const many = readings(1500)
    const element = (before: string, after: string, name = "\"sensor\"", indent?: number) =>
      `{${before}${name}:${JSON.stringify(many, null, indent)}${after}}`
    const elements = {
      "members before and after": element("\"equip_uuid\":\"e-1\",\"n\":[1,2],", ",\"equip_nome\":\"x\", \"z\" : {\"a\":[]}"),
      "nothing else": element("", ""),
      "pretty-printed": element(" \"equip_uuid\" : \"e-1\" ,\n ", " ,\n \"equip_local\": 3 ", "\"sensor\"", 2),
      "the array's name again after it": element("", ",\"sensor\":5"),
      "a member before it again after it": element("\"equip_uuid\":\"a\",", ",\"equip_uuid\":\"b\""),
      "__proto__ after it": element("", ",\"__proto__\":{\"polluted\":1}"),
      "__proto__ as its name": element("\"a\":1,", "", "\"__proto__\""),
      "an empty name after it": element("", ",\"\":7"),
      "index-like names after it": element("\"b\":1,", ",\"2\":2,\"1\":1,\"a\":0"),
      "an escaped name": element("", "", "\"sen\\u0073or\""),
      "a second large array after it": element("", `,"more":${JSON.stringify(readings(800))}`),
      "an empty array before it": element("\"first\":[],", "")
    }

    it("is JSON.parse's value, key order and prototype included, however it is chunked", () => {
      for (const [name, text] of Object.entries(elements)) {
        const bytes = utf8(`[${text}]`)
        const expected = JSON.parse(`[${text}]`)
        for (const size of [Infinity, 65_536, 4_099]) {
          const [value] = scanChunks(piecesOf(bytes, size))
          expect(value, `${name}, chunks of ${size}`).toEqual(expected[0])
          expect(JSON.stringify(value), name).toBe(JSON.stringify(expected[0]))
          expect(Object.keys(value as object), name).toEqual(Object.keys(expected[0]))
          expect(Object.getPrototypeOf(value), name).toBe(Object.getPrototypeOf(expected[0]))
        }
      }
    })

    it("fails as JSON.parse of the whole element does, wherever the fault is", () => {
      const text = elements["members before and after"]
      const reading = text.indexOf("{\"sensor_uuid\"", Math.floor(text.length / 2))
      const faults = {
        "a doubled comma between readings": `${text.slice(0, reading)},${text.slice(reading)}`,
        "a trailing comma in the array": text.replace(/\]((?:,"equip_nome))/, ",]$1"),
        "a trailing comma in the object": `${text.slice(0, -1)},}`,
        "a missing value in a reading": `${text.slice(0, reading)}{"a":},${text.slice(reading)}`,
        "a BOM before a reading": `${text.slice(0, reading)}\uFEFF${text.slice(reading)}`,
        "a broken member after the array": text.replace("\"equip_nome\":\"x\"", "\"equip_nome\" \"x\""),
        "a broken member before the array": text.replace("\"n\":[1,2]", "\"n\":[1 2]")
      }
      for (const [name, faulty] of Object.entries(faults)) {
        let message = ""
        try {
          JSON.parse(faulty)
        } catch (e) {
          message = (e as Error).message
        }
        expect(message, name).not.toBe("")
        const error = errorOf(`[${faulty}]`)
        expect([error.kind, error.index, error.message], name).toEqual(["syntax", 0, `Element 0: ${message}`])
      }
      const bytes = utf8(`[${text}]`)
      const invalid = new Uint8Array([...bytes.subarray(0, reading + 20), 0xff, ...bytes.subarray(reading + 20)])
      expect(errorOf(invalid).message).toBe("Element 0: invalid UTF-8")
    })

    it("finds a string that cannot be stored, with its path, in any piece", () => {
      for (const [at, where] of [[3, "[3].sensor_nome"], [1200, "[1200].sensor_nome"]] as const) {
        const text = elements["members before and after"]
        const faulty = JSON.parse(text)
        faulty.sensor[at].sensor_nome = "nul \u0000"
        const error = errorOf(`[${JSON.stringify(faulty)}]`)
        expect([error.kind, error.path], where).toEqual(["unstorable_string", `.sensor${where}`])
      }
      const error = errorOf(`[${elements["members before and after"].slice(0, -1)},"t":"\\ud800"}]`)
      expect([error.kind, error.path]).toEqual(["unstorable_string", ".t"])
    })
  })
})
