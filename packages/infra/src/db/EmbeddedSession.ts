import { Context, type Effect } from "effect"

/**
 * The embedded database's one session, as its health tells: a transaction holds it from BEGIN to COMMIT (a load, for
 * seconds), and every other statement waits its turn. Only the embedded client provides it.
 */
export class EmbeddedSession extends Context.Tag("@telemetry/EmbeddedSession")<EmbeddedSession, {
  /** Since when (epoch ms) the statement or transaction holding the session has held it; null while it is free. */
  readonly heldSince: Effect.Effect<number | null>
}>() {}
