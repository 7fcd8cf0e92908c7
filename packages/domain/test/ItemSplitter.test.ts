import { describe, expect, it } from "vitest"
import { ItemSplitter, type RawItemPart } from "../src/json/ItemSplitter.js"
import { utf8 } from "./support/bytes.js"
import { randomJson } from "./support/randomJson.js"

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

/** The parts of `item` fed in chunks cut at `cuts`, as text, or the error's message. */
const partsOf = (item: Uint8Array, cuts: ReadonlyArray<number>, partBytes = 200, maxHeldBytes = Infinity) => {
  const splitter = new ItemSplitter(new Set(["equip_uuid", "a"]), "sensor", new Set(["equip_uuid"]), partBytes, maxHeldBytes)
  const parts: Array<RawItemPart> = []
  const bounds = [0, ...cuts, item.length]
  try {
    for (let k = 1; k < bounds.length; k++) parts.push(...splitter.push(item.subarray(bounds[k - 1], bounds[k])))
  } catch (e) {
    return { error: (e as Error).message }
  }
  return parts.map((part) => ({ ...part, head: text(part.head), readings: text(part.readings) }))
}

describe("ItemSplitter", () => {
  const { pick, random, value } = randomJson(7)
  /** Random items, compact, indented, or with spaces around some commas. */
  const items = Array.from({ length: 400 }, () => {
    const sensor = Array.from({ length: Math.floor(random() * 40) }, () => value(1))
    const item = random() < 0.5 ? { equip_uuid: "x", sensor, a: value(1) } : { a: [1, 2], sensor, equip_uuid: "y", b: 1 }
    const json = JSON.stringify(item, null, random() < 0.3 ? 1 : undefined)
    // Spaces around commas (in strings too, which changes them: what is sent is what is expected).
    return random() < 0.3 ? json.replace(/,/g, () => (random() < 0.2 ? "  , " : ",")) : json
  })

  it("hands out every reading once, in order, in parts of its readings joined by commas, however it is chunked", () => {
    for (const json of items) {
      const item = JSON.parse(json)
      const bytes = utf8(json)
      const whole = partsOf(bytes, [])
      if ("error" in whole) throw new Error(`${json}: ${whole.error}`)
      expect(whole.flatMap((part) => JSON.parse(part.readings))).toEqual(item.sensor)
      expect(whole.map((part) => part.offset)).toEqual(
        whole.map((_, k) => whole.slice(0, k).reduce((n, part) => n + JSON.parse(part.readings).length, 0))
      )
      expect(whole.map((part) => part.last)).toEqual(whole.map((_, k) => k === whole.length - 1))
      for (const part of whole.slice(0, -1)) expect(utf8(part.readings).length - 2, json).toBeGreaterThanOrEqual(200)
      if (json === JSON.stringify(item)) {
        // Readings as sent, joined by bare commas, whatever was between them.
        expect(whole.map((part) => part.readings.slice(1, -1)).join(",")).toBe(JSON.stringify(item.sensor).slice(1, -1))
      }
      expect(JSON.parse(whole.at(-1)!.head)).toEqual({ equip_uuid: item.equip_uuid, a: item.a })
      const cuts: Array<number> = []
      for (let k = 1; k < bytes.length; k++) if (random() < 0.08) cuts.push(k)
      expect(partsOf(bytes, cuts), json).toEqual(whole)
      expect(partsOf(bytes, Array.from({ length: bytes.length - 1 }, (_, k) => k + 1)), json).toEqual(whole)
    }
  })

  it("bounds what it holds at once — its head and the part being gathered — not the item, however it is chunked", () => {
    const item = (reading: number, head: number) =>
      utf8(JSON.stringify({ equip_uuid: "x", a: "h".repeat(head), sensor: [...Array(200).keys(), "r".repeat(reading)] }))
    const everyCut = (bytes: Uint8Array) => Array.from({ length: bytes.length - 1 }, (_, k) => k + 1)
    for (const [reading, head, refused] of [[100, 100, false], [400, 100, true], [100, 400, true]] as const) {
      const bytes = item(reading, head)
      expect(bytes.length).toBeGreaterThan(500)
      for (const cuts of [[], everyCut(bytes)]) {
        const parts = partsOf(bytes, cuts, 100, 450)
        expect("error" in parts ? parts.error : "read", `${reading} ${head}`).toBe(
          refused ? "its kept members and one part of its readings exceed 450 bytes" : "read"
        )
      }
    }
  })

  it("keeps an empty reading in its part, so that what JSON.parse refuses stays refused", () => {
    for (const json of ["{\"sensor\":[,1,2]}", "{\"sensor\":[1,,2]}", "{\"sensor\":[ , 1]}", "{\"sensor\":[1,]}"]) {
      const bytes = utf8(json)
      for (let k = 1; k < bytes.length; k++) {
        const parts = partsOf(bytes, [k])
        if ("error" in parts) throw new Error(`${json}: ${parts.error}`)
        expect(() => parts.map((part) => JSON.parse(part.readings)), `${json} cut at ${k}`).toThrow(SyntaxError)
      }
    }
  })

  it("refuses an item naming sensor or a name it may have once twice, however chunked; other kept names go to the head", () => {
    const sensor = JSON.stringify(Array.from({ length: 60 }, (_, k) => ({ k })))
    for (
      const [json, refused] of [
        [`{"equip_uuid":"x","sensor":${sensor},"equip_uuid":"y"}`, "equip_uuid"],
        [`{"equip_uuid":"x","equip_uuid":"x","sensor":${sensor}}`, "equip_uuid"],
        [`{"sensor":${sensor},"a":1,"equip_\u0075uid":"y","equip_uuid":"y"}`, "equip_uuid"],
        [`{"equip_uuid":"x","sensor":${sensor},"sensor":[]}`, "sensor"],
        [`{"equip_uuid":"x","a":1,"sensor":${sensor},"a":2,"b":{"equip_uuid":1,"sensor":2}}`, undefined]
      ] as const
    ) {
      const bytes = utf8(json)
      const everyCut = Array.from({ length: bytes.length - 1 }, (_, k) => k + 1)
      for (const cuts of [[], [json.indexOf("uuid") + 2], everyCut]) {
        const parts = partsOf(bytes, cuts)
        if (refused !== undefined) expect(parts, json).toEqual({ error: `an element has "${refused}" twice` })
        else if ("error" in parts) throw new Error(`${json}: ${parts.error}`)
        else expect(parts.map((part) => JSON.parse(part.head)).at(-1), json).toEqual({ equip_uuid: "x", a: 2 })
      }
    }
  })

  it("fails the same way however a faulty item is chunked", () => {
    for (const json of items.slice(0, 150)) {
      const at = Math.floor(random() * json.length)
      const bytes = utf8(`${json.slice(0, at)}${pick([",", "]", "}", " ", "\"", "x", ",,"])}${json.slice(at)}`)
      const cuts: Array<number> = []
      for (let k = 1; k < bytes.length; k++) if (random() < 0.1) cuts.push(k)
      expect(partsOf(bytes, cuts), text(bytes)).toEqual(partsOf(bytes, []))
    }
  })
})
