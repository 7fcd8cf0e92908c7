/**
 * Splits a streamed top-level JSON array into its elements and parses each one
 * with `JSON.parse`, so memory stays bounded by one element and parsing runs at
 * native speed. The scanner only tracks strings, escapes and nesting depth to
 * find element boundaries; validating an element's contents is left to
 * `JSON.parse`.
 */

import { ItemSplitError, ItemSplitter, type RawItemPart } from "./ItemSplitter.js"

export interface ScannerLimits {
  /**
   * One element larger than this (in UTF-8 bytes) -> "element_too_large". An element read in parts (SplitOptions)
   * may be larger: what it holds at once — its kept members and the part being gathered — may not
   * ("part_too_large").
   */
  readonly maxElementBytes: number
  /** Nesting deeper than this (the top-level array is depth 1) -> "too_deep". */
  readonly maxDepth: number
  /** A string (key or value) longer than this, in bytes as sent (escapes included) -> "string_too_long". */
  readonly maxStringBytes: number
}

/**
 * How an object element larger than `aboveBytes` is handed out: in parts (`ElementPart`) of its `arrayMember`
 * array's elements, about `partBytes` each, with the members named in `keep`; its other members are dropped.
 * An object element of any size that names `arrayMember` or one of `once` twice -> "duplicate_member": read in
 * parts, the parts handed out before the second would not be what JSON.parse makes of the element (its last).
 */
export interface SplitOptions {
  readonly aboveBytes: number
  readonly partBytes: number
  readonly arrayMember: string
  readonly keep: ReadonlySet<string>
  readonly once: ReadonlySet<string>
}

/** A part of a large element (see SplitOptions): parsed, and told apart from parsed JSON by being an instance. */
export class ElementPart {
  constructor(
    /** Index of the element in the top-level array. */
    readonly index: number,
    /** The kept members seen so far; all of them in the last part. */
    readonly head: Record<string, unknown>,
    /** Elements of the array member. */
    readonly items: ReadonlyArray<unknown>,
    /** Index in the array member of the first of `items`. */
    readonly offset: number,
    readonly last: boolean,
    /** Bytes of the JSON text of `items`. */
    readonly bytes: number
  ) {}
}

export class JsonScanError extends Error {
  constructor(
    readonly kind:
      | "syntax"
      | "not_an_array"
      | "gzip_data"
      | "element_too_large"
      | "part_too_large"
      | "too_deep"
      | "string_too_long"
      | "unstorable_string"
      | "duplicate_member"
      | "truncated",
    message: string,
    /** Index of the element being scanned when the error occurred. */
    readonly index: number,
    /** Where in the element, e.g. `.sensor[0].sensor_uuid` (for `unstorable_string`, `duplicate_member`). */
    readonly path?: string
  ) {
    super(message)
    this.name = "JsonScanError"
  }
}

const TAB = 0x09
const LF = 0x0a
const CR = 0x0d
const SPACE = 0x20
const QUOTE = 0x22
const COMMA = 0x2c
const COLON = 0x3a
const OPEN_BRACKET = 0x5b
const BACKSLASH = 0x5c
const LETTER_U = 0x75
const CLOSE_BRACKET = 0x5d
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const BOM = [0xef, 0xbb, 0xbf] as const
const GZIP_MAGIC = 0x1f

// Where we are in the top-level array.
const BEFORE_ARRAY = 0
const AFTER_OPEN = 1 // just after "[": an element or "]"
const AFTER_COMMA = 2 // an element is required
const AFTER_ELEMENT = 3 // "," or "]"
const IN_STRUCTURED = 4 // inside an object, array or string element
const IN_PRIMITIVE = 5 // inside a number / literal element
const AFTER_ARRAY = 6

// What scanStructured answers besides the index where an element ends.
const NOT_ENDED = -1
const TOO_DEEP = -2
const STRING_TOO_LONG = -3
const DUPLICATE_MEMBER = -4

