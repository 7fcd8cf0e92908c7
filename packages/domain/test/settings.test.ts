import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect } from "effect"
import { integerSetting, numberConfig, portSetting, positiveDuration } from "../src/Settings.js"

const read = <A>(setting: Effect.Effect<A, unknown>, env: Record<string, string>) =>
  setting.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))), Effect.either)

describe("integer settings", () => {
  it.effect("take their default when unset, and a value in range as it is", () =>
    Effect.gen(function*() {
      expect(yield* read(integerSetting("GZIP_LEVEL", 1, { min: 0, max: 9 }), {})).toEqual(expect.objectContaining({ right: 1 }))
      expect(yield* read(integerSetting("GZIP_LEVEL", 1, { min: 0, max: 9 }), { GZIP_LEVEL: "9" })).toEqual(expect.objectContaining({ right: 9 }))
      expect(yield* read(portSetting("PORT", 8080), { PORT: "0" })).toEqual(expect.objectContaining({ right: 0 }))
    }))

  it.effect("refuse a value out of range, naming the variable and the range", () =>
    Effect.gen(function*() {
      const cases = [
        [integerSetting("GZIP_LEVEL", 1, { min: 0, max: 9 }), { GZIP_LEVEL: "42" }, /GZIP_LEVEL.*must be from 0 to 9/],
        [integerSetting("MAX_INFLIGHT_UPLOADS", 32, { min: 1 }), { MAX_INFLIGHT_UPLOADS: "0" }, /MAX_INFLIGHT_UPLOADS.*must be at least 1/],
        [portSetting("PORT", 8080), { PORT: "70000" }, /PORT.*must be from 0 to 65535/],
        [portSetting("PORT", 8080), { PORT: "abc" }, /PORT.*integer/],
        [portSetting("PORT", 8080), { PORT: "1.5" }, /PORT.*integer/],
        // Read as 0 by Config.integer: a rate limit turned off, a random port.
        [integerSetting("RATE_LIMIT_PER_DEVICE", 60, { min: 0 }), { RATE_LIMIT_PER_DEVICE: "" }, /RATE_LIMIT_PER_DEVICE.*integer but received ""/],
        [portSetting("PORT", 8080), { PORT: "  " }, /PORT.*integer/],
        [numberConfig("MAX_COMPRESSION_RATIO", { min: 1 }), { MAX_COMPRESSION_RATIO: "" }, /MAX_COMPRESSION_RATIO.*a number but received ""/],
        [numberConfig("MAX_COMPRESSION_RATIO", { min: 1 }), { MAX_COMPRESSION_RATIO: "0.5" }, /MAX_COMPRESSION_RATIO.*must be at least 1/]
      ] as const
      for (const [setting, env, message] of cases) {
        const result = yield* read(setting, env)
        expect(result._tag).toBe("Left")
        expect(String(result._tag === "Left" ? result.left : "")).toMatch(message)
      }
    }))
})

describe("positive durations", () => {
  it.effect("take their default when unset, a value as it is, and refuse zero or less, naming the variable", () =>
    Effect.gen(function*() {
      const window = positiveDuration("RATE_LIMIT_WINDOW", Duration.minutes(1))
      expect(yield* read(window, {})).toEqual(expect.objectContaining({ right: Duration.minutes(1) }))
      expect(yield* read(window, { RATE_LIMIT_WINDOW: "5 seconds" })).toEqual(expect.objectContaining({ right: Duration.seconds(5) }))
      for (const value of ["0 seconds", "0 millis"]) {
        const result = yield* read(window, { RATE_LIMIT_WINDOW: value })
        expect(String(result._tag === "Left" ? result.left : "")).toMatch(/RATE_LIMIT_WINDOW.*must be longer than 0/)
      }
    }))
})
