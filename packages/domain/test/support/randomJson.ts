/**
 * Seeded pseudo-random JSON for the tests of what reads it: every kind of value, and strings with what could fool
 * a byte scanner (quotes, backslashes, brackets, multi-byte characters, a control character).
 */
export const randomJson = (seed: number) => {
  const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000)
  const pick = <A>(xs: ReadonlyArray<A>): A => xs[Math.floor(random() * xs.length)]!
  const value = (depth: number): unknown => {
    const r = random()
    if (depth > 4 || r < 0.4) {
      return pick<unknown>([0, -1.25e-7, 42, true, false, null, "", "a\"b\\", "]},[{", "ü€😀\n\t\u0001", "\\\\\""])
    }
    const items = Array.from({ length: Math.floor(random() * 5) }, () => value(depth + 1))
    return r < 0.7 ? items : Object.fromEntries(items.map((v, k) => [`k${k}"\\😀`, v]))
  }
  return { random, pick, value }
}