// An element spanning chunks is gathered in a buffer of at least this size, kept for the next one unless it grew
// past the larger size.
const MIN_PENDING_BYTES = 64 * 1024
const MAX_KEPT_PENDING_BYTES = 1024 * 1024

/**
 * An object element is parsed in pieces of about this many bytes, cut at the commas of its first array member
 * (see parseInPieces); a large element's parts are best of this size too. V8 allocates a string over 128 KiB (a
 * two-byte one: over 64 Ki characters) as a large object, on fresh pages each time, several times slower than one
 * that fits its young generation.
 */
export const PIECE_BYTES = 48 * 1024

// Where the current element is in its first array member, the one cut into pieces.
const NO_ARRAY = 0
const IN_ARRAY = 1
const ARRAY_CLOSED = 2

// ignoreBOM keeps a U+FEFF at the start of an element so JSON.parse rejects it
// instead of the decoder silently stripping it.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

const isWhitespace = (b: number): boolean => b === SPACE || b === LF || b === CR || b === TAB

// A number or literal ends at anything that cannot continue it; what follows is
// then checked as top-level structure, so "[1}" or "[1 2]" is a scanner syntax error.
const endsPrimitive = (b: number): boolean =>
  b === COMMA || b === CLOSE_BRACKET || isWhitespace(b) || b === CLOSE_BRACE || b === OPEN_BRACKET ||
  b === OPEN_BRACE || b === QUOTE

export class JsonArrayScanner {
  private readonly maxElementBytes: number
  private readonly maxDepth: number
  private readonly maxStringBytes: number
  /** The member names an object element may have once (SplitOptions), and their bytes when written unescaped. */
  private readonly once: ReadonlyArray<string>
  private readonly onceBytes: ReadonlyArray<Uint8Array>
  /** Longest such name as sent, each character escaped (`\u0073`). */
  private readonly onceMaxBytes: number

  private state = BEFORE_ARRAY
  private bomMatched = 0 // BOM bytes matched; -1 once anything else was seen
  private emitted = 0
  private failure: JsonScanError | undefined

  // The element being scanned.
  private depth = 1
  private inString = false
  private escaped = false
  /**
   * The element has a `\u` escape of U+0000 or of a surrogate: only such an element can hold a NUL or a lone
   * surrogate. (Home Assistant's Python escapes every non-ASCII character, so `\u` alone says little.)
   */
  private unstorableEscape = false
  /** Bytes of the current string in earlier chunks. */
  private stringBytes = 0
  /** The element's bytes from earlier chunks: the first pendingBytes of a buffer reused from element to element. */
  private pending = new Uint8Array(0)
  private pendingBytes = 0
  /** Set while the current element is read in parts; then `pending` is not used. */
  private splitter: ItemSplitter | undefined
  /** The bytes of the current element seen so far, whether pending or handed to the splitter. */
  private elementBytes = 0
  private startByte = 0
  /** The pieces of the current element: where its first array member opens and closes, and the commas cut. */
  private pieces = NO_ARRAY
  private arrayOpen = 0
  private arrayClose = 0
  private cuts: Array<number> = []
  /**
   * The current element's member names are checked here: it is an object not (yet) read in parts, whose splitter
   * checks them. `keyNext`: the next string to close is a member name; `named`: bits of the `once` names seen.
   */
  private keys = false
  private keyNext = false
  private named = 0
  private repeated = ""
  /**
   * The members of an object element whose strings are checked (those a large element's parts hand out): the
   * others are dropped, and the parts of a large element never read them, so a small one's are not held against it.
   */
  private readonly checked: ReadonlySet<string> | undefined

  constructor(limits: ScannerLimits, private readonly split?: SplitOptions) {
    this.maxElementBytes = limits.maxElementBytes
    this.maxDepth = limits.maxDepth
    this.maxStringBytes = limits.maxStringBytes
    this.once = split === undefined ? [] : [...new Set([split.arrayMember, ...split.once])]
    this.checked = split === undefined ? undefined : new Set([split.arrayMember, ...split.keep])
    const encoder = new TextEncoder()
    this.onceBytes = this.once.map((name) => encoder.encode(name))
    this.onceMaxBytes = 6 * Math.max(0, ...this.once.map((name) => name.length))
  }

