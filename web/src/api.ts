// The console calls the same /v1 API as every other client. It signs in
// once with an access key; from then on the browser sends the HttpOnly
// session cookie, and changes carry the CSRF token, which lives in memory
// only (a reload asks the server for it again).
import { ref } from 'vue'

export interface Session {
  account_id: string
  access_key_id: string
  expires_at: string
  csrf_token: string
}

export class ApiError extends Error {
  status: number
  code: string
  constructor(status: number, code: string, message: string) {
    super(message)
    this.status = status
    this.code = code
  }
}

export const session = ref<Session | null>(null)

export async function call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const resp = await send(method, path, body, signal, 'application/json')
  return (resp.status === 204 ? {} : await resp.json().catch(() => ({}))) as T
}

// send makes one request of the session; an answer other than 2xx is
// thrown as an ApiError.
async function send(method: string, path: string, body: unknown, signal: AbortSignal | undefined, accept: string): Promise<Response> {
  const headers: Record<string, string> = { Accept: accept }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (method !== 'GET' && session.value) headers['X-CSRF-Token'] = session.value.csrf_token
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
    signal,
  })
  if (!resp.ok) {
    const data = await resp.json().catch(() => ({}))
    if (resp.status === 401 && !path.startsWith('/v1/console/')) session.value = null
    throw new ApiError(resp.status, data.code ?? '', data.message ?? resp.statusText)
  }
  return resp
}

// restore picks up the session a cookie still holds, after a reload.
export async function restore(): Promise<boolean> {
  try {
    session.value = await call<Session>('GET', '/v1/console/session')
  } catch {
    session.value = null
  }
  return session.value !== null
}

export async function signIn(id: string, secret: string): Promise<void> {
  session.value = await call<Session>('POST', '/v1/console/sessions', {
    access_key_id: id,
    access_key_secret: secret,
  })
}

export async function signOut(): Promise<void> {
  try {
    await call('DELETE', '/v1/console/session')
  } finally {
    session.value = null
  }
}

// errorText is how a failed call is shown: the server's code and message.
export function errorText(e: unknown): string {
  return e instanceof ApiError && e.code ? `${e.code}: ${e.message}` : (e as Error).message
}

export interface LogGroup {
  id: string
  name: string
  created_at: string
}
export interface LogStream {
  id: string
  log_group_id: string
  name: string
  retention_days: number
  created_at: string
}

function groupPath(group: string): string {
  return `/v1/log-groups/${encodeURIComponent(group)}`
}
function streamPath(s: LogStream): string {
  return `${groupPath(s.log_group_id)}/log-streams/${encodeURIComponent(s.id)}`
}

export async function listLogGroups(): Promise<LogGroup[]> {
  return (await call<{ log_groups: LogGroup[] }>('GET', '/v1/log-groups')).log_groups
}

export async function listLogStreams(group: string): Promise<LogStream[]> {
  return (await call<{ log_streams: LogStream[] }>('GET', `${groupPath(group)}/log-streams`)).log_streams
}

export function createLogGroup(name: string): Promise<LogGroup> {
  return call<LogGroup>('POST', '/v1/log-groups', { name })
}

export function deleteLogGroup(id: string): Promise<unknown> {
  return call('DELETE', groupPath(id))
}

// createLogStream leaves retention out when not given: the server's default applies.
export function createLogStream(group: string, name: string, retentionDays?: number): Promise<LogStream> {
  return call<LogStream>('POST', `${groupPath(group)}/log-streams`, { name, retention_days: retentionDays })
}

export function setRetention(s: LogStream, retentionDays: number): Promise<LogStream> {
  return call<LogStream>('PATCH', streamPath(s), { retention_days: retentionDays })
}

export function deleteLogStream(s: LogStream): Promise<unknown> {
  return call('DELETE', streamPath(s))
}

// Stream is a log stream with its group's name, for pickers.
export interface Stream extends LogStream {
  group: string
}

export async function listStreams(): Promise<Stream[]> {
  const groups = await listLogGroups()
  const lists = await Promise.all(
    groups.map(async (g) => (await listLogStreams(g.id)).map((s) => ({ ...s, group: g.name }))),
  )
  return lists.flat()
}

// An access key as listed: the secret is never there.
export interface AccessKey {
  access_key_id: string
  account_id: string
  status: string
  created_at: string
  last_used_at?: string
}

// NewAccessKey is the answer to creating a key, the one time its secret is shown.
export interface NewAccessKey {
  access_key_id: string
  access_key_secret: string
  account_id: string
}

function keyPath(id: string): string {
  return `/v1/access-keys/${encodeURIComponent(id)}`
}

export async function listAccessKeys(): Promise<AccessKey[]> {
  return (await call<{ access_keys: AccessKey[] }>('GET', '/v1/access-keys')).access_keys
}

