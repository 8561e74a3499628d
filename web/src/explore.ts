// Turns query answers into the Explore page's table and chart.
import type { QueryResponse } from './api'

// Series is one stacked area: [time ms, rate] points.
export interface Series {
  name: string
  points: [number, number][]
}

export interface TopRow {
  key: string
  values: string[]
  total: number
}

const protocols: Record<string, string> = { '1': 'ICMP', '6': 'TCP', '17': 'UDP', '47': 'GRE', '50': 'ESP', '58': 'ICMPv6', '132': 'SCTP' }

// label shows a dimension's value the way people read it.
export function label(dim: string, value: string): string {
  if (dim === 'protocol') return protocols[value] ?? value
  return value === '' ? '(none)' : value
}

function columns(r: QueryResponse, dims: string[], agg: string): { dims: number[]; value: number; time: number } {
  const names = (r.columns ?? []).map((c) => c.name)
  return { dims: dims.map((d) => names.indexOf(d)), value: names.indexOf(agg), time: names.indexOf('time') }
}

export function topRows(r: QueryResponse, dims: string[], agg: string): TopRow[] {
  const c = columns(r, dims, agg)
  return (r.rows ?? []).map((row) => {
    const values = c.dims.map((i) => String(row[i]))
    return { key: values.join(' · '), values, total: Number(row[c.value]) }
  })
}

export function sum(r: QueryResponse, agg: string): number {
  const c = columns(r, [], agg)
  return (r.rows ?? []).reduce((acc, row) => acc + Number(row[c.value]), 0)
}

// stack builds one series per top key, plus "Other" for the rest, over
// every step of the window (zero where nothing was seen), as rates.
export function stack(
  r: QueryResponse, dims: string[], agg: string, top: TopRow[],
  since: number, until: number, stepMs: number, perSecond: number,
): Series[] {
  const c = columns(r, dims, agg)
  const first = Math.floor(since / stepMs) * stepMs
  const n = Math.max(1, Math.ceil((until - first) / stepMs))
  const keys = new Map(top.map((t, i) => [t.key, i]))
  const values = Array.from({ length: top.length + 1 }, () => new Array<number>(n).fill(0))
  for (const row of r.rows ?? []) {
    const b = Math.floor((Number(row[c.time]) - first) / stepMs)
    if (b < 0 || b >= n) continue
    const key = c.dims.map((i) => String(row[i])).join(' · ')
    values[keys.get(key) ?? top.length][b] += Number(row[c.value])
  }
  const scale = (perSecond * 1000) / stepMs
  const names = [...top.map((t) => t.values.map((v, i) => label(dims[i], v)).join(' · ')), 'Other']
  return values
    .map((vs, i) => ({ name: names[i], points: vs.map((v, b): [number, number] => [first + b * stepMs, v * scale]) }))
    .filter((s, i) => i < top.length || s.points.some(([, v]) => v > 0))
}

// Stats sums up one series' rates over the window's buckets.
export interface Stats {
  min: number
  max: number
  avg: number
  p95: number
}

export function stats(s: Series | undefined): Stats {
  const vs = (s?.points ?? []).map(([, v]) => v).sort((a, b) => a - b)
  if (!vs.length) return { min: 0, max: 0, avg: 0, p95: 0 }
  return {
    min: vs[0],
    max: vs[vs.length - 1],
    avg: vs.reduce((a, v) => a + v, 0) / vs.length,
    p95: vs[Math.ceil(0.95 * vs.length) - 1], // nearest rank
  }
}

export interface Flow {
  nodes: { name: string }[]
  links: { source: string; target: string; value: number }[]
}

// sankey links each top row's values, dimension to next dimension. A node
// is named by its dimension too, so that one address seen as source and
// as destination makes two nodes and the graph stays acyclic.
export function sankey(top: TopRow[], dims: string[]): Flow {
  const node = (i: number, v: string) => `${dims[i]} ${label(dims[i], v)}`
  const links = new Map<string, Flow['links'][number]>()
  for (const r of top) {
    for (let i = 0; i + 1 < r.values.length; i++) {
      const source = node(i, r.values[i])
      const target = node(i + 1, r.values[i + 1])
      const k = source + '\n' + target
      const l = links.get(k) ?? { source, target, value: 0 }
      l.value += r.total
      links.set(k, l)
    }
  }
  const names = new Set([...links.values()].flatMap((l) => [l.source, l.target]))
  return { nodes: [...names].map((name) => ({ name })), links: [...links.values()] }
}