  /** Number of elements parsed so far. */
  get count(): number {
    return this.emitted
  }

  /**
   * Feeds the next chunk; returns the elements it completed, parsed, in order, appended to `out`. Should a later
   * element of the chunk fail, `out` holds those completed before it.
   */
  push(chunk: Uint8Array, out: Array<unknown> = []): Array<unknown> {
    if (this.failure) throw this.failure
    try {
      this.scan(chunk, out)
      return out
    } catch (e) {
      // Once the input is known bad, later calls must not resume from a half-updated state.
      if (e instanceof JsonScanError) this.failure = e
      throw e
    }
  }

  /** Call at end of input: the array must be closed and followed only by whitespace. */
  end(): void {
    if (this.failure) throw this.failure
    if (this.state === AFTER_ARRAY) return
    this.failure = this.state === BEFORE_ARRAY
      ? this.error("not_an_array", "Input ended before a top-level array started")
      : this.error("truncated", "Input ended before the top-level array was closed")
    throw this.failure
  }

  private scan(bytes: Uint8Array, out: Array<unknown>): void {
    const n = bytes.length
    let i = 0

    if (this.state === IN_STRUCTURED || this.state === IN_PRIMITIVE) {
      i = this.continueElement(bytes, 0, out)
    }

    while (i < n) {
      const b = bytes[i]!
      switch (this.state) {
        case AFTER_OPEN:
        case AFTER_COMMA:
          if (isWhitespace(b)) {
            i++
          } else if (b === CLOSE_BRACKET && this.state === AFTER_OPEN) {
            this.state = AFTER_ARRAY
            i++
          } else if (b === COMMA || b === CLOSE_BRACKET || b === CLOSE_BRACE) {
            throw this.error("syntax", `Unexpected '${String.fromCharCode(b)}' where an element was expected`)
          } else {
            i = this.startElement(bytes, i, out)
          }
          break
        case AFTER_ELEMENT:
          if (b === COMMA) this.state = AFTER_COMMA
          else if (b === CLOSE_BRACKET) this.state = AFTER_ARRAY
          else if (!isWhitespace(b)) throw this.error("syntax", `Expected ',' or ']' after element, found ${describe(b)}`)
          i++
          break
        case BEFORE_ARRAY:
          this.scanPrologueByte(b)
          i++
          break
        default: // AFTER_ARRAY
          if (!isWhitespace(b)) throw this.error("syntax", `Unexpected ${describe(b)} after the top-level array`)
          i++
      }
    }
  }

  private scanPrologueByte(b: number): void {
    const m = this.bomMatched
    if (m >= 0 && m < BOM.length && b === BOM[m]) {
      this.bomMatched = m + 1
      return
    }
    if (m > 0 && m < BOM.length) throw this.error("not_an_array", "Input starts with an incomplete byte order mark")
    // The first byte of every gzip stream: a compressed body sent without its Content-Encoding.
    if (m === 0 && b === GZIP_MAGIC) throw this.error("gzip_data", "Input starts as gzip data does (byte 0x1f)")
    this.bomMatched = -1
    if (b === OPEN_BRACKET) this.state = AFTER_OPEN
    else if (!isWhitespace(b)) throw this.error("not_an_array", `Top-level value is not an array (starts with ${describe(b)})`)
  }

