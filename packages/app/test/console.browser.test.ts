import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, layer } from "@effect/vitest"
import { Accounts } from "@telemetry/ingest/auth/Accounts"
import * as SqlAccounts from "@telemetry/ingest/auth/SqlAccounts"
import { bearer, claimsOf, deviceToken, readerToken, signToken } from "@telemetry/ingest/testing/auth"
import { CHROMIUM } from "@telemetry/testbed/Chromium"
import { Context, Effect, Layer } from "effect"
import { decodeJwt } from "jose"
import { mkdirSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { type Browser, chromium, type Page } from "playwright-core"
import { embeddedStack, eventually, freePort } from "./support/stack.js"

const port = await freePort()
const base = `http://127.0.0.1:${port}`
const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR
/** The browser's zone: the console must show times in it, and name it. */
const ZONE = "America/Sao_Paulo"
/** Screenshots for the README; never into docs/, whose picture is chosen by hand. */
const SCREENSHOTS = fileURLToPath(new URL("../../../.tmp/console/", import.meta.url))
mkdirSync(SCREENSHOTS, { recursive: true })

// --- The dataset: a reading every 20 minutes over the last 3 days, of two tenants ---

const now = Date.now()
const times = Array.from({ length: 216 }, (_, i) => now - (215 - i) * 20 * MINUTE)
const numeric = (uuid: string, name: string, type: string, unit: string, at: (i: number) => number) =>
  times.map((time, i) => ({
    sensor_uuid: uuid, sensor_nome: name, sensor_tipo: type, sensor_unidade: unit, valor: at(i),
    sensor_datahora_coleta: new Date(time).toISOString()
  }))
/** A door sends statuses, no values: the console draws its active time as bars. */
const door = (uuid: string) =>
  times.map((time, i) => ({
    sensor_uuid: uuid, sensor_nome: "Door", sensor_tipo: "door", status: i % 3 === 0 ? "open" : "closed",
    sensor_datahora_coleta: new Date(time).toISOString()
  }))
const item = (uuid: string, name: string, sensors: ReadonlyArray<ReadonlyArray<object>>) => ({
  equip_uuid: uuid, equip_nome: name, equip_local: "Kitchen", equip_status: "ATIVO", equip_intervalo_coleta: "1200",
  sensor: sensors.flat()
})
const ownItems = [
  item("cold-room", "Cold room", [
    numeric("cold-room-temp", "Temperature", "temperature", "°C", (i) => 3 + Math.sin(i / 5)),
    numeric("cold-room-hum", "Humidity", "humidity", "%", (i) => 60 + Math.cos(i / 7) * 5)
  ]),
  item("freezer", "Freezer", [
    numeric("freezer-temp", "Temperature", "temperature", "°C", (i) => -18 + Math.sin(i / 3)),
    numeric("freezer-hum", "Humidity", "humidity", "%", (i) => 50 + Math.cos(i / 4) * 5),
    door("freezer-door")
  ])
]
/** Another tenant, with an equipment of the same uuid: never shown to ours. */
const foreignItems = [
  item("freezer", "Foreign freezer", [numeric("freezer-temp", "Temperature", "temperature", "°C", () => 99)]),
  item("intruder", "Intruder", [numeric("intruder-temp", "Temperature", "temperature", "°C", () => 42)])
]
/** The readings of both tenants. */
const sent = [...ownItems, ...foreignItems].reduce((n, i) => n + i.sensor.length, 0)
/** The hours the readings fall in: the hourly buckets each sensor has. */
const hours = new Set(times.map((t) => Math.floor(t / HOUR))).size

const READER = { username: "console-reader", password: "console-password" }

// --- The API as the test reads it, independently of the page ---

const get = <A>(path: string, token = readerToken()) =>
  Effect.promise(async () => {
    const response = await fetch(`${base}${path}`, { headers: bearer(token) })
    expect(response.status, path).toBe(200)
    return (await response.json()) as A
  })

interface EquipmentJson {
  readonly uuid: string
  readonly name: string
  readonly last_reading_at: string | null
  readonly sensors: ReadonlyArray<{ readonly uuid: string; readonly type: string }>
}
interface Bucket {
  readonly sensor_uuid: string
  readonly avg_value: number | null
  readonly active_minutes?: number
  readonly active_hours?: number
}
interface Stats {
  readonly period: string
  readonly sensors: ReadonlyArray<{
    readonly sensor_uuid: string
    readonly overall_avg: number | null
    readonly overall_min: number | null
    readonly overall_max: number | null
    readonly total_samples: number
    readonly active_periods: number
  }>
}
const equipmentsOf = (token: string) => get<{ data: ReadonlyArray<EquipmentJson>; total: number }>("/api/v1/equipments", token)

const post = (token: string, items: ReadonlyArray<object>) =>
  Effect.promise(() =>
    fetch(`${base}/api/v1/telemetry/bulk`, {
      method: "POST",
      headers: { "content-type": "application/json", ...bearer(token) },
      body: JSON.stringify(items)
    })
  ).pipe(Effect.tap((response) => expect(response.status).toBe(202)))

/** Both tenants' readings sent once (the first test to need them), and loaded: every hour in the freezer's buckets. */
const dataset = Effect.runSync(Effect.cached(Effect.gen(function*() {
  yield* post(deviceToken(), ownItems)
  yield* post(deviceToken("tenant-b"), foreignItems)
  const range = `start_date=${new Date(now - 4 * DAY).toISOString()}&end_date=${new Date(now + HOUR).toISOString()}`
  yield* eventually(
    get<{ data: ReadonlyArray<Bucket> }>(`/api/v1/analytics/equipment/freezer/history?period=hour&${range}`),
    (history) => history.data.length === 3 * hours
  )
  yield* eventually(equipmentsOf(readerToken("tenant-b")), (page) => page.total === 2)
})))

// --- The browser: one Chromium for the file, a fresh context (its own session storage) per test ---

class Chromium extends Context.Tag("test/Chromium")<Chromium, Browser>() {}
const browserLayer = Layer.scoped(
  Chromium,
  Effect.acquireRelease(
    Effect.promise(() =>
      chromium.launch({
        executablePath: CHROMIUM,
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
          "--disable-component-update", "--disable-sync"]
      })
    ),
    (browser) => Effect.promise(() => browser.close())
  )
)

