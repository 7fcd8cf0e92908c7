import uPlot from "/console/uplot.js"

// The console: a reader's token in this tab's session storage, sent as a bearer header, never in a URL.
const main = document.getElementById("main")
const nav = document.getElementById("nav")
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone
document.getElementById("zone").textContent = `Times in ${zone}`

const token = () => sessionStorage.getItem("token")
const signOut = () => { sessionStorage.removeItem("token"); location.hash = "#/"; route() }
document.getElementById("signout").addEventListener("click", signOut)

class Expired extends Error {}
const api = async (path) => {
  const response = await fetch(path, { headers: { authorization: `Bearer ${token()}` } })
  if (response.status === 401) { sessionStorage.removeItem("token"); throw new Expired() }
  if (!response.ok) throw new Error(`${path}: ${response.status}`)
  return response.json()
}

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v)
  node.append(...children)
  return node
}
/** A time in the browser's zone (named in the footer), machine-readable in `datetime`. */
const when = (iso) => iso === null ? "never" : el("time", { datetime: iso }, new Date(iso).toLocaleString())

/** The sign-in form; `notice` says why it is shown again (an expired session). */
const signIn = (notice = "") => {
  nav.hidden = true
  // POST, not the default GET: should the script not run, the form must not put a token into the URL.
  const form = el("form", { id: "signin", method: "post" },
    el("h2", {}, "Sign in"),
    el("label", {}, "Username ", el("input", { name: "username", autocomplete: "username" })), " ",
    el("label", {}, "Password ", el("input", { name: "password", type: "password", autocomplete: "current-password" })),
    el("p", {}, "or paste a reader token"),
    el("label", {}, "Token ", el("input", { name: "token" })), " ",
    el("button", { type: "submit" }, "Sign in"),
    el("p", { class: "error", role: "alert" }, notice))
  form.addEventListener("submit", async (event) => {
    event.preventDefault()
    const data = new FormData(form)
    if (data.get("token")) sessionStorage.setItem("token", data.get("token"))
    else {
      const response = await fetch("/api/v1/auth/login", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: data.get("username"), password: data.get("password") })
      })
      if (!response.ok) { form.querySelector(".error").textContent = "Sign-in refused"; return }
      sessionStorage.setItem("token", (await response.json()).access_token)
    }
    route()
  })
  main.replaceChildren(form)
}

const svg = (tag, attrs = {}) => {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag)
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v)
  return node
}

/** The last day's hourly means as a small line (gaps where an hour has none). */
const sparkline = (line) => {
  const picture = svg("svg", { class: "sparkline", viewBox: "0 0 100 20", preserveAspectRatio: "none", role: "img" })
  const values = line?.hourly_avg.filter((v) => v !== null) ?? []
  if (values.length === 0) return picture
  const [low, high] = [Math.min(...values), Math.max(...values)]
  const y = (v) => 19 - ((v - low) / (high - low || 1)) * 18
  const step = 100 / Math.max(1, line.hourly_avg.length - 1)
  const d = line.hourly_avg.map((v, i) => v === null ? "" : `${line.hourly_avg[i - 1] == null ? "M" : "L"}${(i * step).toFixed(1)},${y(v).toFixed(1)}`).join("")
  picture.append(svg("path", { d, fill: "none", stroke: "#06c", "stroke-width": "1.5", "vector-effect": "non-scaling-stroke" }))
  return picture
}

/** The list's filters, and how many of its pages are shown (kept when the list is shown again). */
const filters = { name: "", status: "", pages: 1 }
const equipmentsPage = (cursor) => {
  const query = new URLSearchParams({ limit: "200" })
  if (filters.name) query.set("name", filters.name)
  if (filters.status) query.set("status", filters.status)
  if (cursor) query.set("cursor", cursor)
  return api(`/api/v1/equipments?${query}`)
}
const equipmentRow = (e) => el("tr", {},
  el("td", {}, el("a", { href: `#/equipment/${encodeURIComponent(e.uuid)}` }, e.name ?? e.uuid)),
  el("td", {}, e.status),
  el("td", e.stale ? { class: "stale" } : {}, when(e.last_reading_at), e.stale ? " (stale)" : ""),
  el("td", {}, String(e.readings_24h)),
  el("td", {}, sparkline(e.sparkline)))