  private startElement(bytes: Uint8Array, i: number, out: Array<unknown>): number {
    const b = bytes[i]!
    this.pendingBytes = 0
    this.elementBytes = 0
    this.startByte = b
    this.escaped = false
    this.unstorableEscape = false
    this.stringBytes = 0
    // Only an object's array member is cut into pieces.
    this.pieces = b === OPEN_BRACE ? NO_ARRAY : ARRAY_CLOSED
    if (this.cuts.length > 0) this.cuts = []
    this.keys = this.keyNext = b === OPEN_BRACE && this.once.length > 0
    this.named = 0
    if (b === OPEN_BRACE || b === OPEN_BRACKET) {
      this.depth = 2
      if (this.depth > this.maxDepth) throw this.tooDeep()
      this.inString = false
      this.state = IN_STRUCTURED
    } else if (b === QUOTE) {
      this.depth = 1
      this.inString = true
      this.state = IN_STRUCTURED
    } else {
      this.state = IN_PRIMITIVE
    }
    return this.continueElement(bytes, i, out, i + 1)
  }

  /**
   * Scans the current element from `from` (its first byte in this chunk is at `start`).
   * Returns the index just after the element, or `bytes.length` if it continues in the next chunk.
   */
  private continueElement(bytes: Uint8Array, start: number, out: Array<unknown>, from = start): number {
    // Scan at most one byte past the size limit, so an oversized element fails without walking the rest of a huge
    // chunk — or past the size where it is read in parts, after which it is not held whole and has no size limit.
    const splittable = this.split !== undefined && this.startByte === OPEN_BRACE
    const limit = splittable ? Math.min(this.maxElementBytes, this.split!.aboveBytes) : this.maxElementBytes
    const end = this.splitter !== undefined
      ? bytes.length
      : Math.min(bytes.length, start + limit - this.elementBytes + 1)
    const stop = this.state === IN_PRIMITIVE
      ? this.scanPrimitive(bytes, from, end)
      : this.scanStructured(bytes, from, end, this.elementBytes - start)
    const piece = bytes.subarray(start, stop < 0 ? end : stop)
    const size = this.elementBytes + piece.length
    if (this.splitter === undefined && size > this.maxElementBytes) {
      throw this.error("element_too_large", `Element exceeds ${this.maxElementBytes} bytes`)
    }
    this.elementBytes = size
    if (this.splitter === undefined && splittable && size > this.split!.aboveBytes) {
      const { arrayMember, keep, once, partBytes } = this.split!
      this.splitter = new ItemSplitter(keep, arrayMember, once, partBytes, this.maxElementBytes)
      this.keys = this.keyNext = false
      this.splitParts(this.pending.subarray(0, this.pendingBytes), out)
      this.pendingBytes = 0
      if (this.pending.length > MAX_KEPT_PENDING_BYTES) this.pending = new Uint8Array(0)
    }
    if (this.splitter !== undefined) {
      this.splitParts(piece, out)
      // The rest of the chunk, when the scan stopped where the element began to be read in parts.
      if (stop < 0) return end < bytes.length ? this.continueElement(bytes, end, out) : end
      this.splitter = undefined
      this.emitted++
      this.state = AFTER_ELEMENT
      return stop
    }
    if (stop < 0) {
      // Copied: the caller may reuse its chunk buffer (and Buffer#slice would only be a view).
      this.appendPending(piece)
      return end
    }
    out.push(this.parseElement(piece, size))
    this.state = AFTER_ELEMENT
    return stop
  }

  /** Hands bytes of the current element to its splitter, and the parts they complete, parsed, to `out`. */
  private splitParts(bytes: Uint8Array, out: Array<unknown>): void {
    let parts: Array<RawItemPart>
    try {
      parts = this.splitter!.push(bytes)
    } catch (e) {
      if (e instanceof ItemSplitError) {
        if (e.kind === "duplicate") throw this.duplicate(e.member!)
        throw this.error(e.kind === "too_large" ? "part_too_large" : "syntax", `Element ${this.emitted}: ${e.message}`)
      }
      throw e
    }
    for (const part of parts) {
      // The part's bytes were all scanned: the flag covers them.
      const head = this.parseChecked(part.head, "", 0, this.unstorableEscape)
      const items = this.parseChecked(part.readings, `.${this.split!.arrayMember}`, part.offset, this.unstorableEscape)
      out.push(
        new ElementPart(
          this.emitted,
          head as Record<string, unknown>,
          items as Array<unknown>,
          part.offset,
          part.last,
          part.readings.length
        )
      )
    }
  }

