// The Explore page's whole state, kept in the URL's query so that a
// reload or a shared link shows the same view.
import type { LocationQuery, LocationQueryRaw } from 'vue-router'
import type { Measure } from './units'

export interface View {
  stream: string
  range: string // a preset key
  end: string // ISO time; '' = now
  filter: string
  dims: string[]
  measure: Measure
  top: number
  graph: Graph
  refresh: boolean // reload on a timer while the window ends now
}

export type Graph = 'area' | 'lines' | 'sankey'
export const graphs: Record<Graph, string> = { area: 'Stacked areas', lines: 'Lines', sankey: 'Sankey' }

const minute = 60_000
export const ranges: Record<string, number> = {
  '15m': 15 * minute,
  '1h': 60 * minute,
  '6h': 360 * minute,
  '24h': 1440 * minute,
  '7d': 7 * 1440 * minute,
}

// The fields the store can group by (flow.Fields, less the counters and times).
export const dimensions = [
  'srcaddr', 'dstaddr', 'srcport', 'dstport', 'protocol', 'flow_direction', 'action', 'tcp_flags',
  'ip_version', 'vlan_id', 'tos', 'icmp_type', 'icmp_code', 'end_reason', 'gateway_id',
  'interface_id', 'flow_log_id', 'log_status', 'sampling_interval',
]

export const defaults: View = {
  stream: '', range: '1h', end: '', filter: '', dims: ['srcaddr'], measure: 'bytes', top: 10, graph: 'area', refresh: true,
}

function one(v: LocationQuery[string]): string {
  return (Array.isArray(v) ? v[0] : v) ?? ''
}

export function fromQuery(q: LocationQuery): View {
  const range = one(q.range)
  const measure = one(q.measure)
  const dims = one(q.dims).split(',').filter((d) => dimensions.includes(d))
  const top = Number.parseInt(one(q.top), 10)
  const end = one(q.end)
  const graph = one(q.graph)
  return {
    stream: one(q.stream),
    range: range in ranges ? range : defaults.range,
    end: end && !Number.isNaN(Date.parse(end)) ? end : '',
    filter: one(q.filter),
    dims: dims.length ? dims : defaults.dims,
    measure: measure === 'packets' || measure === 'flows' ? measure : 'bytes',
    top: top >= 1 && top <= 50 ? top : defaults.top,
    graph: graph in graphs ? (graph as Graph) : defaults.graph,
    refresh: one(q.refresh) !== 'off',
  }
}

export function toQuery(v: View): LocationQueryRaw {
  const q: LocationQueryRaw = {
    stream: v.stream, range: v.range, dims: v.dims.join(','), measure: v.measure, top: String(v.top),
    graph: v.graph, refresh: v.refresh ? 'on' : 'off',
  }
  if (v.end) q.end = v.end
  if (v.filter) q.filter = v.filter
  return q
}

export function timeWindow(v: View, now = Date.now()): { since: Date; until: Date } {
  const until = v.end ? Date.parse(v.end) : now
  return { since: new Date(until - ranges[v.range]), until: new Date(until) }
}

// shift moves the window by one width; a window reaching now follows now.
export function shift(v: View, dir: -1 | 1, now = Date.now()): View {
  const until = (v.end ? Date.parse(v.end) : now) + dir * ranges[v.range]
  return { ...v, end: until >= now ? '' : new Date(until).toISOString() }
}

// step picks the series interval: the shortest round step giving at most
// 120 points.
const steps: [string, number][] = [
  ['10s', 10_000], ['30s', 30_000], ['1m', minute], ['5m', 5 * minute], ['10m', 10 * minute],
  ['15m', 15 * minute], ['30m', 30 * minute], ['1h', 60 * minute], ['3h', 180 * minute],
]
export function step(rangeMs: number): [string, number] {
  return steps.find(([, ms]) => rangeMs / ms <= 120) ?? steps[steps.length - 1]
}

// graphOf is the graph drawn: a Sankey needs two dimensions to link.
export function graphOf(v: View): Graph {
  return v.graph === 'sankey' && v.dims.length < 2 ? 'area' : v.graph
}

// refreshMs is how often a window ending now reloads (0: never): every
// minute, or every bucket when buckets are longer.
export function refreshMs(v: View): number {
  return v.refresh && !v.end ? Math.max(minute, step(ranges[v.range])[1]) : 0
}
