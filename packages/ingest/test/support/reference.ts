/**
 * The statistics computed here, in TypeScript, from the generated readings: what the analytics endpoints must
 * answer. Independent of the SQL: exact `percentile_cont` (linear interpolation), sample standard deviation.
 */
import { mean, percentileCont, sampleStddev } from "@telemetry/domain/testing"
import type { Point } from "./dataset.js"

export const MINUTE = 60_000
export const HOUR = 60 * MINUTE
export const DAY = 24 * HOUR

/** Buckets start at multiples of their width since the epoch: UTC hours and days, as time_bucket makes them. */
export const bucketOf = (time: number, width: number) => Math.floor(time / width) * width

const distinct = (numbers: Iterable<number>) => new Set(numbers).size

/** The statistics of a group of readings, as the hour and day rows carry them. */
export const statsOf = (points: ReadonlyArray<Point>) => {
  const values = points.flatMap((p) => (p.value === null ? [] : [p.value])).sort((a, b) => a - b)
  return {
    avg_value: mean(values),
    max_value: values.length === 0 ? null : values[values.length - 1]!,
    min_value: values.length === 0 ? null : values[0]!,
    sample_count: points.length,
    stddev_value: sampleStddev(values),
    median_value: percentileCont(values, 0.5),
    p95_value: percentileCont(values, 0.95),
    p99_value: percentileCont(values, 0.99)
  }
}

export const groupBy = <A>(items: ReadonlyArray<A>, key: (a: A) => string): Map<string, Array<A>> => {
  const groups = new Map<string, Array<A>>()
  for (const item of items) {
    const k = key(item)
    const group = groups.get(k)
    if (group) group.push(item)
    else groups.set(k, [item])
  }
  return groups
}

const byTimeThenSensor = (a: { time: number; sensor: string }, b: { time: number; sensor: string }) =>
  a.time - b.time || (a.sensor < b.sensor ? -1 : a.sensor > b.sensor ? 1 : 0)

/** One row per (bucket, sensor) with readings in [start, end) by bucket start, in time then sensor order. */
export const bucketRows = (points: ReadonlyArray<Point>, width: number, start: number, end: number) => {
  const inRange = points.filter((p) => {
    const bucket = bucketOf(p.time, width)
    return bucket >= start && bucket < end
  })
  const activity = width === HOUR ? MINUTE : HOUR
  return Array.from(groupBy(inRange, (p) => `${bucketOf(p.time, width)}|${p.sensor}`).values())
    .map((group) => ({
      time: bucketOf(group[0]!.time, width),
      sensor: group[0]!.sensor,
      active: distinct(group.map((p) => bucketOf(p.time, activity))),
      ...statsOf(group)
    }))
    .sort(byTimeThenSensor)
}

/** Per sensor over the buckets in [start, end): the stats endpoint's numbers. */
export const sensorTotals = (points: ReadonlyArray<Point>, width: number, start: number, end: number) =>
  Array.from(groupBy(points.filter((p) => {
    const bucket = bucketOf(p.time, width)
    return bucket >= start && bucket < end
  }), (p) => p.sensor).entries())
    .map(([sensor, group]) => {
      const stats = statsOf(group)
      return {
        sensor_uuid: sensor,
        overall_avg: stats.avg_value,
        overall_max: stats.max_value,
        overall_min: stats.min_value,
        total_samples: group.length,
        active_periods: distinct(group.map((p) => bucketOf(p.time, width)))
      }
    })
    .sort((a, b) => (a.sensor_uuid < b.sensor_uuid ? -1 : 1))

/** Raw readings in [start, end), in time then sensor order. */
export const rawRows = (points: ReadonlyArray<Point>, start: number, end: number) =>
  points.filter((p) => p.time >= start && p.time < end).sort(byTimeThenSensor)