  /**
   * Returns the index just after the element, or -1 if it did not end before `end`; `base + i` is the offset of
   * `bytes[i]` in the element, where its pieces are cut.
   */
  private scanStructured(bytes: Uint8Array, i: number, end: number, base: number): number {
    // The loop runs on locals, read from the fields here and written back once at the end: no field is touched
    // on a path taken only now and then, where optimized code would lack type feedback and deoptimize each time.
    const maxDepth = this.maxDepth
    const maxStringBytes = this.maxStringBytes
    let depth = this.depth
    let inString = this.inString
    let escaped = this.escaped
    let unstorableEscape = this.unstorableEscape
    // The current string's bytes in earlier chunks, and where its bytes in this chunk begin.
    let stringBytes = this.stringBytes
    let stringStart = i
    let pieces = this.pieces
    const keys = this.keys
    let keyNext = this.keyNext
    let lastCut = this.cuts.length > 0 ? this.cuts[this.cuts.length - 1]! : this.arrayOpen
    if (escaped && i < end) {
      // The previous chunk ended with a backslash inside a string.
      if (bytes[i] === LETTER_U && mayBeUnstorable(bytes, i + 1)) unstorableEscape = true
      escaped = false
      i++
    }
    let stop = NOT_ENDED
    while (i < end) {
      let b = bytes[i]!
      if (inString) {
        // String contents are most of the bytes: skip them in a tight inner loop.
        // (Measured faster than Uint8Array#indexOf, whose per-call cost dominates on short strings.)
        while (b !== QUOTE && b !== BACKSLASH && ++i < end) b = bytes[i]!
        if (i === end) break
        if (b === BACKSLASH) {
          // The escaped byte is never a quote we must see; \uXXXX only flags the element for checking.
          if (bytes[i + 1] === LETTER_U && mayBeUnstorable(bytes, i + 2)) unstorableEscape = true
          i += 2
          if (i > end) {
            escaped = true
            i = end
          }
          continue
        }
        // The closing quote: only here (and at the end of a chunk) is a string's length looked at.
        if (stringBytes + (i - stringStart) > maxStringBytes) {
          stop = STRING_TOO_LONG
          break
        }
        // A member name of the element (a string after its "{" or a "," of its own) closes: JSON.parse would keep
        // the last of a name given twice, and cannot tell.
        if (keyNext) {
          keyNext = false
          if (depth === 2 && this.repeats(bytes, stringStart, i, stringBytes)) {
            stop = DUPLICATE_MEMBER
            break
          }
        }
        stringBytes = 0
        inString = false
        i++
        if (depth === 1) {
          stop = i
          break
        }
        continue
      }
      i++
      if (b === QUOTE) {
        inString = true
        stringStart = i
      } else if (b === OPEN_BRACE || b === OPEN_BRACKET) {
        if (++depth > maxDepth) {
          stop = TOO_DEEP
          break
        }
        if (depth === 3 && pieces === NO_ARRAY && b === OPEN_BRACKET) {
          pieces = IN_ARRAY
          lastCut = this.arrayOpen = base + i - 1
        }
      } else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
        if (--depth === 1) {
          stop = i
          break
        }
        if (depth === 2 && pieces === IN_ARRAY) {
          pieces = ARRAY_CLOSED
          this.arrayClose = base + i - 1
        }
      } else if (b === COMMA) {
        if (depth === 3) {
          if (pieces === IN_ARRAY && base + i - lastCut > PIECE_BYTES) {
            lastCut = base + i - 1
            this.cuts.push(lastCut)
          }
        } else if (depth === 2) {
          keyNext = keys
        }
      }
    }
    this.pieces = pieces
    this.keyNext = keyNext
    if (stop === NOT_ENDED && inString) {
      stringBytes += end - stringStart
      if (stringBytes > maxStringBytes) stop = STRING_TOO_LONG
    }
    this.depth = depth
    this.inString = inString
    this.escaped = escaped
    this.unstorableEscape = unstorableEscape
    this.stringBytes = stringBytes
    if (stop === TOO_DEEP) throw this.tooDeep()
    if (stop === STRING_TOO_LONG) {
      throw this.error("string_too_long", `Element has a string longer than ${maxStringBytes} bytes`)
    }
    if (stop === DUPLICATE_MEMBER) throw this.duplicate(this.repeated)
    return stop
  }

  /**
   * Whether the member name in `bytes` from `from` to `to` (its closing quote), after `earlier` bytes of it in
   * earlier chunks (the end of `pending`), is one of `once` the element named before; notes it otherwise.
   */
  private repeats(bytes: Uint8Array, from: number, to: number, earlier: number): boolean {
    const length = earlier + to - from
    if (length > this.onceMaxBytes) return false
    // Allocates only for a name cut by a chunk's end: one is checked for every member of every item.
    let sent = bytes
    let at = from
    if (earlier > 0) {
      sent = new Uint8Array(length)
      sent.set(this.pending.subarray(this.pendingBytes - earlier, this.pendingBytes))
      sent.set(bytes.subarray(from, to), earlier)
      at = 0
    }
    const end = at + length
    let j = at
    while (j < end && sent[j] !== BACKSLASH) j++
    const k = j < end ? this.once.indexOf(unescapeName(sent.subarray(at, end))) : this.indexOfName(sent, at, length)
    if (k < 0) return false
    if ((this.named & (1 << k)) !== 0) {
      this.repeated = this.once[k]!
      return true
    }
    this.named |= 1 << k
    return false
  }

  /** Index in `once` of the name written unescaped in `bytes` at `at`, or -1. */
  private indexOfName(bytes: Uint8Array, at: number, length: number): number {
    const names = this.onceBytes
    for (let k = 0; k < names.length; k++) {
      const name = names[k]!
      if (name.length !== length) continue
      let j = 0
      while (j < length && name[j] === bytes[at + j]) j++
      if (j === length) return k
    }
    return -1
  }

  private scanPrimitive(bytes: Uint8Array, i: number, end: number): number {
    for (; i < end; i++) {
      if (endsPrimitive(bytes[i]!)) return i
    }
    return -1
  }

  private appendPending(piece: Uint8Array): void {
    const size = this.pendingBytes + piece.length
    if (size > this.pending.length) {
      const grown = new Uint8Array(Math.max(size, 2 * this.pending.length, MIN_PENDING_BYTES))
      grown.set(this.pending.subarray(0, this.pendingBytes))
      this.pending = grown
    }
    this.pending.set(piece, this.pendingBytes)
    this.pendingBytes = size
  }

  private parseElement(last: Uint8Array, size: number): unknown {
    let bytes = last
    if (this.pendingBytes > 0) {
      this.appendPending(last)
      bytes = this.pending.subarray(0, size)
      this.pendingBytes = 0
      // An exceptionally large element's buffer is not kept for the rest of the payload.
      if (this.pending.length > MAX_KEPT_PENDING_BYTES) this.pending = new Uint8Array(0)
    }
    const pieces = this.pieces === ARRAY_CLOSED && this.cuts.length > 0
      ? parseInPieces(bytes, this.arrayOpen, this.cuts, this.arrayClose)
      : undefined
    const value = this.parseChecked(bytes, "", 0, this.unstorableEscape, pieces, this.checked)
    this.emitted++
    return value
  }

  /**
   * `bytes` parsed, its strings checked for what text cannot store when they may hold it; `path` and `offset`
   * place an array of a part's elements in the element, for the error. `parsed`: its value, if already parsed.
   * `members`: of an object, only these members are checked.
   */
  private parseChecked(
    bytes: Uint8Array,
    path: string,
    offset = 0,
    escapes = true,
    parsed?: unknown,
    members?: ReadonlySet<string>
  ): unknown {
    let value = parsed
    if (value === undefined) {
      let text: string | undefined
      try {
        text = decoder.decode(bytes)
        value = JSON.parse(text)
      } catch (e) {
        value = text === undefined ? undefined : parseNonFinite(text)
        if (value === undefined) {
          const reason = e instanceof TypeError ? "invalid UTF-8" : (e as Error).message
          throw this.error("syntax", `Element ${this.emitted}: ${reason}`)
        }
      }
    }
    if (escapes) {
      const unstorable = members !== undefined && typeof value === "object" && value !== null && !Array.isArray(value)
        ? findUnstorableMember(value as Record<string, unknown>, members)
        : findUnstorable(value, path, offset)
      if (unstorable !== undefined) {
        throw new JsonScanError("unstorable_string", unstorable.message, this.emitted, unstorable.path)
      }
    }
    return value
  }

  private duplicate(name: string): JsonScanError {
    return new JsonScanError("duplicate_member", "appears twice in the element", this.emitted, `.${name}`)
  }

  private tooDeep(): JsonScanError {
    return this.error("too_deep", `Element nests deeper than ${this.maxDepth} levels`)
  }

  private error(kind: JsonScanError["kind"], message: string): JsonScanError {
    return new JsonScanError(kind, message, this.emitted)
  }
}

