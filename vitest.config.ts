import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts"],
    globalSetup: ["packages/testbed/src/globalSetup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000
  }
})