interface Session {
  readonly page: Page
  /** Every URL the context requested, in order. */
  readonly requests: Array<string>
  /** Script errors and Content-Security-Policy refusals. */
  readonly problems: Array<string>
}

const session = (viewport = { width: 1200, height: 900 }) =>
  Effect.gen(function*() {
    const browser = yield* Chromium
    const context = yield* Effect.acquireRelease(
      Effect.promise(() => browser.newContext({ viewport, timezoneId: ZONE, locale: "en-US" })),
      (context) => Effect.promise(() => context.close())
    )
    const page = yield* Effect.promise(() => context.newPage())
    const requests: Array<string> = []
    const problems: Array<string> = []
    context.on("request", (request) => void requests.push(request.url()))
    page.on("pageerror", (error) => void problems.push(String(error)))
    page.on("console", (message) => {
      if (/Content Security Policy/.test(message.text())) problems.push(message.text())
    })
    return { page, requests, problems } satisfies Session
  })

/** What every page must keep to: no script error, nothing asked of another server, no token in any URL. */
const expectWellBehaved = ({ problems, requests }: Session) => {
  expect(problems).toEqual([])
  expect(requests.length).toBeGreaterThan(3)
  expect(requests.filter((url) => !url.startsWith(`${base}/`))).toEqual([])
  expect(requests.filter((url) => /eyJ[\w-]*\.eyJ/.test(decodeURIComponent(url)))).toEqual([])
}

const signInWith = (page: Page, token: string) =>
  Effect.promise(async () => {
    await page.goto(base)
    await page.fill("input[name=token]", token)
    await page.click("#signin button[type=submit]")
    await page.waitForSelector("#equipments a")
  })

const sessionToken = (page: Page) => page.evaluate(() => sessionStorage.getItem("token"))

/** A page is phone-friendly when nothing sticks out sideways. */
const horizontalOverflow = (page: Page) =>
  page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)

const shoot = (page: Page, name: string) => page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true })

// --- The equipment page against the API ---

interface Drawn {
  readonly source: string
  readonly charts: ReadonlyArray<{ sensor: string; kind: string; points: number; total: number | null }>
}