/**
 * `JSON.parse` of an object element, the same value, built from pieces cut at the commas `cuts` of its array
 * member from `open` to `close` (offsets of its brackets): the object before the first cut with the array closed,
 * the array's elements between cuts, then the members after the array. Undefined when a piece does not parse (the
 * whole element is then parsed, for its error) or when the members after the array might not merge as JSON.parse
 * would have read them.
 */
const parseInPieces = (bytes: Uint8Array, open: number, cuts: ReadonlyArray<number>, close: number): unknown => {
  const name = memberName(bytes, open)
  if (name === undefined) return undefined
  try {
    const head = JSON.parse(decoder.decode(bytes.subarray(0, cuts[0])) + "]}")
    // The array is head's last member in the text, so its value under its name (a name seen twice keeps the last;
    // an own `__proto__` too, which a property read would miss).
    const array: unknown = Object.getOwnPropertyDescriptor(head, name)?.value
    if (!Array.isArray(array)) return undefined
    for (let k = 0; k < cuts.length; k++) {
      const piece: Array<unknown> = JSON.parse(`[${decoder.decode(bytes.subarray(cuts[k]! + 1, cuts[k + 1] ?? close))}]`)
      for (let j = 0; j < piece.length; j++) array.push(piece[j])
    }
    const rest = decoder.decode(bytes.subarray(close + 1))
    // The members after the array, read behind a placeholder member that no member there can share a name with.
    if (rest.includes("\"\"")) return undefined
    const tail = JSON.parse(`{"":0${rest}`)
    delete tail[""]
    if (Object.hasOwn(tail, "__proto__")) return undefined
    return Object.assign(head, tail)
  } catch {
    return undefined
  }
}

