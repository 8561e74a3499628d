// The Explore page's whole state, kept in the URL's query so that a
// reload or a shared link shows the same view.
import type { LocationQuery, LocationQueryRaw } from 'vue-router'
import type { Measure } from './units'

export interface View {
  stream: string // a log stream's id, or 'all'
  range: string // the window's width, as parseRange reads it: a preset or "90m", "2d"
  from: string // ISO time; with end, an absolute window [from, end)
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

export const allStreams = 'all'

const minute = 60_000
const units: Record<string, number> = { s: 1000, m: minute, min: minute, h: 60 * minute, d: 1440 * minute, w: 7 * 1440 * minute }
const maxRange = 400 * 1440 * minute

export const presets = ['15m', '1h', '6h', '24h', '7d']

// parseRange reads a window's width as people type it: "6h", "last 6h",
// "90m", "2d", "1.5h". It returns the width and its short form, or null.
export function parseRange(text: string): { ms: number; text: string } | null {
  const m = /^\s*(?:last\s+)?(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$/i.exec(text)
  if (!m) return null
  const unit = m[2].toLowerCase()
  const ms = Number(m[1]) * units[unit]
  if (!(ms >= 1000 && ms <= maxRange)) return null
  return { ms, text: Number(m[1]) + (unit === 'min' ? 'm' : unit) }
}

// The fields the store can group by (flow.Fields, less the counters and times).
export const dimensions = [
  'srcaddr', 'dstaddr', 'srcport', 'dstport', 'protocol', 'flow_direction', 'action', 'tcp_flags',
  'ip_version', 'vlan_id', 'tos', 'icmp_type', 'icmp_code', 'end_reason', 'gateway_id',
  'interface_id', 'flow_log_id', 'log_status', 'sampling_interval',
  'src_country', 'dst_country', 'src_as', 'dst_as', 'src_as_name', 'dst_as_name',
  'in_if_index', 'out_if_index', 'in_if_name', 'out_if_name', 'in_if_speed', 'out_if_speed',
]

export const defaults: View = {
  stream: allStreams, range: '1h', from: '', end: '', filter: '', dims: ['srcaddr'], measure: 'bytes', top: 10, graph: 'area', refresh: true,
}

function one(v: LocationQuery[string]): string {
  return (Array.isArray(v) ? v[0] : v) ?? ''
}

function time(v: string): string {
  return v && !Number.isNaN(Date.parse(v)) ? v : ''
}

export function fromQuery(q: LocationQuery): View {
  const measure = one(q.measure)
  const dims = one(q.dims).split(',').filter((d) => dimensions.includes(d))
  const top = Number.parseInt(one(q.top), 10)
  const end = time(one(q.end))
  const from = time(one(q.from))
  const graph = one(q.graph)
  return {
    stream: one(q.stream) || allStreams,
    range: parseRange(one(q.range))?.text ?? defaults.range,
    from: from && end && Date.parse(from) < Date.parse(end) ? from : '',
    end,
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
    stream: v.stream, dims: v.dims.join(','), measure: v.measure, top: String(v.top),
    graph: v.graph, refresh: v.refresh ? 'on' : 'off',
  }
  if (v.from) q.from = v.from
  else q.range = v.range
  if (v.end) q.end = v.end
  if (v.filter) q.filter = v.filter
  return q
}

export function timeWindow(v: View, now = Date.now()): { since: Date; until: Date } {
  const until = v.end ? Date.parse(v.end) : now
  const since = v.from ? Date.parse(v.from) : until - (parseRange(v.range)?.ms ?? 0)
  return { since: new Date(since), until: new Date(until) }
}

// relative is a window of width text ending at end (default: where the
// view ends; '': now).
export function relative(v: View, text: string, end = v.end): View {
  return { ...v, range: text, from: '', end }
}

// absolute is the window [since, until).
export function absolute(v: View, since: Date, until: Date): View {
  return { ...v, from: since.toISOString(), end: until.toISOString() }
}

// shift moves the window by its width; a relative window reaching now
// follows now.
export function shift(v: View, dir: -1 | 1, now = Date.now()): View {
  const w = timeWindow(v, now)
  const width = w.until.getTime() - w.since.getTime()
  const until = w.until.getTime() + dir * width
  if (v.from) return absolute(v, new Date(w.since.getTime() + dir * width), new Date(until))
  return { ...v, end: until >= now ? '' : new Date(until).toISOString() }
}

// graphOf is the graph drawn: a Sankey needs two dimensions to link.
export function graphOf(v: View): Graph {
  return v.graph === 'sankey' && v.dims.length < 2 ? 'area' : v.graph
}

// refreshMs is how often a window ending now reloads (0: never): every
// minute, or every bucket of the answer shown when buckets are longer.
export function refreshMs(v: View, bucketMs: number): number {
  return v.refresh && !v.end ? Math.max(minute, bucketMs) : 0
}
