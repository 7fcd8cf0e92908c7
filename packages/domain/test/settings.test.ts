import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import { integerSetting, portSetting } from "../src/Settings.js"

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
        [portSetting("PORT", 8080), { PORT: "abc" }, /PORT.*integer/]
      ] as const
      for (const [setting, env, message] of cases) {
        const result = yield* read(setting, env)
        expect(result._tag).toBe("Left")
        expect(String(result._tag === "Left" ? result.left : "")).toMatch(message)
      }
    }))
})
