// The Records page: the raw records behind an Explore view. Its paging
// lives in the URL next to the view's own state (view.ts).
import type { LocationQuery, LocationQueryRaw } from 'vue-router'
import type { FlowRecord } from './api'
import { label } from './explore'
import { si } from './units'

export const pageSizes = [25, 50, 100, 500]
const defaultSize = 50

export interface Paging {
  offset: number
  size: number
}

function int(v: LocationQuery[string]): number {
  return Number.parseInt((Array.isArray(v) ? v[0] : v) ?? '', 10)
}

export function pagingOf(q: LocationQuery): Paging {
  const offset = int(q.offset)
  const size = int(q.size)
  return { offset: offset > 0 ? offset : 0, size: pageSizes.includes(size) ? size : defaultSize }
}

// pagingQuery leaves defaults out, so a link from Explore needs none.
export function pagingQuery(p: Paging): LocationQueryRaw {
  const q: LocationQueryRaw = {}
  if (p.offset) q.offset = String(p.offset)
  if (p.size !== defaultSize) q.size = String(p.size)
  return q
}

export interface Column {
  field: string
  title: string
  num?: boolean
  text: (v: string | number) => string // as shown
  hint?: (v: string | number) => string // on hover: the exact value
}

const time = (v: string | number) => new Date(Number(v)).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' })
const iso = (v: string | number) => new Date(Number(v)).toISOString()
const plain = (v: string | number) => (v === '' ? '–' : String(v))
const exact = (unit: string) => (v: string | number) => `${Number(v).toLocaleString()} ${unit}`

export const columns: Column[] = [
  { field: 'start', title: 'Start', text: time, hint: iso },
  { field: 'end', title: 'End', text: time, hint: iso },
  { field: 'srcaddr', title: 'Source', text: plain },
  { field: 'srcport', title: 'Port', num: true, text: plain },
  { field: 'dstaddr', title: 'Destination', text: plain },
  { field: 'dstport', title: 'Port', num: true, text: plain },
  { field: 'protocol', title: 'Protocol', text: (v) => label('protocol', String(v)), hint: (v) => `IP protocol ${v}` },
  { field: 'packets', title: 'Packets', num: true, text: (v) => si(Number(v)), hint: exact('packets') },
  { field: 'bytes', title: 'Bytes', num: true, text: (v) => si(Number(v), 'B'), hint: exact('bytes') },
  { field: 'tcp_flags', title: 'TCP flags', num: true, text: plain },
  { field: 'action', title: 'Action', text: plain },
  { field: 'flow_direction', title: 'Direction', text: plain },
  { field: 'end_reason', title: 'End reason', text: plain },
  { field: 'gateway_id', title: 'Gateway', text: plain },
  { field: 'interface_id', title: 'Interface', text: plain },
  { field: 'flow_log_id', title: 'Flow log', text: plain },
]

// cell is a record's value of a column, shown and exact.
export function cell(c: Column, r: FlowRecord): { text: string; hint: string; raw: string } {
  const v = r[c.field] ?? ''
  return { text: c.text(v), hint: c.hint ? c.hint(v) : String(v), raw: String(v) }
}

// save hands a fetched file to the browser's downloads.
export function save(name: string, blob: Blob): void {
  const url = URL.createObjectURL(blob)
  const a = document.createElement('a')
  a.href = url
  a.download = name
  document.body.appendChild(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 60_000)
}