const drawn = (page: Page): Promise<Drawn> =>
  page.evaluate(() => ({
    source: document.getElementById("charts")!.dataset.source!,
    charts: Array.from(document.querySelectorAll<HTMLElement>("#charts figure.chart"), (figure) => ({
      sensor: figure.dataset.sensor!,
      kind: figure.dataset.kind!,
      points: Number(figure.dataset.points),
      total: figure.dataset.total === undefined ? null : Number(figure.dataset.total)
    }))
  }))

/**
 * The charts drawn for `range` against the rows the API answers to the request they were drawn from, which the
 * page made after `since` (index into its request log); answers that request's bounds and period.
 */
const expectChartsOfRange = (s: Session, range: string, since: number) =>
  Effect.gen(function*() {
    yield* Effect.promise(() => s.page.waitForSelector(`#charts[data-range="${range}"] figure.chart`))
    const shown = yield* Effect.promise(() => drawn(s.page))
    expect(s.requests.slice(since).map((url) => url.slice(base.length))).toContain(shown.source)
    const url = new URL(shown.source, base)
    const history = yield* get<{ data: ReadonlyArray<Bucket> }>(shown.source)
    const freezer = yield* get<EquipmentJson>("/api/v1/equipments/freezer")
    const period = url.searchParams.get("period")
    // One chart per sensor, as many points as the API has rows of it; the door's bars its active time.
    expect(shown.charts.map((c) => c.sensor)).toEqual(freezer.sensors.map((s) => s.uuid))
    for (const sensor of freezer.sensors) {
      const rows = history.data.filter((r) => r.sensor_uuid === sensor.uuid)
      const active = rows.reduce((sum, r) => sum + (period === "day" ? r.active_hours! : r.active_minutes!), 0)
      expect(shown.charts.find((c) => c.sensor === sensor.uuid), sensor.uuid).toEqual(
        sensor.type === "door"
          ? { sensor: sensor.uuid, kind: "bars", points: rows.length, total: active }
          : { sensor: sensor.uuid, kind: "line", points: rows.length, total: null }
      )
      expect(rows.length, sensor.uuid).toBeGreaterThan(0)
    }
    return {
      period,
      start: Date.parse(url.searchParams.get("start_date")!),
      end: Date.parse(url.searchParams.get("end_date")!),
      points: shown.charts[0]!.points
    }
  })

/** The stats cards against the `/stats` the page asked for. */
const expectCards = (page: Page, statsPeriod: string) =>
  Effect.gen(function*() {
    const shown = yield* Effect.promise(() =>
      page.evaluate(() => ({
        source: document.getElementById("stats")!.dataset.source!,
        cards: Array.from(document.querySelectorAll<HTMLElement>("#stats .card"), (card) => ({
          sensor: card.dataset.sensor!,
          facts: Array.from(card.querySelectorAll("dd"), (dd) => dd.textContent!)
        }))
      }))
    )
    expect(new URL(shown.source, base).searchParams.get("period")).toBe(statsPeriod)
    const stats = yield* get<Stats>(shown.source)
    expect(shown.cards.map((c) => c.sensor)).toEqual(stats.sensors.map((s) => s.sensor_uuid))
    for (const [i, s] of stats.sensors.entries()) {
      const [avg, min, max, samples, active] = shown.cards[i]!.facts
      // Values as rounded for reading (2 decimals), counts exactly; a sensor without values shows dashes.
      const value = (text: string | undefined, expected: number | null) =>
        expected === null ? expect(text).toBe("–") : expect(Number(text)).toBeCloseTo(expected, 2)
      value(avg, s.overall_avg)
      value(min, s.overall_min)
      value(max, s.overall_max)
      expect([samples, active]).toEqual([String(s.total_samples), String(s.active_periods)])
      expect(s.total_samples).toBeGreaterThan(0)
    }
  })

/** `ms` as a datetime-local input shows it in the browser's zone. */
const localInput = (ms: number) =>
  new Intl.DateTimeFormat("sv-SE", {
    timeZone: ZONE, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"
  }).format(ms).replace(" ", "T")