const list = async () => {
  const pages = [await equipmentsPage(null)]
  while (pages.length < filters.pages && pages.at(-1).next_cursor) pages.push(await equipmentsPage(pages.at(-1).next_cursor))
  const page = pages[0]
  const search = el("input", { type: "search", name: "name", placeholder: "name or uuid", "aria-label": "Search" })
  search.value = filters.name
  const status = el("select", { name: "status", "aria-label": "Status" }, el("option", { value: "" }, "any status"),
    ...page.statuses.map((s) => el("option", { value: s.status }, `${s.status} (${s.equipments})`)))
  status.value = filters.status
  const form = el("form", { id: "filter", role: "search" }, search, " ", status, " ", el("button", { type: "submit" }, "Filter"))
  form.addEventListener("submit", (event) => {
    event.preventDefault()
    Object.assign(filters, { name: search.value, status: status.value, pages: 1 })
    route()
  })
  status.addEventListener("change", () => form.requestSubmit())
  const table = el("table", { id: "equipments" }, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Status"),
    el("th", {}, "Last seen"), el("th", {}, "Readings 24 h"), el("th", {}, "Last 24 h")),
    ...pages.flatMap((p) => p.data).map(equipmentRow))
  // The next page is added below the rows shown, which keep their place and focus.
  let next = pages.at(-1).next_cursor
  const more = el("button", { type: "button", id: "more" }, "More")
  more.hidden = next === null
  more.addEventListener("click", () => filling(async () => {
    const page = await equipmentsPage(next)
    filters.pages += 1
    next = page.next_cursor
    table.append(...page.data.map(equipmentRow))
    more.hidden = next === null
  }))
  main.replaceChildren(el("h2", {}, `Equipments (${page.total})`), form, table, more)
}

const HOUR = 3_600_000
/** The chart ranges: how far back, the history's bucket, the stats period shown beside. */
const ranges = {
  "24h": { label: "24 h", back: 24 * HOUR, period: "hour", stats: "24h" },
  "7d": { label: "7 d", back: 7 * 24 * HOUR, period: "hour", stats: "7d" },
  "30d": { label: "30 d", back: 30 * 24 * HOUR, period: "day", stats: "30d" },
  "custom": { label: "custom" }
}
const statsNames = { "24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days" }
const view = { range: "24h", from: "", to: "" }

const localInput = (ms) => new Date(ms - new Date(ms).getTimezoneOffset() * 60_000).toISOString().slice(0, 16)

/** A sensor's buckets as uPlot draws them: the mean as a line, min to max as a band, p95 dashed. */
const lines = (rows, sensor) => ({
  series: [{},
    { label: "min", stroke: "#9bc", points: { show: false } },
    { label: "max", stroke: "#9bc", points: { show: false } },
    { label: "avg", stroke: "#06c", width: 2 },
    { label: "p95", stroke: "#c60", dash: [6, 4] }],
  bands: [{ series: [2, 1], fill: "rgba(0,102,204,0.12)" }],
  axes: [{}, { label: sensor.unit ?? "" }],
  data: [rows.map((r) => r.min_value), rows.map((r) => r.max_value), rows.map((r) => r.avg_value), rows.map((r) => r.p95_value)]
})

/** A sensor without values (a door, a status) as bars of its active time: minutes of each hour, hours of each day. */
const bars = (rows, period) => ({
  series: [{}, { label: "active", stroke: "#06c", fill: "rgba(0,102,204,0.45)", paths: uPlot.paths.bars({ size: [0.8, 40] }), points: { show: false } }],
  scales: { y: { range: (_, __, max) => [0, Math.max(1, max)] } },
  axes: [{}, { label: activeName(period) }],
  data: [rows.map((r) => period === "day" ? r.active_hours : r.active_minutes)]
})
const activeName = (period) => period === "day" ? "active hours a day" : "active minutes an hour"

