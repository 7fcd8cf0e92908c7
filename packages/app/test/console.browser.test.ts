import { describe, expect, layer } from "@effect/vitest"
import { bearer, deviceToken, readerToken } from "@telemetry/ingest/testing/auth"
import { CHROMIUM } from "@telemetry/testbed/Chromium"
import { Effect } from "effect"
import { chromium } from "playwright-core"
import { embeddedStack, eventually, freePort } from "./support/stack.js"

const port = await freePort()
const base = `http://127.0.0.1:${port}`
const MINUTE = 60_000

/** Two equipments of the default tenant, each a temperature and a humidity sensor read every 10 minutes for 6 hours. */
const payload = (now: number) =>
  ["cold-room", "freezer"].map((uuid, n) => ({
    equip_uuid: uuid,
    equip_nome: uuid === "freezer" ? "Freezer" : "Cold room",
    equip_local: "Kitchen",
    equip_status: "ATIVO",
    equip_intervalo_coleta: "600",
    sensor: Array.from({ length: 36 }, (_, i) => now - (36 - i) * 10 * MINUTE).flatMap((time, i) => [
      { sensor_uuid: `${uuid}-temp`, sensor_nome: "Temperature", sensor_tipo: "temperature", sensor_unidade: "°C",
        valor: -18 + n * 20 + Math.sin(i / 3), sensor_datahora_coleta: new Date(time).toISOString() },
      { sensor_uuid: `${uuid}-hum`, sensor_nome: "Humidity", sensor_tipo: "humidity", sensor_unidade: "%",
        valor: 50 + Math.cos(i / 4) * 5, sensor_datahora_coleta: new Date(time).toISOString() }
    ])
  }))

const equipments = Effect.promise(async () => {
  const response = await fetch(`${base}/api/v1/equipments`, { headers: bearer(readerToken()) })
  return (await response.json()) as { data: ReadonlyArray<{ uuid: string; readings_24h: number }> }
})

describe("the web console in Chromium", () => {
  layer(embeddedStack(port), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.scoped("signs in, lists the tenant's equipments, charts each sensor, signs out; asks only its server", () =>
      Effect.gen(function*() {
        const posted = yield* Effect.promise(() =>
          fetch(`${base}/api/v1/telemetry/bulk`, {
            method: "POST",
            headers: { "content-type": "application/json", ...bearer(deviceToken()) },
            body: JSON.stringify(payload(Date.now()))
          }))
        expect(posted.status).toBe(202)
        yield* eventually(equipments, (page) => page.data.length === 2 && page.data.every((e) => e.readings_24h === 72))

        const browser = yield* Effect.acquireRelease(
          Effect.promise(() =>
            chromium.launch({
              executablePath: CHROMIUM,
              args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]
            })),
          (b) => Effect.promise(() => b.close())
        )
        const page = yield* Effect.promise(() => browser.newPage({ viewport: { width: 1200, height: 900 } }))
        const requested: Array<string> = []
        page.on("request", (request) => void requested.push(request.url()))
        const errors: Array<string> = []
        page.on("pageerror", (error) => void errors.push(String(error)))

        yield* Effect.promise(async () => {
          await page.goto(base)
          await page.fill("input[name=token]", readerToken())
          await page.click("#signin button[type=submit]")
          await page.waitForSelector("#equipments a")
          expect(await page.locator("#equipments a").allTextContents()).toEqual(["Cold room", "Freezer"])
          expect(await page.locator("#equipments svg.sparkline path").count()).toBe(2)
          await page.screenshot({ path: "/work/main/.tmp/console-list.png" })

          await page.click("text=Freezer")
          await page.waitForSelector("#charts .chart canvas")
          await page.waitForFunction(() => document.querySelectorAll("#charts .chart").length === 2)
          expect(await page.locator("#charts figcaption").allTextContents()).toEqual([
            "Humidity (humidity)",
            "Temperature (temperature)"
          ])
          expect(await page.locator(".card").count()).toBe(2)
          await page.screenshot({ path: "/work/main/.tmp/console-equipment.png", fullPage: true })
          await page.screenshot({ path: "/work/main/docs/console.png", fullPage: true })

          // The pipeline's counters, or the notice that the server exposes none.
          await page.click("text=Pipeline")
          await page.waitForSelector("main .cards, main [role=status]")
          await page.screenshot({ path: "/work/main/.tmp/console-pipeline.png", fullPage: true })

          await page.click("#signout")
          await page.waitForSelector("#signin")
          expect(await page.evaluate(() => sessionStorage.getItem("token"))).toBeNull()
        })
        expect(errors).toEqual([])
        expect(requested.length).toBeGreaterThan(5)
        expect(requested.filter((url) => !url.startsWith(`${base}/`))).toEqual([])
      }), { timeout: 120_000 })
  })
})
