/**
 * Reads one large equipment item — a JSON object whose `sensor` array holds most of its bytes — in parts, so that
 * memory and the time of one `JSON.parse` stay bounded by a part, not by the item (which may hold hundreds of
 * thousands of readings). The readings of `sensor` are gathered into parts of about `partBytes`; the item's other
 * members (only the few `keep` names; an item's unknown fields are ignored downstream anyway) into its head.
 *
 * It only finds boundaries — strings, escapes, nesting — the way JsonArrayScanner does; what it hands out is
 * checked by `JSON.parse`, and the enclosing scanner enforces the depth and string limits. What it holds at once —
 * the head and the part being gathered — is bounded by `maxHeldBytes`: the item itself may be of any size.
 */

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const COLON = 0x3a
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d

const isWhitespace = (b: number): boolean => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09

/** A part of the item: some of its readings, as JSON text of an array, and the head as far as it is known. */
export interface RawItemPart {
  /** The kept members seen so far, as JSON text of an object. */
  readonly head: Uint8Array
  /** The readings of this part, as JSON text of an array. */
  readonly readings: Uint8Array
  /** Index in `sensor` of this part's first reading. */
  readonly offset: number
  /** The item ended: this is its last part and `head` is whole. */
  readonly last: boolean
}

export class ItemSplitError extends Error {
  constructor(
    message: string,
    readonly kind: "syntax" | "too_large" | "duplicate" = "syntax",
    /** The member named twice (for `duplicate`). */
    readonly member?: string
  ) {
    super(message)
  }
}

// Where the splitter is in the item object (depth 1) or in its `sensor` array (depth 2).
const BEFORE_OBJECT = 0
const BEFORE_KEY = 1 // after "{" or ","
const IN_KEY = 2
const BEFORE_COLON = 3
const BEFORE_VALUE = 4
const IN_VALUE = 5 // a member's value, nested or not
const AFTER_VALUE = 6 // "," or "}"
const BEFORE_READING = 7 // in `sensor`, after "[" or ","
const IN_READING = 8
const AFTER_READING = 9 // "," or "]"
const ENDED = 10

const decoder = new TextDecoder("utf-8", { fatal: true })

/** A byte buffer that grows as bytes are appended. */
class Bytes {
  private buffer = new Uint8Array(1024)
  length = 0
  append(bytes: Uint8Array, from: number, to: number): void {
    const size = this.length + (to - from)
    if (size > this.buffer.length) this.grow(size)
    this.buffer.set(bytes.subarray(from, to), this.length)
    this.length = size
  }
  private grow(size: number): void {
    const grown = new Uint8Array(Math.max(size, 2 * this.buffer.length))
    grown.set(this.buffer.subarray(0, this.length))
    this.buffer = grown
  }
  byte(b: number): void {
    if (this.length === this.buffer.length) this.grow(this.length + 1)
    this.buffer[this.length++] = b
  }
  view(): Uint8Array {
    return this.buffer.subarray(0, this.length)
  }
  take(): Uint8Array {
    const bytes = this.buffer.slice(0, this.length)
    this.length = 0
    return bytes
  }
}

export class ItemSplitter {
  private state = BEFORE_OBJECT
  /** Nesting inside the current value or reading (0: at its own level). */
  private depth = 0
  private inString = false
  private escaped = false

  private readonly key = new Bytes()
  private readonly head = new Bytes()
  private readonly readings = new Bytes()
  /** Whether the current member is kept in the head. */
  private keeping = false
  /** The members named so far of those the item may name only once. */
  private readonly named = new Set<string>()
  /** The member being started is `sensor`. */
  private sensorNext = false
  private readingsInPart = 0
  private offset = 0

  constructor(
    private readonly keep: ReadonlySet<string>,
    /** The member whose array is split. */
    private readonly arrayMember: string,
    /**
     * Members the item may name only once (`arrayMember` always): a kept one named again would change the head
     * between parts, and so what the parts already handed out belong to.
     */
    private readonly once: ReadonlySet<string>,
    private readonly partBytes: number,
    private readonly maxHeldBytes: number
  ) {
    this.head.byte(OPEN_BRACE)
  }

