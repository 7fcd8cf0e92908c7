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
const when = (iso) => iso === null ? "never" : new Date(iso).toLocaleString()

const signIn = () => {
  nav.hidden = true
  const form = el("form", { id: "signin" },
    el("h2", {}, "Sign in"),
    el("label", {}, "Username ", el("input", { name: "username", autocomplete: "username" })), " ",
    el("label", {}, "Password ", el("input", { name: "password", type: "password", autocomplete: "current-password" })),
    el("p", {}, "or paste a reader token"),
    el("label", {}, "Token ", el("input", { name: "token" })), " ",
    el("button", { type: "submit" }, "Sign in"),
    el("p", { class: "error", role: "alert" }))
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

const list = async () => {
  const page = await api("/api/v1/equipments?limit=200")
  const rows = page.data.map((e) => el("tr", {},
    el("td", {}, el("a", { href: `#/equipment/${e.uuid}` }, e.name ?? e.uuid)),
    el("td", {}, e.status),
    el("td", e.stale ? { class: "stale" } : {}, when(e.last_reading_at) + (e.stale ? " (stale)" : "")),
    el("td", {}, String(e.readings_24h))))
  main.replaceChildren(el("h2", {}, `Equipments (${page.total})`),
    el("table", { id: "equipments" }, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Status"), el("th", {}, "Last seen"), el("th", {}, "Readings 24 h")), ...rows))
}

const equipment = async (uuid) => {
  const e = await api(`/api/v1/equipments/${uuid}`)
  const sensors = e.sensors.map((s) => el("tr", {}, el("td", {}, s.name ?? s.uuid), el("td", {}, s.type), el("td", {}, s.unit ?? ""),
    el("td", {}, s.last_reading ? `${s.last_reading.value ?? s.last_reading.status} at ${when(s.last_reading.time)}` : "none")))
  main.replaceChildren(el("h2", {}, e.name ?? e.uuid), el("p", {}, `${e.location ?? ""} · ${e.status}`),
    el("table", { id: "sensors" }, ...sensors))
}

const pipeline = async () => {
  const health = await api("/api/v1/health/detailed")
  main.replaceChildren(el("h2", {}, "Pipeline"), el("pre", {}, JSON.stringify(health, null, 2)))
}

const route = async () => {
  if (!token()) return signIn()
  nav.hidden = false
  const hash = location.hash
  try {
    if (hash.startsWith("#/equipment/")) await equipment(hash.slice("#/equipment/".length))
    else if (hash === "#/pipeline") await pipeline()
    else await list()
  } catch (error) {
    if (error instanceof Expired) return signIn()
    main.replaceChildren(el("p", { class: "error", role: "alert" }, String(error.message)))
  }
}
addEventListener("hashchange", route)
route()
