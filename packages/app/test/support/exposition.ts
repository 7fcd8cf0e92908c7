import parse from "parse-prometheus-text-format"

/**
 * Every sample of the family `name` in a scrape. The family is parsed alone: the parser fails on an unlabelled
 * histogram whose _count comes before its buckets, as OpenTelemetry writes them.
 */
export const samplesOf = (text: string, name: string) => {
  const block = text.split(/\n(?=# HELP )/).find((b) => b.startsWith(`# HELP ${name} `)) ?? ""
  return parse(`${block}\n`).find((f) => f.name === name)?.metrics ?? []
}

/** The value of `name`'s sample whose labels include `labels`; undefined when there is none. */
export const valueOf = (text: string, name: string, labels: Record<string, string> = {}) => {
  const sample = samplesOf(text, name).find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
  return sample === undefined ? undefined : Number(sample.value)
}

/** `valueOf`, 0 when there is no such sample: a counter not yet incremented is not exposed. */
export const countOf = (text: string, name: string, labels: Record<string, string> = {}) => valueOf(text, name, labels) ?? 0