/** One chart of a sensor's rows; its figure says what it was given (points, and the bars' total). */
const chart = (rows, sensor, period, width) => {
  // A sensor with no rows in the range is not known to have no values: a line, empty.
  const kind = rows.length > 0 && rows.every((r) => r.avg_value === null) ? "bars" : "line"
  const { data, scales, ...options } = kind === "bars" ? bars(rows, period) : lines(rows, sensor)
  const box = el("figure", { class: "chart", "data-sensor": sensor.uuid, "data-kind": kind },
    el("figcaption", {}, `${sensor.name ?? sensor.uuid} (${sensor.type})${kind === "bars" ? `: ${activeName(period)}` : ""}`))
  const plot = new uPlot({ width, height: 220, scales: { x: { time: true }, ...scales }, ...options },
    [rows.map((r) => Date.parse(r.time) / 1000), ...data], box)
  // Read back from uPlot, for whoever checks the page against the API (the browser test).
  box.dataset.points = String(plot.data[0].length)
  if (kind === "bars") box.dataset.total = String(plot.data[1].reduce((sum, v) => sum + (v ?? 0), 0))
  return box
}

const number = (v) => v === null ? "–" : Number(v.toFixed(2)).toString()

const card = (s, active) => {
  const fact = (name, value) => [el("dt", {}, name), el("dd", { "data-fact": name }, value)]
  return el("section", { class: "card", "data-sensor": s.sensor_uuid },
    el("h4", {}, `${s.sensor_name ?? s.sensor_uuid}${s.sensor_unit ? ` (${s.sensor_unit})` : ""}`),
    el("dl", {}, ...fact("avg", number(s.overall_avg)), ...fact("min", number(s.overall_min)),
      ...fact("max", number(s.overall_max)), ...fact("readings", String(s.total_samples)),
      ...fact(active, String(s.active_periods))))
}

const equipment = async (uuid) => {
  const id = encodeURIComponent(uuid)
  const custom = view.range === "custom"
  const range = ranges[view.range]?.back ? ranges[view.range] : ranges["24h"]
  const now = Date.now()
  const [start, end] = custom ? [Date.parse(view.from), Date.parse(view.to)] : [now - range.back, now]
  const period = custom ? (end - start > 8 * 24 * HOUR ? "day" : "hour") : range.period
  const statsPeriod = custom ? "30d" : range.stats
  const history = `/api/v1/analytics/equipment/${id}/history?period=${period}&start_date=${new Date(start).toISOString()}&end_date=${new Date(end).toISOString()}`
  const statsPath = `/api/v1/analytics/equipment/${id}/stats?period=${statsPeriod}`
  const [e, buckets, stats, raw] = await Promise.all([
    api(`/api/v1/equipments/${id}`),
    api(history),
    api(statsPath),
    api(`/api/v1/analytics/equipment/${id}/history?period=raw&limit=100&start_date=${new Date(now - HOUR).toISOString()}`)
  ])

  const picker = el("form", { id: "range", "aria-label": "Range" }, ...Object.entries(ranges).map(([key, { label }]) => {
    const button = el("button", { type: "button", "data-range": key, "aria-pressed": String(view.range === key) }, label)
    button.addEventListener("click", () => {
      // A custom range starts as the last two days, then is edited.
      if (key === "custom" && !view.from) Object.assign(view, { from: localInput(now - 2 * 24 * HOUR), to: localInput(now) })
      view.range = key
      route()
    })
    return button
  }))
  if (custom) {
    const from = el("input", { type: "datetime-local", name: "from", "aria-label": "From" })
    const to = el("input", { type: "datetime-local", name: "to", "aria-label": "To" })
    from.value = view.from
    to.value = view.to
    picker.append(" ", from, " ", to, " ", el("button", { type: "submit" }, "Show"))
    picker.addEventListener("submit", (event) => { event.preventDefault(); Object.assign(view, { from: from.value, to: to.value }); route() })
  }

  const active = stats.period === "24h" ? "active hours" : "active days"
  const cards = el("div", { id: "stats", class: "cards", "data-source": statsPath }, ...stats.sensors.map((s) => card(s, active)))
  const charts = el("div", { id: "charts", "data-source": history, "data-range": view.range })
  const rawRows = raw.data.map((r) => el("tr", {}, el("td", {}, when(r.time)), el("td", {}, r.sensor_name ?? r.sensor_uuid),
    el("td", {}, r.value === null ? "" : number(r.value)), el("td", {}, r.status ?? "")))
  main.replaceChildren(el("h2", {}, e.name ?? e.uuid),
    el("p", {}, ...[e.location, e.status].filter(Boolean).map((text) => `${text} · `), "last reading ", when(e.last_reading_at)),
    picker, el("h3", {}, `Statistics, ${statsNames[statsPeriod]}`), cards, el("h3", {}, "History"), charts,
    el("h3", {}, "Readings of the last hour"),
    el("table", { id: "raw" }, el("tr", {}, el("th", {}, "Time"), el("th", {}, "Sensor"), el("th", {}, "Value"), el("th", {}, "Status")), ...rawRows))
  // Charts are sized to the page, so drawn once it is in place; one per sensor, empty when it has no rows.
  charts.append(...e.sensors.map((s) => chart(buckets.data.filter((r) => r.sensor_uuid === s.uuid), s, period, Math.min(900, charts.clientWidth))))
}

