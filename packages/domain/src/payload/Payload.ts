import { Schema } from "effect"

// Wire format of the bulk endpoint (contract §1). Nulls are treated like absent fields: the Home Assistant
// client sends null for unknown attributes. Unknown fields are ignored by decoding (the default); normalization
// keeps a reading's unknown `sensor_*` fields in its metadata.

/** Longest equipment or sensor uuid: identities are indexed, and analytics routes take them in their path. */
export const MAX_ID_LENGTH = 128
/** Longest name, location, type, unit, status or other text attribute. */
export const MAX_TEXT_LENGTH = 256

/**
 * Whether `text` holds at most `max` characters, counted as people count them: code points, so that an emoji is one
 * where JavaScript's length counts two UTF-16 units (and PostgreSQL's `length` one). Text of more than 2 × max units
 * cannot be, and is not walked.
 */
export const atMostCharacters = (text: string, max: number): boolean =>
  text.length <= max || (text.length <= 2 * max && [...text].length <= max)

/** `Schema.maxLength` counting characters (atMostCharacters), with its message and JSON Schema. */
export const maxCharacters = (max: number) => <A extends string, I, R>(self: Schema.Schema<A, I, R>) =>
  self.pipe(Schema.filter((text) => atMostCharacters(text, max), {
    title: `maxLength(${max})`,
    description: `a string at most ${max} character(s) long`,
    // JSON Schema's maxLength counts characters too.
    jsonSchema: { maxLength: max },
    message: () => `must be at most ${max} characters`
  }))

/**
 * Text that PostgreSQL's text can hold as it is: no NUL, which it refuses, and no lone surrogate, which would be
 * stored as U+FFFD (another string). For text that comes from elsewhere than a payload (tokens, query parameters):
 * a payload's strings are checked as they are scanned (JsonArrayScanner).
 */
export const textStorable = <A extends string, I, R>(self: Schema.Schema<A, I, R>) =>
  self.pipe(Schema.filter((text) => !text.includes("\0") && text.isWellFormed(), {
    message: () => "must not contain NUL characters or lone surrogates"
  }))

export const BYTE_ORDER_MARK = 0xfeff
/**
 * Text that reads back as it was written on every database: the embedded one (PGlite) decodes what it reads with a
 * TextDecoder that drops a leading byte order mark, so an identity starting with U+FEFF would come back as another.
 */
export const withoutByteOrderMark = <A extends string, I, R>(self: Schema.Schema<A, I, R>) =>
  self.pipe(Schema.filter((text) => text.charCodeAt(0) !== BYTE_ORDER_MARK, {
    message: () => "must not start with U+FEFF (a byte order mark)"
  }))
const Storable = Schema.String.pipe(withoutByteOrderMark)
const BoundedText = Storable.pipe(maxCharacters(MAX_TEXT_LENGTH))
const Text = Schema.optional(Schema.NullOr(BoundedText))
const Finite = Schema.optional(Schema.NullOr(Schema.Finite))
/** A decimal number written as a string ("30", "-18.5", "1e3"); not hex, not "Infinity". */
export const DECIMAL = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/
const NumericString = Schema.String.pipe(
  Schema.pattern(DECIMAL, { message: () => "must be a number or a numeric string" }),
  Schema.compose(Schema.NumberFromString),
  Schema.finite()
)
/** Seconds (a collection interval, a siren time): whole, stored as a 4-byte integer once rounded. */
export const MAX_SECONDS = 2_147_483_647
const Seconds = Schema.optional(Schema.NullOr(Schema.Union(Schema.Finite, NumericString).pipe(
  Schema.filter((n) => n >= 0 && Math.round(n) <= MAX_SECONDS, { message: () => `must be a number of seconds from 0 to ${MAX_SECONDS}` })
)))
/** Reading values; the bound keeps squares (stddev) and sums in the aggregates finite. */
export const MAX_ABS_VALUE = 1e100
const Value = Schema.Finite.pipe(
  Schema.between(-MAX_ABS_VALUE, MAX_ABS_VALUE, { message: () => `must be a finite number within ±${MAX_ABS_VALUE}` })
)
/** Text with something besides whitespace: an identity of spaces alone is a client's mistake, not a name. */
export const isNotBlank = (text: string): boolean => {
  const first = text.charCodeAt(0)
  return (first > 0x20 && first < 0x7f) || text.trim().length > 0
}
const Id = Storable.pipe(
  Schema.minLength(1, { message: () => "must be a non-empty string" }),
  Schema.filter(isNotBlank, { message: () => "must not be blank (whitespace only)", jsonSchema: { pattern: "\\S" } }),
  maxCharacters(MAX_ID_LENGTH)
)
const Flag = Schema.optional(Schema.NullOr(Schema.Union(BoundedText, Schema.Boolean)).annotations({
  message: () => ({ message: `must be true, false or a text of at most ${MAX_TEXT_LENGTH} characters`, override: true })
}))

export const SensorReading = Schema.Struct({
  sensor_uuid: Id,
  sensor_nome: Text,
  sensor_tipo: Text,
  tipo: Text,
  sensor_unidade: Text,
  sensor_status: Text,
  valor: Schema.optional(Schema.NullOr(Value)),
  // Told as one: a text too long is not "expected number".
  sensor_telemetria: Schema.optional(Schema.NullOr(Schema.Union(Value, BoundedText)).annotations({
    message: () => ({
      message: `must be a number within ±${MAX_ABS_VALUE}, or a text of at most ${MAX_TEXT_LENGTH} characters not starting with U+FEFF`,
      override: true
    })
  })),
  status: Text,
  sensor_datahora_coleta: Text,
  timestamp: Text,
  sensor_bateria_pct: Finite,
  sensor_sinal_rssi: Finite,
  sensor_sinal_lqi: Finite,
  sensor_voltagem_bateria: Finite,
  sensor_voltagem: Finite,
  sensor_corrente: Finite,
  sensor_potencia: Finite,
  sensor_fabricante: Text,
  sensor_modelo: Text,
  sensor_firmware: Text,
  sensor_id_hardware: Text,
  sensor_via_hub: Flag
}).annotations({ message: () => "must be an object (a reading)" })
export type SensorReading = typeof SensorReading.Type

export const EquipmentItem = Schema.Struct({
  equip_uuid: Id,
  equip_nome: Text,
  equip_local: Text,
  equip_status: Text,
  equip_intervalo_coleta: Seconds,
  equip_sirene_ativa: Flag,
  equip_sirete_tempo: Seconds,
  sensor: Schema.Array(SensorReading).annotations({ message: () => "must be an array of readings" }).pipe(
    Schema.minItems(1, { message: () => "must hold at least one reading" })
  )
}).annotations({ message: () => "must be an object (an equipment item)" })
export type EquipmentItem = typeof EquipmentItem.Type

/** The members of an equipment item besides `sensor`: all a large item is read with, besides its readings. */
export const EQUIPMENT_FIELDS: ReadonlySet<string> = new Set(Object.keys(EquipmentItem.fields).filter((f) => f !== "sensor"))
