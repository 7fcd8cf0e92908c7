import { Chunk, Effect, Either, Stream } from "effect"
import { InvalidPayload, PayloadTooLarge } from "../errors.js"
import { ElementPart, JsonArrayScanner, JsonScanError, PIECE_BYTES } from "../json/JsonArrayScanner.js"
import { EQUIPMENT_FIELDS } from "./Payload.js"
import { type CountedItem, makeCounter, makeNormalizer, type NormalizeOptions } from "./normalize.js"
import type { TelemetryItem } from "./Telemetry.js"

export interface PayloadLimits {
  /** Equipment items per payload (contract: MAX_ITEMS, default 10 000). */
  readonly maxItems: number
  /**
   * Bytes of one equipment item's JSON. An item over 1 MiB is read in parts, and then only what is held at once is
   * bounded: its readings before its `equip_uuid` (they wait for it), its equipment fields with one part of readings.
   * So an item that names its equipment first, as Home Assistant's do, may be of any size.
   */
  readonly maxItemBytes: number
  /** JSON nesting depth. */
  readonly maxDepth: number
  /** Bytes of one JSON string (a key or a value), as sent. */
  readonly maxStringBytes: number
}

const fromScanError = (e: JsonScanError, limits: PayloadLimits): InvalidPayload | PayloadTooLarge => {
  switch (e.kind) {
    case "element_too_large":
      return new PayloadTooLarge({
        message: `item [${e.index}] is larger than ${limits.maxItemBytes} bytes`,
        limit: limits.maxItemBytes
      })
    case "part_too_large":
      return new PayloadTooLarge({
        message: `item [${e.index}] has equipment fields or a reading larger than ${limits.maxItemBytes} bytes`,
        limit: limits.maxItemBytes
      })
    case "not_an_array":
      return new InvalidPayload({ message: "body must be a JSON array of equipment items" })
    case "gzip_data":
      return new InvalidPayload({
        message: "body must be a JSON array of equipment items; it is gzip data: send it with Content-Encoding: gzip"
      })
    case "syntax":
      return new InvalidPayload({ message: `malformed JSON in item [${e.index}]: ${e.message}`, path: `[${e.index}]` })
    case "too_deep":
      return new InvalidPayload({
        message: `item [${e.index}] is nested deeper than ${limits.maxDepth} levels`,
        path: `[${e.index}]`
      })
    case "string_too_long":
      return new InvalidPayload({
        message: `item [${e.index}] has a string longer than ${limits.maxStringBytes} bytes`,
        path: `[${e.index}]`
      })
    case "unstorable_string": {
      const path = `[${e.index}]${e.path ?? ""}`
      return new InvalidPayload({ message: `${path}: ${e.message}`, path })
    }
    case "duplicate_member": {
      const path = `[${e.index}]${e.path ?? ""}`
      return new InvalidPayload({ message: `${path}: appears twice in the item`, path })
    }
    case "truncated":
      return new InvalidPayload({ message: `body ends before the JSON array is closed (item [${e.index}])` })
  }
}

/**
 * Lets the event loop run what is due (answers of the database, sockets draining, other requests) before the next
 * chunk. Scanning chunk after chunk of a large payload is CPU-bound, and the chunks are there without waiting, so
 * otherwise it would hold the event loop for as long as the fiber scheduler runs it, delaying all other I/O.
 */
const yieldToEventLoop = Effect.async<void>((resume) => {
  setImmediate(() => resume(Effect.void))
})

/**
 * One payload at a time scans a chunk, in this process. Each turn ends with the yield above, taken while holding
 * the turn: the next payload's turn starts from the next check phase of the event loop, after its I/O. Without it,
 * N payloads scanning at once would each run a chunk in the same check phase — N chunks' work between two looks
 * at the sockets (a health check waited seconds behind 32 uploads) — and hold N chunks' objects at once.
 */
const scanTurn = Effect.unsafeMakeSemaphore(1)

/**
 * Items larger than this are read in parts of about PIECE_BYTES of readings (see ItemSplitter): a part is parsed
 * in a fraction of a millisecond, and concurrent large items hold a part each in memory, not a whole item and its
 * objects.
 */
const SPLIT_ABOVE_BYTES = 1024 * 1024

/**
 * An item naming one of these twice is refused, whatever its size: JSON.parse would keep the last, but an item read
 * in parts has handed out readings under the first by then.
 */
const ONCE: ReadonlySet<string> = new Set(["equip_uuid", "sensor"])

