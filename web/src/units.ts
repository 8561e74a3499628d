// Readable numbers for network people: decimal (SI) prefixes, three
// significant digits: 1.23 Gb/s, 4.5 Mpps, 1.2 M.
const prefixes = ['', 'k', 'M', 'G', 'T', 'P', 'E']

export function si(value: number, unit = ''): string {
  let v = value
  let i = 0
  while (Math.abs(v) >= 999.5 && i < prefixes.length - 1) {
    v /= 1000
    i++
  }
  const digits = i === 0 && Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(3)))
  const suffix = prefixes[i] + unit
  return suffix ? `${digits} ${suffix}` : digits
}

export type Measure = 'bytes' | 'packets' | 'flows'

// How each measure is aggregated, drawn as a rate and shown as a total.
export const measures: Record<Measure, {
  label: string
  aggregate: { func: 'sum' | 'count'; field?: string }
  rate: (perSecond: number) => string
  total: (n: number) => string
  perSecond: number // multiplier from units to the rate's units
}> = {
  bytes: {
    label: 'Bits/s',
    aggregate: { func: 'sum', field: 'bytes' },
    perSecond: 8,
    rate: (v) => si(v, 'b/s'),
    total: (n) => si(n, 'B'),
  },
  packets: {
    label: 'Packets/s',
    aggregate: { func: 'sum', field: 'packets' },
    perSecond: 1,
    rate: (v) => si(v, 'pps'),
    total: (n) => si(n),
  },
  flows: {
    label: 'Flows/s',
    aggregate: { func: 'count' },
    perSecond: 1,
    rate: (v) => si(v, 'flows/s'),
    total: (n) => si(n),
  },
}

export function percent(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)} %` : '–'
}

// ago says how long before now (ms) the time t was, in its largest unit;
// none when there is no time.
export function ago(t: string | undefined, now: number, none = '–'): string {
  if (!t) return none
  const s = Math.max(0, Math.round((now - Date.parse(t)) / 1000))
  if (s < 90) return `${s} s ago`
  if (s < 5400) return `${Math.round(s / 60)} min ago`
  if (s < 129600) return `${Math.round(s / 3600)} h ago`
  return `${Math.round(s / 86400)} d ago`
}