export function createAccessKey(): Promise<NewAccessKey> {
  return call<NewAccessKey>('POST', '/v1/access-keys')
}

export function setAccessKeyEnabled(id: string, enabled: boolean): Promise<AccessKey> {
  return call<AccessKey>('POST', `${keyPath(id)}/${enabled ? 'enable' : 'disable'}`)
}

export function deleteAccessKey(id: string): Promise<unknown> {
  return call('DELETE', keyPath(id))
}

export interface FlowLog {
  id: string
  name: string
  description: string
  output_type: string
  log_group_id?: string
  log_stream_id?: string
  netflow_server_ip?: string
  netflow_server_port?: number
  netflow_version?: string
  region: string
  resource_group_id: string
  active_aging: number
  inactive_aging: number
  aggregation_interval: number
  sampling: number
  file?: FileOutput
  targets: Target[] | null
  enabled: boolean
  state: string
  state_reason?: string
  created_at: string
}

// FileOutput is where a flow log of output type file writes AWS VPC Flow
// Logs files, and how.
export interface FileOutput {
  output_dir: string
  log_format: string
  file_format: string
  per_hour_partition: boolean
}

export async function listFlowLogs(): Promise<FlowLog[]> {
  const { flow_logs } = await call<{ flow_logs: FlowLog[] }>('GET', '/v1/flow-logs?limit=2000')
  return flow_logs
}

export interface Target {
  gateway_id: string
  attachment_id?: string
}

// FlowLogCreate is POST /v1/flow-logs's body; what is left out takes the
// server's default.
export interface FlowLogCreate {
  name: string
  description?: string
  region?: string
  resource_group_id?: string
  output_type: string
  log_group_id?: string
  log_stream_id?: string
  netflow_server_ip?: string
  netflow_server_port?: number
  netflow_version?: string
  active_aging?: number
  inactive_aging?: number
  aggregation_interval?: number
  sampling?: number
  file?: Partial<FileOutput>
  enabled: boolean
  targets: Target[]
}

export function createFlowLog(body: FlowLogCreate): Promise<FlowLog> {
  return call<FlowLog>('POST', '/v1/flow-logs', body)
}

// FlowLogUpdate is PATCH /v1/flow-logs/{id}'s body: the settings to change.
export type FlowLogUpdate = Partial<Omit<FlowLogCreate, 'targets'>>

function flowLogPath(id: string): string {
  return `/v1/flow-logs/${encodeURIComponent(id)}`
}

export function updateFlowLog(id: string, body: FlowLogUpdate): Promise<FlowLog> {
  return call<FlowLog>('PATCH', flowLogPath(id), body)
}

// bindFlowLog associates the flow log with a gateway or attachment, or disassociates it.
export function bindFlowLog(id: string, target: Target, bound: boolean): Promise<FlowLog> {
  return call<FlowLog>('POST', `${flowLogPath(id)}/${bound ? 'associate' : 'disassociate'}`, target)
}

export function setFlowLogEnabled(id: string, enabled: boolean): Promise<FlowLog> {
  return call<FlowLog>('POST', `/v1/flow-logs/${encodeURIComponent(id)}/${enabled ? 'enable' : 'disable'}`)
}

export function deleteFlowLog(id: string): Promise<FlowLog> {
  return call<FlowLog>('DELETE', `/v1/flow-logs/${encodeURIComponent(id)}`)
}

export interface Attachment {
  id: string
  name: string
  interface?: string
  if_index?: number
}

// GatewayKind: capture reads host interfaces, pcap replays a file, exporter
// receives NetFlow/IPFIX from a router at exporter_addr.
export type GatewayKind = 'capture' | 'pcap' | 'exporter'

export interface GatewayInfo {
  id: string
  name: string
  kind: GatewayKind
  pcap_path?: string
  pcap_pace?: string
  exporter_addr?: string
  sampling_interval?: number
  snmp_configured?: boolean
  snmp?: { version: string; port: number; user?: string }
  created_at: string
}

// Gateway is a gateway with its attachments.
export interface Gateway extends GatewayInfo {
  attachments: Attachment[]
}

// GatewayCreate is POST /v1/gateways's body; only the kind's fields are sent.
export interface GatewayCreate {
  name: string
  kind: GatewayKind
  pcap_path?: string
  pcap_pace?: string
  exporter_addr?: string
  sampling_interval?: number
  snmp?: { version: string; community: string; port?: number }
}

function gatewayPath(id: string): string {
  return `/v1/gateways/${encodeURIComponent(id)}`
}

export async function listGateways(): Promise<Gateway[]> {
  const { gateways } = await call<{ gateways: GatewayInfo[] }>('GET', '/v1/gateways')
  return Promise.all(
    gateways.map(async (g) => {
      const { attachments } = await call<{ attachments: Attachment[] }>('GET', `${gatewayPath(g.id)}/attachments`)
      return { ...g, attachments }
    }),
  )
}