/**
 * Turns the JSON bytes of a bulk payload into validated equipment items, each as `reader` reads it, one at a time,
 * so memory stays bounded by one item — or one part of a large one — whatever the payload's size. Of faulty items,
 * the first is the one refused, however the bytes came in chunks.
 */
const decodeWith = <A extends { readonly continued?: boolean }>(
  reader: (options: NormalizeOptions) => (input: unknown, index: number, offset?: number) => Either.Either<A, InvalidPayload>
) =>
(options: NormalizeOptions & PayloadLimits) =>
<E, R>(bytes: Stream.Stream<Uint8Array, E, R>): Stream.Stream<A, E | InvalidPayload | PayloadTooLarge, R> =>
  Stream.suspend(() => {
    const scanner = new JsonArrayScanner({
      maxElementBytes: options.maxItemBytes,
      maxDepth: options.maxDepth,
      maxStringBytes: options.maxStringBytes
    }, { aboveBytes: SPLIT_ABOVE_BYTES, partBytes: PIECE_BYTES, arrayMember: "sensor", keep: EQUIPMENT_FIELDS, once: ONCE })
    const normalize = reader(options)
    let index = 0
    // Parts of a large item whose head does not name its equipment yet (`equip_uuid` after `sensor`).
    let waiting: Array<ElementPart> = []
    let waitingBytes = 0
    let continued = false
    /** The items of a part (none while it waits for its item's equipment), or the first invalid one. */
    const normalizePart = (part: ElementPart): Either.Either<ReadonlyArray<A>, InvalidPayload | PayloadTooLarge> => {
      if (!part.last && !("equip_uuid" in part.head)) {
        waiting.push(part)
        waitingBytes += part.bytes
        const limit = Math.min(options.maxItemBytes, SPLIT_ABOVE_BYTES)
        return waitingBytes > limit
          ? Either.left(
            new PayloadTooLarge({
              message: `item [${part.index}] has more than ${limit} bytes of readings before its equip_uuid ` +
                "(a large item names its equip_uuid before its sensor list)",
              limit
            })
          )
          : Either.right([])
      }
      const parts = [...waiting, part]
      waiting = []
      waitingBytes = 0
      const items: Array<A> = []
      for (const p of parts) {
        const item = normalize({ ...part.head, sensor: p.items }, part.index, p.offset)
        if (Either.isLeft(item)) return Either.left(item.left)
        items.push(continued ? { ...item.right, continued } : item.right)
        continued = !p.last
      }
      return Either.right(items)
    }
    /** The items of the elements `step` completes; its scan error only after theirs, which come first. */
    const scan = (step: (values: Array<unknown>) => void) =>
      Effect.suspend(() => {
        const values: Array<unknown> = []
        let scanError: JsonScanError | undefined
        try {
          step(values)
        } catch (e) {
          if (!(e instanceof JsonScanError)) throw e
          scanError = e
        }
        const items: Array<A> = []
        for (const value of values) {
          if (index >= options.maxItems) {
            return Effect.fail(
              new PayloadTooLarge({ message: `more than ${options.maxItems} equipment items`, limit: options.maxItems })
            )
          }
          if (value instanceof ElementPart) {
            const parts = normalizePart(value)
            if (Either.isLeft(parts)) return Effect.fail(parts.left)
            items.push(...parts.right)
            if (value.last) index++
            continue
          }
          const item = normalize(value, index++)
          if (Either.isLeft(item)) return Effect.fail(item.left)
          items.push(item.right)
        }
        if (scanError !== undefined) return Effect.fail(fromScanError(scanError, options))
        return Effect.succeed(Chunk.unsafeFromArray(items))
      })
    const finish = scan(() => scanner.end()).pipe(
      Effect.filterOrFail(
        () => index > 0,
        () => new InvalidPayload({ message: "body must hold at least one equipment item" })
      )
    )
    return bytes.pipe(
      Stream.mapConcatChunkEffect((bytes) =>
        scanTurn.withPermits(1)(Effect.zipLeft(scan((values) => scanner.push(bytes, values)), yieldToEventLoop))
      ),
      Stream.concat(Stream.execute(finish))
    )
  })

/** The payload's items normalized, as the database takes them. */
export const decodePayload = decodeWith<TelemetryItem>(makeNormalizer)

/** The payload's items checked as `decodePayload` checks them and their readings counted, none of them built. */
export const countPayload = decodeWith<CountedItem>(makeCounter)