/** A string literal (kept as it is), or a non-finite number as Python's `json.dumps` writes it. */
const STRING_OR_NON_FINITE = /"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g

/**
 * JSON text that `JSON.parse` refused, read with `NaN`, `Infinity` and `-Infinity` as null, or undefined if it
 * has none of them or is still not JSON. Python's `json.dumps` writes non-finite numbers so, and the Home Assistant
 * integration sends an attribute of `"nan"` as such a number: refused, it would be resent and refused for ever.
 */
const parseNonFinite = (text: string): unknown => {
  let found = false
  const nulled = text.replace(STRING_OR_NON_FINITE, (token) => {
    if (token.charCodeAt(0) === 0x22) return token
    found = true
    return "null"
  })
  if (!found) return undefined
  try {
    return JSON.parse(nulled)
  } catch {
    return undefined
  }
}

/** A member name with escapes, as sent between its quotes, read; "" if it is no JSON string (JSON.parse refuses it). */
const unescapeName = (sent: Uint8Array): string => {
  try {
    return JSON.parse(`"${decoder.decode(sent)}"`)
  } catch {
    return ""
  }
}

/** The name of the member whose value opens at `open`, when written without escapes. */
const memberName = (bytes: Uint8Array, open: number): string | undefined => {
  let i = open - 1
  while (i >= 0 && isWhitespace(bytes[i]!)) i--
  if (bytes[i] !== COLON) return undefined
  i--
  while (i >= 0 && isWhitespace(bytes[i]!)) i--
  if (bytes[i] !== QUOTE) return undefined
  const end = i
  i--
  while (i >= 0 && bytes[i] !== QUOTE) {
    if (bytes[i] === BACKSLASH) return undefined
    i--
  }
  return i < 0 ? undefined : decoder.decode(bytes.subarray(i + 1, end))
}

