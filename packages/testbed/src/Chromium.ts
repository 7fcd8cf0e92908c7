import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"

/** Where Debian's chromium package puts the browser the console's browser test drives. */
export const CHROMIUM = "/usr/bin/chromium"

const aptGet = (...args: Array<string>) =>
  execFileSync("apt-get", args, { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } })

const install = () => aptGet("install", "-y", "--no-install-recommends", "chromium")

/** Installs Debian's chromium when it is missing (CI starts from a bare image, as root, maybe without package lists). */
export const ensureChromium = () => {
  if (existsSync(CHROMIUM)) return
  try {
    install()
  } catch {
    aptGet("update")
    install()
  }
}