describe("the web console in Chromium", () => {
  // Uploads validated on the main thread: the console is under test here, not ingest's thread pool.
  layer(Layer.merge(embeddedStack(port, { INGEST_PROCESSES: "0" }), browserLayer), { timeout: 180_000, excludeTestServices: true })((it) => {
    it.scoped("signs in with a reader account or a pasted token; lists exactly the tenant's equipments; Tab and Enter open one", () =>
      Effect.gen(function*() {
        yield* dataset
        const sql = yield* SqlClient.SqlClient
        yield* Effect.flatMap(Accounts, (accounts) =>
          accounts.add({ kind: "reader", tenantId: "default", timeZone: null, ...READER })).pipe(
            Effect.provide(SqlAccounts.layer),
            Effect.provideService(SqlClient.SqlClient, sql),
            Effect.orDie
          )
        const own = yield* equipmentsOf(readerToken())
        const foreign = yield* equipmentsOf(readerToken("tenant-b"))
        const s = yield* session()
        const { page } = s

        yield* Effect.promise(async () => {
          await page.goto(base)
          await page.waitForSelector("#signin")
          await shoot(page, "sign-in")
          await page.fill("input[name=username]", READER.username)
          await page.fill("input[name=password]", "not-the-password")
          await page.click("#signin button[type=submit]")
          await page.waitForSelector("#signin [role=alert]:text('Sign-in refused')")
          expect(await sessionToken(page)).toBeNull()

          await page.fill("input[name=password]", READER.password)
          await page.click("#signin button[type=submit]")
          await page.waitForSelector("#equipments a")
        })
        const token = yield* Effect.promise(() => sessionToken(page))
        expect(decodeJwt(token!)).toMatchObject({ tenant_id: "default", user_type: "reader", sub: READER.username })

        // Exactly the tenant's equipments, in the API's order: the other tenant's never.
        const listed = yield* Effect.promise(() => page.locator("#equipments a").allTextContents())
        expect(listed).toEqual(own.data.map((e) => e.name))
        expect(listed).toEqual(["Cold room", "Freezer"])
        expect(foreign.data.map((e) => e.name)).toEqual(["Foreign freezer", "Intruder"])
        expect(yield* Effect.promise(() => page.textContent("main"))).not.toMatch(/Foreign|Intruder/)
        expect(yield* Effect.promise(() => page.locator("#equipments svg.sparkline path").count())).toBe(2)

        // Times in the browser's zone, named: each last-seen time as São Paulo's clock shows the API's instant.
        expect(yield* Effect.promise(() => page.textContent("#zone"))).toBe(`Times in ${ZONE}`)
        const shownTimes = yield* Effect.promise(() =>
          page.locator("#equipments time").evaluateAll((nodes) =>
            nodes.map((node) => ({ datetime: node.getAttribute("datetime")!, text: node.textContent! }))
          )
        )
        const spaces = (text: string) => text.replace(/\s/g, " ")
        expect(shownTimes.map((t) => ({ ...t, text: spaces(t.text) }))).toEqual(own.data.map((e) => ({
          datetime: e.last_reading_at,
          text: spaces(new Date(e.last_reading_at!).toLocaleString("en-US", { timeZone: ZONE }))
        })))
        expect(new Date(own.data[0]!.last_reading_at!).toLocaleString("en-US", { timeZone: ZONE })).not.toBe(
          new Date(own.data[0]!.last_reading_at!).toLocaleString("en-US", { timeZone: "UTC" })
        )
        yield* Effect.promise(() => shoot(page, "list"))

        // The keyboard alone: Tab from the top of the page reaches each row's link in order; Enter opens it.
        const focused: Array<string> = []
        yield* Effect.promise(async () => {
          while (focused.at(-1) !== "Freezer" && focused.length < 30) {
            await page.keyboard.press("Tab")
            focused.push(await page.evaluate(() => document.activeElement?.textContent?.trim() ?? ""))
          }
          await page.keyboard.press("Enter")
          await page.waitForSelector("#charts figure.chart")
        })
        expect(focused.filter((text) => listed.includes(text))).toEqual(["Cold room", "Freezer"])
        expect(yield* Effect.promise(() => page.textContent("main h2"))).toBe("Freezer")

        // Signing out clears the tab's storage; a pasted token signs in as well.
        yield* Effect.promise(async () => {
          await page.click("#signout")
          await page.waitForSelector("#signin")
          expect(await page.evaluate(() => sessionStorage.length)).toBe(0)
        })
        yield* signInWith(page, readerToken())
        expect(yield* Effect.promise(() => page.locator("#equipments a").allTextContents())).toEqual(listed)
        expectWellBehaved(s)
      }))

    it.scoped("an equipment page charts every sensor with the API's rows over each range, and shows the API's stats", () =>
      Effect.gen(function*() {
        yield* dataset
        const s = yield* session()
        const { page } = s
        yield* signInWith(page, readerToken())
        yield* Effect.promise(() => page.click("text=Freezer"))

        const day = yield* expectChartsOfRange(s, "24h", 0)
        expect([day.period, day.end - day.start]).toEqual(["hour", DAY])
        yield* expectCards(page, "24h")
        expect(yield* Effect.promise(() => page.locator("#charts figcaption").allTextContents())).toEqual([
          "Door (door): active minutes an hour",
          "Humidity (humidity)",
          "Temperature (temperature)"
        ])
        yield* Effect.promise(() => shoot(page, "equipment"))

        // Each range refetches (a new request, of the new range), and the charts again hold what the API answers.
        const choose = (range: string) =>
          Effect.sync(() => s.requests.length).pipe(
            Effect.tap(() => Effect.promise(() => page.click(`#range button[data-range="${range}"]`)))
          )
        const week = yield* choose("7d").pipe(Effect.flatMap((since) => expectChartsOfRange(s, "7d", since)))
        expect([week.period, week.end - week.start]).toEqual(["hour", 7 * DAY])
        expect(week.points).toBeGreaterThan(day.points)
        yield* expectCards(page, "7d")

        const month = yield* choose("30d").pipe(Effect.flatMap((since) => expectChartsOfRange(s, "30d", since)))
        expect([month.period, month.end - month.start]).toEqual(["day", 30 * DAY])
        expect(month.points).toBeLessThan(week.points)
        expect(yield* Effect.promise(() => page.locator("#charts figcaption").first().textContent())).toBe(
          "Door (door): active hours a day"
        )
        yield* expectCards(page, "30d")

        // A custom range, typed in the browser's zone: the request's bounds are those instants.
        yield* choose("custom").pipe(Effect.flatMap((since) => expectChartsOfRange(s, "custom", since)))
        const [from, to] = [now - 36 * HOUR, now - 12 * HOUR]
        const since = s.requests.length
        yield* Effect.promise(async () => {
          await page.fill("input[name=from]", localInput(from))
          await page.fill("input[name=to]", localInput(to))
          await page.click("#range button[type=submit]")
          await page.waitForFunction((start) => document.getElementById("charts")?.dataset.source?.includes(start),
            `start_date=${new Date(Math.floor(from / MINUTE) * MINUTE).toISOString()}`)
        })
        const custom = yield* expectChartsOfRange(s, "custom", since)
        expect(custom).toMatchObject({
          period: "hour",
          start: Math.floor(from / MINUTE) * MINUTE,
          end: Math.floor(to / MINUTE) * MINUTE
        })
        expect(custom.points).toBeGreaterThanOrEqual(24)
        expectWellBehaved(s)
      }))

    it.scoped("the pipeline page; signing out and an expired token return to sign-in", () =>
      Effect.gen(function*() {
        yield* dataset
        const s = yield* session()
        const { page } = s
        const expiredToken = signToken(claimsOf("reader", "default", "console-reader", {
          iat: Math.floor(Date.now() / 1000) - 7200,
          exp: Math.floor(Date.now() / 1000) - 3600
        }))
        const notice = "#signin [role=alert]:text('the token has expired')"
        yield* Effect.promise(async () => {
          // Pasted already expired: refused at the first request.
          await page.goto(base)
          await page.fill("input[name=token]", expiredToken)
          await page.click("#signin button[type=submit]")
          await page.waitForSelector(notice)
          expect(await sessionToken(page)).toBeNull()
        })
        yield* signInWith(page, readerToken())
        yield* Effect.promise(async () => {
          await page.click("text=Pipeline")
          await page.waitForSelector("main .cards")
          await shoot(page, "pipeline")
          // The counters of /metrics: every reading of the dataset was accepted (this file sends no other).
          const counters = Object.fromEntries(
            await page.locator("main .card").evaluateAll((cards) =>
              cards.map((card) => [card.querySelector("h3")!.textContent, card.querySelector(".count")!.textContent])
            )
          )
          expect(counters).toMatchObject({ "payloads accepted": "2", "readings accepted": String(sent) })

          // Expiring while signed in: the next page asked for returns to sign-in and forgets the token.
          await page.evaluate((token) => sessionStorage.setItem("token", token), expiredToken)
          await page.click("nav >> text=Equipments")
          await page.waitForSelector(notice)
          expect(await sessionToken(page)).toBeNull()
          expect(await page.isHidden("#nav")).toBe(true)
        })
        yield* signInWith(page, readerToken())
        yield* Effect.promise(async () => {
          await page.click("#signout")
          await page.waitForSelector("#signin")
          expect(await page.evaluate(() => sessionStorage.length)).toBe(0)
        })
        expectWellBehaved(s)
      }))

    it.scoped("on a phone-sized screen (390×844) no page scrolls sideways", () =>
      Effect.gen(function*() {
        yield* dataset
        const s = yield* session({ width: 390, height: 844 })
        const { page } = s
        yield* Effect.promise(() => page.goto(base).then(() => page.waitForSelector("#signin")))
        expect(yield* Effect.promise(() => horizontalOverflow(page))).toBe(0)
        yield* signInWith(page, readerToken())
        expect(yield* Effect.promise(() => horizontalOverflow(page))).toBe(0)
        yield* Effect.promise(() => shoot(page, "list-phone"))
        yield* Effect.promise(async () => {
          await page.click("text=Freezer")
          await page.click(`#range button[data-range="custom"]`)
          await page.waitForSelector(`#charts[data-range="custom"] figure.chart`)
        })
        expect(yield* Effect.promise(() => horizontalOverflow(page))).toBe(0)
        yield* Effect.promise(() => shoot(page, "equipment-phone"))
        yield* Effect.promise(async () => {
          await page.click("text=Pipeline")
          await page.waitForSelector("main .cards")
        })
        expect(yield* Effect.promise(() => horizontalOverflow(page))).toBe(0)
        expectWellBehaved(s)
      }))

    it.scoped("the pages carry a strict Content-Security-Policy: an injected inline script does not run", () =>
      Effect.gen(function*() {
        const s = yield* session()
        const { page } = s
        const response = yield* Effect.promise(() => page.goto(base))
        const policy = new Map(
          response!.headers()["content-security-policy"]!.split(";").map((directive) => {
            const [name, ...sources] = directive.trim().split(/\s+/)
            return [name!, sources] as const
          })
        )
        expect(policy.get("default-src")).toEqual(["'self'"])
        expect(policy.get("script-src")).toEqual(["'self'"])
        expect(policy.get("style-src")).toEqual(["'self'"])
        expect(policy.get("object-src")).toEqual(["'none'"])
        expect(policy.get("base-uri")).toEqual(["'none'"])
        expect(policy.get("frame-ancestors")).toEqual(["'none'"])
        expect(yield* Effect.promise(() => response!.text())).not.toMatch(/<script(?![^>]*\ssrc=)/)

        const ran = yield* Effect.promise(async () => {
          await page.waitForSelector("#signin")
          return page.evaluate(() =>
            new Promise<unknown>((resolve) => {
              addEventListener("securitypolicyviolation", (event) => resolve(event.violatedDirective), { once: true })
              const script = document.createElement("script")
              script.textContent = "window.injected = true"
              document.body.append(script)
            }).then((violated) => ({ violated, injected: "injected" in window }))
          )
        })
        expect(ran).toEqual({ violated: "script-src-elem", injected: false })
        // The refusal is the one expected here; nothing else went wrong.
        expect(s.problems.filter((p) => !/inline script/.test(p))).toEqual([])
        expect(s.requests.filter((url) => !url.startsWith(`${base}/`))).toEqual([])
      }))

    // Last: it loads a reading more, which the pipeline page's counters above do not count.
    it.scoped("the page shown refreshes itself every 30 s: a reading loaded meanwhile appears without a click", () =>
      Effect.gen(function*() {
        yield* dataset
        const s = yield* session()
        const { page } = s
        // The page's timers under the test's control; its clock starts at the real time and runs on.
        yield* Effect.promise(() => page.clock.install())
        yield* signInWith(page, readerToken())
        yield* Effect.promise(async () => {
          await page.click("text=Freezer")
          await page.waitForSelector("#raw td")
        })
        const VALUE = 7.25
        expect(yield* Effect.promise(() => page.locator("#raw td").allTextContents())).not.toContain(String(VALUE))

        const reading = {
          sensor_uuid: "freezer-temp", sensor_nome: "Temperature", sensor_tipo: "temperature", sensor_unidade: "°C",
          valor: VALUE, sensor_datahora_coleta: new Date(Date.now() - 1_000).toISOString()
        }
        yield* post(deviceToken(), [item("freezer", "Freezer", [[reading]])])
        const lastHour = `start_date=${new Date(Date.now() - HOUR).toISOString()}`
        yield* eventually(
          get<{ data: ReadonlyArray<{ value: number | null }> }>(`/api/v1/analytics/equipment/freezer/history?period=raw&${lastHour}`),
          (history) => history.data.some((r) => r.value === VALUE)
        )
        // Nothing shows it until the page's own refresh, 30 s on.
        expect(yield* Effect.promise(() => page.locator("#raw td").allTextContents())).not.toContain(String(VALUE))
        const since = s.requests.length
        yield* Effect.promise(async () => {
          await page.clock.fastForward(30_000)
          await page.waitForSelector(`#raw td:text-is("${VALUE}")`)
        })
        expect(s.requests.slice(since).filter((url) => url.includes("/api/v1/analytics/equipment/freezer/history?period=raw")))
          .toHaveLength(1)
        expectWellBehaved(s)
      }))

    // After the one above, for the same reason.
    it.scoped("an equipment whose uuid its address must percent-encode opens; a sensor without rows gets an empty line chart", () =>
      Effect.gen(function*() {
        yield* dataset
        const uuid = `câmara "fria"/2 #1 100%`
        const reading = {
          sensor_uuid: "camara-temp", sensor_nome: "Temperature", sensor_tipo: "temperature", sensor_unidade: "°C",
          valor: -2, sensor_datahora_coleta: new Date(now - 2 * DAY).toISOString()
        }
        yield* post(deviceToken(), [item(uuid, "Câmara fria", [[reading]])])
        yield* eventually(equipmentsOf(readerToken()), (page) => page.data.some((e) => e.uuid === uuid))
        const s = yield* session()
        const { page } = s
        yield* signInWith(page, readerToken())
        yield* Effect.promise(async () => {
          await page.click("text=Câmara fria")
          await page.waitForSelector("#charts figure.chart")
        })
        expect(yield* Effect.promise(() => page.textContent("main h2"))).toBe("Câmara fria")
        // Its one reading is two days old: nothing in the last 24 hours, a temperature all the same.
        expect((yield* Effect.promise(() => drawn(page))).charts).toEqual([{ sensor: "camara-temp", kind: "line", points: 0, total: null }])
        expect(yield* Effect.promise(() => page.locator("#charts figcaption").allTextContents())).toEqual(["Temperature (temperature)"])
        expectWellBehaved(s)
      }))

    it.scoped("a tenant with more equipments than a page: More adds the next page below, and going back keeps it", () =>
      Effect.gen(function*() {
        const tenant = "tenant-fleet"
        const uuids = Array.from({ length: 201 }, (_, i) => `fleet-${String(i).padStart(3, "0")}`)
        yield* post(deviceToken(tenant), uuids.map((uuid) =>
          item(uuid, uuid, [numeric(`${uuid}-temp`, "Temperature", "temperature", "°C", () => 4).slice(-1)])))
        yield* eventually(equipmentsOf(readerToken(tenant)), (page) => page.total === uuids.length)
        const s = yield* session()
        const { page } = s
        yield* signInWith(page, readerToken(tenant))
        const listed = () => page.locator("#equipments a").allTextContents()
        expect(yield* Effect.promise(listed)).toEqual(uuids.slice(0, 200))
        yield* Effect.promise(async () => {
          await page.click("#more")
          await page.waitForFunction((n) => document.querySelectorAll("#equipments a").length === n, uuids.length)
        })
        expect(yield* Effect.promise(listed)).toEqual(uuids)
        expect(yield* Effect.promise(() => page.isHidden("#more"))).toBe(true)
        yield* Effect.promise(async () => {
          await page.click(`text=${uuids.at(-1)}`)
          await page.waitForSelector("#charts figure.chart")
          await page.goBack()
          await page.waitForFunction((n) => document.querySelectorAll("#equipments a").length === n, uuids.length)
        })
        expect(yield* Effect.promise(listed)).toEqual(uuids)
        expectWellBehaved(s)
      }))
  })
})