/**
 * Whether the `\u` escape whose four hex digits start at `at` may be U+0000 or a surrogate (D800-DFFF); digits
 * that the bytes cut off may be.
 */
const mayBeUnstorable = (bytes: Uint8Array, at: number): boolean => {
  if (at + 4 > bytes.length) return true
  // Letters lowered; digits are unchanged by the bit.
  const first = bytes[at]! | 0x20
  const second = bytes[at + 1]! | 0x20
  // D8-DF: a digit 8 or 9, or a (lowered) letter a-f.
  if (first === 0x64) return second === 0x38 || second === 0x39 || (second >= 0x61 && second <= 0x66)
  return first === 0x30 && second === 0x30 && bytes[at + 2] === 0x30 && bytes[at + 3] === 0x30
}

const describe = (b: number): string =>
  b >= 0x20 && b < 0x7f ? `'${String.fromCharCode(b)}'` : `byte 0x${b.toString(16).padStart(2, "0")}`

/** findUnstorable of an object's `members` only (keys included). */
const findUnstorableMember = (value: Record<string, unknown>, members: ReadonlySet<string>) => {
  for (const key of Object.keys(value)) {
    if (!members.has(key)) continue
    const found = findUnstorable(value[key], `.${key}`)
    if (found !== undefined) return found
  }
  return undefined
}

/**
 * The first string (value or key) in `value` that text cannot hold: a NUL, which PostgreSQL's text and jsonb
 * refuse, or a lone surrogate (`\ud800` parses in JavaScript but is not Unicode, and would be stored as U+FFFD,
 * another string than the one sent). Raw bytes cannot make either (JSON forbids raw control characters and the
 * UTF-8 decoder is fatal), so only elements with a `\u` escape of U+0000 or a surrogate are walked.
 */
const findUnstorable = (
  value: unknown,
  path: string,
  offset = 0
): { readonly path: string; readonly message: string } | undefined => {
  if (typeof value === "string") {
    const problem = value.includes("\0") ? "a NUL character (\\u0000)" : value.isWellFormed() ? undefined : "a lone surrogate"
    return problem === undefined ? undefined : { path, message: `contains ${problem}, which cannot be stored as text` }
  }
  if (typeof value !== "object" || value === null) return undefined
  if (Array.isArray(value)) {
    for (let k = 0; k < value.length; k++) {
      const found = findUnstorable(value[k], `${path}[${offset + k}]`)
      if (found !== undefined) return found
    }
    return undefined
  }
  for (const [key, field] of Object.entries(value)) {
    const inKey = findUnstorable(key, path)
    if (inKey !== undefined) return { path, message: `has a key, ${JSON.stringify(key)}, that ${inKey.message}` }
    const found = findUnstorable(field, `${path}.${key}`)
    if (found !== undefined) return found
  }
  return undefined
}
