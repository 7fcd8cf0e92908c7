import { Duration, Effect } from "effect"
import { gzipSync } from "node:zlib"

/**
 * A client that behaves as the Easy Smart Monitor integration for Home Assistant (v1.5.x) does, as contract §6
 * describes it — the client our users run and we cannot change:
 * - it logs in with `POST /api/v1/auth/device/login` `{username, password}` and reads `access_token` from a 200;
 *   with an empty queue a cycle only logs in (the heartbeat that shows "last sync");
 * - it sends its whole queue as `gzip.compress(json.dumps(queue), 6)` to `/api/v1/telemetry/bulk` with its
 *   User-Agent, no x-device-id and no Idempotency-Key; only 200 or 201 count as success; a 401 makes it log in
 *   again; anything else, or a network error, is tried up to 5 times, 10 s apart, and then the queue is kept and
 *   sent again next cycle with the new readings appended to their equipment's item;
 * - reading times are `datetime.now().isoformat()`: the wall clock of its host, without a zone, with microseconds
 *   (and without them when they are zero, as Python prints it).
 */
export const USER_AGENT = "EasySmartMonitor/1.5.2.1 (HomeAssistant; +https://github.com/easysmartmonitor)"

export interface HaReading {
  readonly sensor_uuid: string
  readonly [field: string]: unknown
}

export interface HaItem {
  equip_uuid: string
  equip_nome?: string
  equip_local?: string
  equip_status?: string
  equip_intervalo_coleta?: number
  equip_sirene_ativa?: string
  equip_sirete_tempo?: number
  sensor: Array<HaReading>
}

export interface HaClientOptions {
  readonly base: string
  readonly username: string
  readonly password: string
  /** The pause between attempts of one send (10 s in the integration). */
  readonly retryDelay?: Duration.DurationInput
  readonly attempts?: number
}

/** What one cycle did: the statuses of its requests, in order, and whether the queue was acknowledged. */
export interface Cycle {
  readonly logins: ReadonlyArray<number>
  readonly sends: ReadonlyArray<number | "network error">
  /** How long each of `sends` took to be answered, in milliseconds. */
  readonly sendMs: ReadonlyArray<number>
  readonly acknowledged: boolean
}

/**
 * Python's `json.dumps` with its defaults: `", "` and `": "` separators, non-ASCII escaped as `\uXXXX`, and
 * non-finite numbers written as `NaN`, `Infinity` and `-Infinity` (which JSON does not have).
 */
export const pythonJsonDumps = (value: unknown): string =>
  JSON.stringify(value, (_key, v) => typeof v === "number" && !Number.isFinite(v) ? `\u0000${v}` : v, 0)
    .replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)
    .replace(/("(?:[^"\\]|\\.)*")|([,:])/g, (_match, string, separator) => string ?? `${separator} `)
    .replace(/"\\u0000(NaN|-?Infinity)"/g, "$1")

/** `datetime.now().isoformat()` of a wall-clock time given as its fields (a naive local time). */
export const pythonIsoformat = (
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  micros = 0
) => {
  const two = (n: number) => String(n).padStart(2, "0")
  const base = `${year}-${two(month)}-${two(day)}T${two(hour)}:${two(minute)}:${two(second)}`
  return micros === 0 ? base : `${base}.${String(micros).padStart(6, "0")}`
}

export const makeHaClient = (options: HaClientOptions) => {
  const attempts = options.attempts ?? 5
  const retryDelay = options.retryDelay ?? Duration.seconds(10)
  let token: string | undefined
  const queue: Array<HaItem> = []

  const login = Effect.tryPromise(async () => {
    const response = await fetch(`${options.base}/api/v1/auth/device/login`, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": USER_AGENT },
      body: JSON.stringify({ username: options.username, password: options.password }),
      signal: AbortSignal.timeout(25_000)
    })
    if (response.status === 200) token = ((await response.json()) as { access_token: string }).access_token
    return response.status
  }).pipe(Effect.orElseSucceed(() => 0))

  const post = (body: Uint8Array) =>
    Effect.tryPromise(async () => {
      const response = await fetch(`${options.base}/api/v1/telemetry/bulk`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "content-encoding": "gzip",
          authorization: `Bearer ${token ?? ""}`,
          "user-agent": USER_AGENT
        },
        body: body as unknown as BodyInit,
        signal: AbortSignal.timeout(25_000)
      })
      await response.arrayBuffer()
      return response.status
    }).pipe(Effect.orElseSucceed(() => "network error" as const))

  return {
    /** Readings taken by the integration: appended to their equipment's item, its header fields updated. */
    record: (item: HaItem) => {
      const queued = queue.find((q) => q.equip_uuid === item.equip_uuid)
      if (queued === undefined) queue.push({ ...item, sensor: [...item.sensor] })
      else Object.assign(queued, { ...item, sensor: [...queued.sensor, ...item.sensor] })
    },
    queued: () => queue.reduce((n, item) => n + item.sensor.length, 0),
    /** One cycle of the integration's coordinator. */
    cycle: Effect.gen(function*() {
      const logins: Array<number> = []
      const sends: Array<number | "network error"> = []
      const sendMs: Array<number> = []
      if (queue.length === 0 || token === undefined) logins.push(yield* login)
      if (queue.length === 0) return { logins, sends, sendMs, acknowledged: false } satisfies Cycle
      const body = gzipSync(pythonJsonDumps(queue), { level: 6 })
      const timedPost = Effect.map(Effect.timed(post(body)), ([elapsed, status]) => {
        sendMs.push(Duration.toMillis(elapsed))
        return status
      })
      for (let attempt = 1; attempt <= attempts; attempt++) {
        let status = yield* timedPost
        if (status === 401) {
          logins.push(yield* login)
          // The refused attempt counts as the resend it leads to.
          sendMs.pop()
          status = yield* timedPost
        }
        sends.push(status)
        if (status === 200 || status === 201) {
          queue.length = 0
          return { logins, sends, sendMs, acknowledged: true } satisfies Cycle
        }
        if (attempt < attempts) yield* Effect.sleep(retryDelay)
      }
      return { logins, sends, sendMs, acknowledged: false } satisfies Cycle
    })
  }
}
