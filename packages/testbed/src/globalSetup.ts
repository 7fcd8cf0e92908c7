import { ensureChromium } from "./Chromium.js"
import { ensureLauncher } from "./KafkaMock.js"

/** Once per test run, before any test file: build what the stand-ins need (CI starts from a clean clone). */
export default function setup() {
  ensureLauncher()
  ensureChromium()
}