export function createGateway(body: GatewayCreate): Promise<GatewayInfo> {
  return call<GatewayInfo>('POST', '/v1/gateways', body)
}

export function deleteGateway(id: string): Promise<unknown> {
  return call('DELETE', gatewayPath(id))
}

export function createAttachment(gateway: string, name: string, iface: string): Promise<Attachment> {
  return call<Attachment>('POST', `${gatewayPath(gateway)}/attachments`, { name, interface: iface })
}

export function deleteAttachment(gateway: string, id: string): Promise<unknown> {
  return call('DELETE', `${gatewayPath(gateway)}/attachments/${encodeURIComponent(id)}`)
}

// ExporterHealth, worst first after the two that say nothing arrives:
// unused (no running flow log uses the gateway: datagrams are ignored),
// silent (none yet, or the server's collector is off), stale (they
// stopped), errors, losing, no_sampling_rate (records arrive with no rate
// and the gateway sets no override: stored as unsampled), ok.
// health_reason says which, in words.
export type ExporterHealth = 'unused' | 'silent' | 'stale' | 'errors' | 'losing' | 'no_sampling_rate' | 'ok'

// healthBadge is the state badge class a health verdict is coloured as.
export const healthBadge: Record<ExporterHealth, string> = {
  ok: 'available',
  losing: 'pending',
  no_sampling_rate: 'pending',
  stale: 'pending',
  errors: 'failed',
  silent: 'disabled',
  unused: 'disabled',
}

// Exporter is a router an exporter gateway names, with what the collector
// counted from it (GET /v1/exporters).
export interface Exporter {
  gateway_id: string
  gateway_name: string
  exporter_addr: string
  claimed: boolean
  seen: boolean
  protocol?: 'netflow-v5' | 'netflow-v9' | 'ipfix' | 'sflow-v5'
  packets: number
  records: number
  decode_errors: number
  sequence_lost: number
  unknown_template_sets: number
  dropped_sets: number
  templates_refused: number
  templates: number
  counter_samples: number
  clamped_records: number
  sampling_interval_min: number // 0: none announced
  sampling_interval_max: number
  sampling_interval_override: number // the gateway's, for records with none announced; 0: none
  sampling_missing: boolean // the last records had no rate and there is no override
  sampling_missing_records: number
  first_seen?: string
  last_seen?: string
  last_error?: string
  health: ExporterHealth
  health_reason: string
}

// listExporters returns the account's routers (one gateway's with gatewayId).
export async function listExporters(gatewayId?: string, signal?: AbortSignal): Promise<Exporter[]> {
  const q = gatewayId ? `?gateway_id=${encodeURIComponent(gatewayId)}` : ''
  return (await call<{ exporters: Exporter[] }>('GET', `/v1/exporters${q}`, undefined, signal)).exporters
}

export interface FilterCheck {
  valid: boolean
  error?: string
  offset?: number
}

export function checkFilter(where: string): Promise<FilterCheck> {
  return call<FilterCheck>('POST', '/v1/filters/check', { where })
}

// RecordsRequest pages through the raw records of a window.
export interface RecordsRequest {
  since: string
  until: string
  where?: string
  limit?: number
  offset?: number
}

// FlowRecord is one raw flow record, keyed by field name (flow.Fields).
export type FlowRecord = Record<string, string | number>

export interface RecordsPage {
  records?: FlowRecord[]
  next_offset?: number
}

export function queryRecords(stream: string, req: RecordsRequest, signal?: AbortSignal): Promise<RecordsPage> {
  return call<RecordsPage>('POST', `/v1/log-streams/${encodeURIComponent(stream)}/query`, req, signal)
}

export type ExportFormat = 'csv' | 'parquet'

// exportRecords fetches the file of a window's records; the request is a
// POST, so nothing of it (nor the session) goes into a URL.
export async function exportRecords(
  stream: string, req: { since: string; until: string; where?: string; format: ExportFormat }, signal?: AbortSignal,
): Promise<{ name: string; blob: Blob }> {
  const resp = await send('POST', `/v1/log-streams/${encodeURIComponent(stream)}/export`, req, signal, '*/*')
  const name = /filename="([^"]+)"/.exec(resp.headers.get('Content-Disposition') ?? '')?.[1] ?? `records.${req.format}`
  return { name, blob: await resp.blob() }
}

// An agent: a data plane on another host, as the operator sees it.
export interface AgentStatus {
  name: string
  access_key_id: string
  created_at: string
  last_seen?: string
  version_applied: number
  reported_at?: string
  gateways: number
  errors: string[]
}

// listAgents is the operator's (other accounts get 403 Forbidden), with
// the desired state's current version.
export function listAgents(signal?: AbortSignal): Promise<{ agents: AgentStatus[]; version: number }> {
  return call<{ agents: AgentStatus[]; version: number }>('GET', '/v1/agents', undefined, signal)
}