  /** Feeds the item's next bytes; returns the parts they completed. */
  push(bytes: Uint8Array): Array<RawItemPart> {
    const out: Array<RawItemPart> = []
    let i = 0
    const n = bytes.length
    while (i < n) {
      const b = bytes[i]!
      switch (this.state) {
        case BEFORE_OBJECT:
          if (b === OPEN_BRACE) this.state = BEFORE_KEY
          else if (!isWhitespace(b)) throw new ItemSplitError("an equipment item must be a JSON object")
          i++
          break
        case BEFORE_KEY:
          if (b === QUOTE) {
            this.state = IN_KEY
            this.key.length = 0
            this.key.byte(QUOTE)
            // A name is scanned as a string value that opened.
            this.inString = true
            this.depth = 0
          } else if (b === CLOSE_BRACE) {
            this.end(out)
          } else if (!isWhitespace(b)) {
            throw new ItemSplitError(`expected a member name, found ${describe(b)}`)
          }
          i++
          break
        case IN_KEY: {
          const end = this.scanValue(bytes, i)
          const stop = end < 0 ? n : end
          this.key.append(bytes, i, stop)
          i = stop
          if (end >= 0) this.state = BEFORE_COLON
          break
        }
        case BEFORE_COLON:
          if (b === COLON) this.startMember()
          else if (!isWhitespace(b)) throw new ItemSplitError(`expected ':', found ${describe(b)}`)
          i++
          break
        case BEFORE_VALUE:
          if (isWhitespace(b)) {
            i++
          } else if (this.sensorNext) {
            if (b !== OPEN_BRACKET) throw new ItemSplitError(`"${this.arrayMember}" must be an array`)
            this.sensorNext = false
            this.state = BEFORE_READING
            i++
          } else {
            this.state = IN_VALUE
            this.depth = 0
          }
          break
        case IN_VALUE: {
          const end = this.scanValue(bytes, i)
          const stop = end < 0 ? n : end
          if (this.keeping) {
            this.head.append(bytes, i, stop)
            this.checkHeld()
          }
          i = stop
          if (end >= 0) this.state = AFTER_VALUE
          break
        }
        case AFTER_VALUE:
          if (b === COMMA) this.state = BEFORE_KEY
          else if (b === CLOSE_BRACE) this.end(out)
          else if (!isWhitespace(b)) throw new ItemSplitError(`expected ',' or '}', found ${describe(b)}`)
          i++
          break
        case BEFORE_READING:
        case IN_READING:
        case AFTER_READING:
          i = this.scanReadings(bytes, i, out)
          break
        default:
          if (!isWhitespace(b)) throw new ItemSplitError(`unexpected ${describe(b)} after the item`)
          i++
      }
    }
    return out
  }


  /**
   * The readings of `sensor` from `i`, in one loop on locals, until the array closes (then AFTER_VALUE, and the
   * index after its `]`) or the bytes end. Readings are copied a run at a time — readings separated by a bare
   * comma, as compact JSON writes them — and whitespace between readings is left out, so a part's text is its
   * readings joined by commas however they were sent.
   */
  private scanReadings(bytes: Uint8Array, i: number, out: Array<RawItemPart>): number {
    const n = bytes.length
    const readings = this.readings
    let state = this.state
    // The run being gathered in `bytes`: [runStart, runEnd), runEnd the end of its last reading so far.
    let runStart = -1
    let runEnd = -1
    const flush = () => {
      if (runStart >= 0) {
        readings.append(bytes, runStart, runEnd)
        this.checkHeld()
      }
      runStart = -1
    }
    while (i < n) {
      if (state === IN_READING) {
        // A reading that went on from the previous bytes continues here, with no comma before it.
        if (runStart < 0) runStart = i
        const end = this.scanValue(bytes, i)
        if (end < 0) {
          readings.append(bytes, runStart, n)
          this.checkHeld()
          runStart = -1
          i = n
          break
        }
        i = end
        state = AFTER_READING
        runEnd = i
        this.readingsInPart++
        continue
      }
      const b = bytes[i]!
      if (state === AFTER_READING) {
        if (b === COMMA) {
          // Only once another reading follows: so the item's last part always has readings of its own.
          if (readings.length + (runStart >= 0 ? runEnd - runStart : 0) >= this.partBytes) {
            flush()
            out.push(this.part(false))
          }
          state = BEFORE_READING
        } else if (b === CLOSE_BRACKET) {
          state = AFTER_VALUE
          i++
          break
        } else if (!isWhitespace(b)) {
          throw new ItemSplitError(`expected ',' or ']' in sensor, found ${describe(b)}`)
        }
        i++
      } else if (b === CLOSE_BRACKET && this.readingsInPart === 0 && readings.length === 0 && runStart < 0) {
        // BEFORE_READING: the array is empty.
        state = AFTER_VALUE
        i++
        break
      } else if (isWhitespace(b)) {
        i++
      } else {
        // BEFORE_READING: a reading starts. It joins the run when only a comma is between them.
        if (runStart < 0 || i !== runEnd + 1) {
          flush()
          // After any reading of the part, an empty one too: `[,1]` is then refused by JSON.parse, not read as `[1]`.
          if (this.readingsInPart > 0) readings.byte(COMMA)
          runStart = i
        }
        state = IN_READING
        this.depth = 0
      }
    }
    flush()
    this.state = state
    return i
  }

