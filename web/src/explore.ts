// The Explore page's question to POST /v1/explore, and its answer turned
// into the chart's series and Sankey. The server ranks the keys, computes
// Other, the rates and their statistics.
import { call } from './api'
import type { Measure } from './units'

export interface ExploreRequest {
  log_stream_ids?: string[] // none: all of the account's
  since: string
  until: string
  where?: string
  dimensions: string[]
  measure: Measure
  top: number
  interval?: string
  include?: ('series' | 'sankey')[]
}

export interface Stats {
  min: number
  avg: number
  p95: number
  max: number
}

export interface Row {
  key?: string[] // Other has none
  total: number
  rates?: number[]
  stats?: Stats
}

export interface SankeyNode {
  dimension: string
  value?: string
  other?: boolean
}

export interface ExploreResponse {
  log_stream_ids: string[]
  dimensions: string[]
  interval_ms?: number
  times?: number[]
  total: number
  top: Row[]
  other: Row
  sankey?: { links: { source: SankeyNode; target: SankeyNode; value: number }[] }
}

export function explore(req: ExploreRequest, signal?: AbortSignal): Promise<ExploreResponse> {
  return call<ExploreResponse>('POST', '/v1/explore', req, signal)
}

// Series is one stacked area: [time ms, rate] points.
export interface Series {
  name: string
  points: [number, number][]
}

const protocols: Record<string, string> = { '1': 'ICMP', '6': 'TCP', '17': 'UDP', '47': 'GRE', '50': 'ESP', '58': 'ICMPv6', '132': 'SCTP' }

// label shows a dimension's value the way people read it.
export function label(dim: string, value: string): string {
  if (dim === 'protocol') return protocols[value] ?? value
  return value === '' ? '(none)' : value
}

// series draws one line per top key, plus Other when it has any traffic.
export function series(r: ExploreResponse, dims: string[]): Series[] {
  const times = r.times ?? []
  const line = (name: string, row: Row): Series => ({
    name, points: times.map((t, i): [number, number] => [t, row.rates?.[i] ?? 0]),
  })
  const out = r.top.map((row) => line((row.key ?? []).map((v, i) => label(dims[i], v)).join(' · '), row))
  if (r.other.total > 0) out.push(line('Other', r.other))
  return out
}

export interface Flow {
  nodes: { name: string }[]
  links: { source: string; target: string; value: number }[]
}

// flow names the Sankey's nodes by dimension too, so that one address seen
// as source and as destination makes two nodes and the graph stays acyclic.
export function flow(r: ExploreResponse): Flow {
  const name = (n: SankeyNode) => (n.other ? `Other (${n.dimension})` : `${n.dimension} ${label(n.dimension, n.value ?? '')}`)
  const links = (r.sankey?.links ?? []).map((l) => ({ source: name(l.source), target: name(l.target), value: l.value }))
  const names = new Set(links.flatMap((l) => [l.source, l.target]))
  return { nodes: [...names].map((n) => ({ name: n })), links }
}
