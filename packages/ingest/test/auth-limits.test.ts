import * as RateLimiter from "@effect/experimental/RateLimiter"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Layer, TestClock } from "effect"
import { AuthLimits } from "../src/auth/AuthLimits.js"

// On the library's store: ours sweeps every minute, and a TestClock taken days on would run each sweep.
const limitsLayer = AuthLimits.DefaultWithoutDependencies.pipe(
  Layer.provide(RateLimiter.layer.pipe(Layer.provide(RateLimiter.layerStoreMemory))),
  Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["LOGIN_MAX_FAILURES", "2"]]))))
)

describe("the login lockout's known addresses", () => {
  it.effect("are forgotten 7 days after the last success, and past 100 000 the oldest first", () =>
    Effect.gen(function*() {
      const limits = yield* AuthLimits
      const refused = (username: string, address: string) =>
        Effect.map(Effect.either(limits.loginAttempt("device", username, address, Effect.void)), Either.isLeft)
      /** Locks the username out, failing from an address of its own. */
      const lockOut = (username: string) => Effect.repeatN(limits.loginFailed("device", username, "10.9.9.9"), 1)

      yield* limits.loginSucceeded("device", "ha", "10.0.0.1")
      yield* TestClock.adjust("6 days")
      yield* limits.loginSucceeded("device", "ha", "10.0.0.1")
      yield* TestClock.adjust("6 days")
      yield* lockOut("ha")
      expect(yield* refused("ha", "10.0.0.2")).toBe(true)
      expect(yield* refused("ha", "10.0.0.1")).toBe(false)
      // An IPv6 address is known by its /64, as it is counted.
      yield* limits.loginSucceeded("device", "ha", "2001:db8::1")
      expect(yield* refused("ha", "2001:db8::2")).toBe(false)
      expect(yield* refused("ha", "2001:db8:0:1::1")).toBe(true)

      // 7 days after its renewal, the account is a stranger at its address again.
      yield* TestClock.adjust("1 day")
      yield* lockOut("ha")
      expect(yield* refused("ha", "10.0.0.1")).toBe(true)

      yield* limits.loginSucceeded("device", "first", "10.0.0.1")
      for (let i = 1; i <= 100_000; i++) yield* limits.loginSucceeded("device", `ha-${i}`, "10.0.0.1")
      yield* lockOut("first")
      yield* lockOut("ha-1")
      expect(yield* refused("first", "10.0.0.1")).toBe(true)
      expect(yield* refused("ha-1", "10.0.0.1")).toBe(false)
    }).pipe(Effect.provide(limitsLayer)))
})