  /** Refuses the item once its head and the part being gathered (a reading's bytes, say) outgrow the bound. */
  private checkHeld(): void {
    if (this.head.length + this.readings.length > this.maxHeldBytes) {
      const message = `its kept members and one part of its readings exceed ${this.maxHeldBytes} bytes`
      throw new ItemSplitError(message, "too_large")
    }
  }

  private startMember(): void {
    const name = JSON.parse(decoder.decode(this.key.view())) as string
    if (name === this.arrayMember || this.once.has(name)) {
      if (this.named.has(name)) throw new ItemSplitError(`an element has "${name}" twice`, "duplicate", name)
      this.named.add(name)
    }
    if (name === this.arrayMember) {
      this.sensorNext = true
      this.keeping = false
    } else {
      this.keeping = this.keep.has(name)
      if (this.keeping) {
        if (this.head.length > 1) this.head.byte(COMMA)
        this.head.append(this.key.view(), 0, this.key.length)
        this.head.byte(COLON)
      }
    }
    this.state = BEFORE_VALUE
  }

  private end(out: Array<RawItemPart>): void {
    this.head.byte(CLOSE_BRACE)
    out.push(this.part(true))
    this.state = ENDED
  }

  private part(last: boolean): RawItemPart {
    const readings = new Uint8Array(this.readings.length + 2)
    readings[0] = OPEN_BRACKET
    readings.set(this.readings.view(), 1)
    readings[readings.length - 1] = CLOSE_BRACKET
    const part: RawItemPart = {
      head: last ? this.head.view() : Uint8Array.of(...this.head.view(), CLOSE_BRACE),
      readings,
      offset: this.offset,
      last
    }
    this.offset += this.readingsInPart
    this.readingsInPart = 0
    this.readings.length = 0
    return part
  }

  /**
   * Scans a value (a member's, a reading, or a member's name once its quote opened) from `i`, resuming where the
   * previous bytes left it: the index where it ends — before the `,`, `}`, `]` or whitespace after a number or
   * literal, after the quote or bracket that closes a string or structure — or -1 if it goes on past `bytes`. Runs
   * on locals: readings are most of the bytes.
   */
  private scanValue(bytes: Uint8Array, i: number): number {
    const n = bytes.length
    let depth = this.depth
    let inString = this.inString
    if (this.escaped && i < n) {
      this.escaped = false
      i++
    }
    let end = -1
    while (i < n) {
      let b = bytes[i]!
      if (inString) {
        while (b !== QUOTE && b !== BACKSLASH && ++i < n) b = bytes[i]!
        if (i === n) break
        if (b === BACKSLASH) {
          i += 2
          if (i > n) {
            this.escaped = true
            i = n
          }
          continue
        }
        inString = false
        i++
        if (depth === 0) {
          end = i
          break
        }
      } else if (b === QUOTE) {
        inString = true
        i++
      } else if (b === OPEN_BRACE || b === OPEN_BRACKET) {
        depth++
        i++
      } else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
        // At depth 0 it is not the value's: the value (a number or literal) ended before it.
        if (depth === 0) {
          end = i
          break
        }
        i++
        if (--depth === 0) {
          end = i
          break
        }
      } else if (depth === 0 && (b === COMMA || isWhitespace(b))) {
        end = i
        break
      } else {
        i++
      }
    }
    this.depth = depth
    this.inString = inString
    return end
  }
}

const describe = (b: number): string =>
  b >= 0x20 && b < 0x7f ? `'${String.fromCharCode(b)}'` : `byte 0x${b.toString(16).padStart(2, "0")}`
