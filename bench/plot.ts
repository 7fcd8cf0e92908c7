/** The soak's plot: latency, memory and lag over time, drawn as SVG and rendered to PNG by headless Chromium. */
import { CHROMIUM, ensureChromium } from "@telemetry/testbed/Chromium"
import { Effect } from "effect"
import { chromium } from "playwright-core"
import type { SoakResult } from "./soakReport.js"

interface Series {
  readonly name: string
  readonly color: string
  readonly points: ReadonlyArray<readonly [number, number]>
}

const WIDTH = 900
const PANEL = 220
const MARGIN = { left: 70, right: 170, top: 30, bottom: 40 }
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]

const escape = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;")

/**
 * One panel: the series as lines over minutes, a y axis from 0 with 4 ticks, the legend on the right, and a dashed
 * line where the warm-up ended.
 */
const panel = (title: string, unit: string, series: ReadonlyArray<Series>, top: number, minutes: number, warmup: number) => {
  const ys = series.flatMap((s) => s.points.map(([, y]) => y)).filter(Number.isFinite)
  const max = Math.max(1, ...ys) * 1.1
  const w = WIDTH - MARGIN.left - MARGIN.right
  const h = PANEL - MARGIN.top - MARGIN.bottom
  const x = (m: number) => MARGIN.left + (m / Math.max(1, minutes)) * w
  const y = (v: number) => top + MARGIN.top + h - (v / max) * h
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * max)
  return [
    `<text x="${MARGIN.left}" y="${top + 18}" font-weight="bold">${escape(title)}</text>`,
    ...ticks.map((t) =>
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + w}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/>` +
      `<text x="${MARGIN.left - 6}" y="${y(t) + 4}" text-anchor="end">${t.toFixed(t < 10 ? 1 : 0)}</text>`
    ),
    `<text x="14" y="${top + MARGIN.top + h / 2}" transform="rotate(-90 14 ${top + MARGIN.top + h / 2})" text-anchor="middle">${escape(unit)}</text>`,
    ...[0, 0.25, 0.5, 0.75, 1].map((f) => Math.round(f * minutes)).map((m) =>
      `<text x="${x(m)}" y="${top + MARGIN.top + h + 14}" text-anchor="middle">${m}</text>`
    ),
    `<text x="${MARGIN.left + w / 2}" y="${top + PANEL - 6}" text-anchor="middle">minute</text>`,
    `<line x1="${x(warmup)}" x2="${x(warmup)}" y1="${top + MARGIN.top}" y2="${top + MARGIN.top + h}" stroke="#888" stroke-dasharray="4 3"/>` +
      `<text x="${x(warmup) + 4}" y="${top + MARGIN.top + 10}" fill="#666">end of warm-up</text>`,
    ...series.map((s, i) => {
      const path = s.points.filter(([, v]) => Number.isFinite(v)).map(([m, v], k) => `${k === 0 ? "M" : "L"}${x(m).toFixed(1)},${y(v).toFixed(1)}`).join(" ")
      const ly = top + MARGIN.top + 14 + i * 18
      return `<path d="${path}" fill="none" stroke="${s.color}" stroke-width="2"/>` +
        `<line x1="${WIDTH - MARGIN.right + 12}" x2="${WIDTH - MARGIN.right + 32}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="3"/>` +
        `<text x="${WIDTH - MARGIN.right + 38}" y="${ly}">${escape(s.name)}</text>`
    })
  ].join("\n")
}

export const soakSvg = (r: SoakResult) => {
  const minutes = r.timeline.length
  const of = (f: (m: SoakResult["timeline"][number]) => number) => r.timeline.map((m) => [m.minute, f(m)] as const)
  const names = Object.keys(r.timeline[0]?.rss ?? {})
  const height = 3 * PANEL + 40
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">Soak: ${r.devices} Home Assistant devices, ${r.minutes} min after a ${r.warmupMinutes}-min warm-up, ingest + 2 workers (${escape(r.date.slice(0, 10))})</text>
<g transform="translate(0,30)">
${panel("Ingest latency per minute", "ms", [
    { name: "p50", color: COLORS[0]!, points: of((m) => m.p50) },
    { name: "p99", color: COLORS[1]!, points: of((m) => m.p99) }
  ], 0, minutes, r.warmupMinutes)}
${panel("Resident memory", "MiB", names.map((name, i) => ({ name, color: COLORS[i % COLORS.length]!, points: of((m) => m.rss[name]!) })), PANEL, minutes, r.warmupMinutes)}
${panel("Consumer lag", "claims", [{ name: "lag", color: COLORS[2]!, points: of((m) => m.lag) }], 2 * PANEL, minutes, r.warmupMinutes)}
</g>
</svg>`
}

/** Writes the plot of `result` as a PNG at `path`. */
export const renderSoakPlot = (result: SoakResult, path: string) =>
  Effect.acquireUseRelease(
    Effect.promise(() => {
      ensureChromium()
      return chromium.launch({
        executablePath: CHROMIUM,
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
      })
    }),
    (browser) =>
      Effect.promise(async () => {
        const page = await browser.newPage({ viewport: { width: WIDTH, height: 3 * PANEL + 40 } })
        await page.setContent(`<html><body style="margin:0">${soakSvg(result)}</body></html>`)
        await page.screenshot({ path, fullPage: true })
      }),
    (browser) => Effect.promise(() => browser.close())
  )
