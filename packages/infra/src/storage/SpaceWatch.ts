import { type ObjectStoreShape, StorageError } from "@telemetry/domain"
import { Clock, Duration, Effect, Option, Ref } from "effect"

/** Error codes of a write refused for want of space: the file system's, a quota's, MinIO's. */
const NO_SPACE_CODES = new Set(["ENOSPC", "EDQUOT", "XMinioStorageFull"])
/** HTTP 507 Insufficient Storage. */
const INSUFFICIENT_STORAGE = 507

/** Whether `cause`, or what caused it, says there is no space left. */
export const isNoSpace = (cause: unknown): boolean => {
  if (typeof cause !== "object" || cause === null) return false
  const { cause: inner, code, status } = cause as { code?: unknown; status?: unknown; cause?: unknown }
  return (typeof code === "string" && NO_SPACE_CODES.has(code)) || status === INSUFFICIENT_STORAGE || isNoSpace(inner)
}

/**
 * How long after a put refused for want of space the store's check fails: health says storage is full and
 * readiness takes the process out, so that a load balancer sends uploads elsewhere. Held rather than probed, as a
 * check only reads: past it, the next upload finds out whether space was freed, and one that succeeds ends it sooner.
 */
export const FULL_HOLD = Duration.seconds(30)

/** `store`, its check failing for `FULL_HOLD` after each put refused as `full`. */
export const watch = (store: ObjectStoreShape): Effect.Effect<ObjectStoreShape> =>
  Effect.map(Ref.make(Option.none<{ readonly at: number; readonly error: StorageError }>()), (refused) => ({
    ...store,
    put: (key, body, finalize) =>
      store.put(key, body, finalize).pipe(
        Effect.tap(() => Ref.set(refused, Option.none())),
        Effect.tapError((error) =>
          error instanceof StorageError && error.full === true
            ? Effect.flatMap(Clock.currentTimeMillis, (at) => Ref.set(refused, Option.some({ at, error })))
            : Effect.void
        )
      ),
    check: Effect.flatMap(Effect.all([Ref.get(refused), Clock.currentTimeMillis]), ([last, now]) =>
      Option.isSome(last) && now - last.value.at < Duration.toMillis(FULL_HOLD)
        ? Effect.fail(
          new StorageError({
            operation: "head",
            key: "",
            full: true,
            message: `no space left: an upload was refused ${Math.round((now - last.value.at) / 1000)} s ago (${last.value.error.message})`
          })
        )
        : store.check)
  }))