/** The counters of the Prometheus exposition, summed over their labels. */
const counters = (text) => {
  const sums = new Map()
  for (const line of text.split("\n")) {
    const match = /^([a-z_]+)(?:\{[^}]*\})? ([0-9.eE+-]+|NaN)/.exec(line)
    if (match) sums.set(match[1], (sums.get(match[1]) ?? 0) + Number(match[2]))
  }
  return sums
}
const shown = [
  ["telemetry_ingest_payloads_accepted_total", "payloads accepted"],
  ["telemetry_ingest_readings_accepted_total", "readings accepted"],
  ["telemetry_ingest_payloads_refused_total", "payloads refused"],
  ["telemetry_claims_published_total", "claims published"],
  ["telemetry_claims_publish_failures_total", "publish failures"],
  ["telemetry_worker_readings_loaded_total", "readings loaded"],
  ["telemetry_worker_readings_duplicate_total", "duplicate readings"],
  ["telemetry_worker_dead_letters_total", "dead letters"],
  ["telemetry_queue_lag", "queue lag"],
  ["telemetry_ingest_uploads_in_flight", "uploads in flight"]
]

const pipeline = async () => {
  const [health, metrics] = await Promise.all([
    api("/api/v1/health/detailed"),
    fetch("/metrics", { headers: { authorization: `Bearer ${token()}` } })
  ])
  const values = metrics.ok ? counters(await metrics.text()) : null
  const panel = values === null
    ? el("p", { class: "error", role: "status" }, "metrics unavailable")
    : el("div", { class: "cards" }, ...shown.map(([name, label]) => el("section", { class: "card" },
      el("h3", {}, label), el("p", { class: "count" }, values.has(name) ? String(values.get(name)) : "–"))))
  main.replaceChildren(el("h2", {}, "Pipeline"), panel, el("h3", {}, "Health"), el("pre", {}, JSON.stringify(health, null, 2)))
}

/** The page shown is refreshed every 30 s while it stays shown. */
let refresh
const route = async () => {
  clearInterval(refresh)
  if (!token()) return signIn()
  refresh = setInterval(() => { if (!document.querySelector("#main :focus")) route() }, 30_000)
  nav.hidden = false
  const hash = location.hash
  // The hash holds the uuid percent-encoded, as the list's links write it.
  if (hash.startsWith("#/equipment/")) await filling(() => equipment(decodeURIComponent(hash.slice("#/equipment/".length))))
  else if (hash === "#/pipeline") await filling(pipeline)
  else await filling(list)
}
/** Runs what fills the page; an expired token brings back sign-in, any other failure is shown instead. */
const filling = async (fill) => {
  try {
    await fill()
  } catch (error) {
    if (error instanceof Expired) return signIn("Signed out: the token has expired or is not valid.")
    main.replaceChildren(el("p", { class: "error", role: "alert" }, String(error.message)))
  }
}
addEventListener("hashchange", route)
route()
