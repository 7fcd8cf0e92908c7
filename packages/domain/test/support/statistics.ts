/** Statistics computed in TypeScript, independently of the SQL, to check what the database answers. */

export const mean = (values: ReadonlyArray<number>): number | null =>
  values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length

/** Exact `percentile_cont` (linear interpolation between the closest ranks), as PostgreSQL computes it. */
export const percentileCont = (values: ReadonlyArray<number>, p: number): number | null => {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const position = p * (sorted.length - 1)
  const lower = Math.floor(position)
  const upper = Math.ceil(position)
  return sorted[lower]! + (sorted[upper]! - sorted[lower]!) * (position - lower)
}

/** Sample standard deviation, as PostgreSQL's `stddev`: none for fewer than two values. */
export const sampleStddev = (values: ReadonlyArray<number>): number | null => {
  if (values.length < 2) return null
  const m = mean(values)!
  return Math.sqrt(values.reduce((a, v) => a + (v - m) ** 2, 0) / (values.length - 1))
}
