/**
 * Whether a database failure may pass if the same statement runs again, from the SQLSTATE the server answered.
 * node-postgres and PGlite both put it in `code` of the error they throw (with a `severity`), which `@effect/sql`'s
 * SqlError and our LoadError keep as `cause`.
 */

/**
 * SQLSTATE classes that blame the statement's data, not the server: running it again fails again. 21 cardinality,
 * 22 data exception (e.g. 22021 a NUL or invalid byte sequence, 22001 too long, 22003 out of range, 22P05), 23
 * integrity constraint, 42 syntax or access rule, 44 check option, 54 program limit (54000 index row too large), 0A
 * feature not supported, P0 raised by a PL/pgSQL function.
 */
const PERMANENT_CLASSES = new Set(["21", "22", "23", "42", "44", "54", "0A", "P0"])

const SQLSTATE = /^[0-9A-Z]{5}$/

const MAX_DEPTH = 8

interface ServerError {
  readonly code: string
  readonly message: string
}

/** The server's answer in `error` or its chain of causes; none for other failures. */
const serverErrorOf = (error: unknown): ServerError | undefined => {
  let current = error
  for (let depth = 0; depth < MAX_DEPTH && typeof current === "object" && current !== null; depth++) {
    const { cause, code, message, severity } = current as { code?: unknown; message?: unknown; severity?: unknown; cause?: unknown }
    // `severity` tells a server's error apart from a Node one whose code happens to be 5 letters (EPIPE).
    if (typeof code === "string" && SQLSTATE.test(code) && typeof severity === "string") {
      return { code, message: typeof message === "string" ? message : "" }
    }
    current = cause
  }
  return undefined
}

/** The SQLSTATE of the server's answer in `error` or its chain of causes; none for other failures. */
export const sqlStateOf = (error: unknown): string | undefined => serverErrorOf(error)?.code

/** The message of the deepest cause of `error` that has one (a socket's "connect ECONNREFUSED 10.0.0.5:5432"). */
const rootMessageOf = (error: unknown): string | undefined => {
  let found: string | undefined
  let current = error
  for (let depth = 0; depth < MAX_DEPTH && typeof current === "object" && current !== null; depth++) {
    const { cause, message } = current as { message?: unknown; cause?: unknown }
    if (typeof message === "string" && message !== "") found = message
    current = cause
  }
  return found
}

/**
 * The error's message with the server's own words and SQLSTATE, when its causes hold them (`@effect/sql` says only
 * "Failed to execute statement"), else with the words of its deepest cause ("Failed to acquire connection" alone
 * does not say that the connection was refused, nor where).
 */
export const explain = (error: { readonly message: string }): string => {
  const answer = serverErrorOf(error)
  if (answer === undefined) {
    const root = rootMessageOf(error)
    return root === undefined || error.message.includes(root) ? error.message : `${error.message}: ${root}`
  }
  const words = error.message.includes(answer.message) ? error.message : `${error.message}: ${answer.message}`
  return `${words} (SQLSTATE ${answer.code})`
}

/**
 * SQLSTATEs of a server that ended or refused the session for reasons of its own, whatever the statement held: an
 * operator's or a failover's termination (57P01), a crash of another server process (57P02), a server starting or
 * stopping (57P03), every connection taken (53300).
 */
const SESSION_ENDED_BY_SERVER = new Set(["57P01", "57P02", "57P03", "53300"])

/** Whether the server ended or refused the session itself (SESSION_ENDED_BY_SERVER): never the data's fault. */
export const isEndedByServer = (error: unknown): boolean => SESSION_ENDED_BY_SERVER.has(sqlStateOf(error) ?? "")

/** Whether the database could not write for want of disk space (53100): an outage until space is freed. */
export const isDiskFull = (error: unknown): boolean => sqlStateOf(error) === "53100"

/**
 * False only when the server refused the statement for what it holds; true for everything else — connection
 * failures (08, or no SQLSTATE at all: refused, reset, timed out), serialization failures and deadlocks (40),
 * insufficient resources (53), an operator's intervention or a restarting server (57), system errors (58) — as
 * those end when the database recovers.
 */
export const isTransient = (error: unknown): boolean => {
  const state = sqlStateOf(error)
  return state === undefined || !PERMANENT_CLASSES.has(state.slice(0, 2))
}
