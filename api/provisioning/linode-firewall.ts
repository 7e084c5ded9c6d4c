// The Linode Cloud Firewall in front of every tenant server. Linode filters before packets
// reach the server, so only what a web server needs gets in even while the host's own
// nftables table is not loaded yet (first boot, before cloud-init runs) or after someone
// flushed it, and Docker's published ports cannot slip past it. One firewall serves all
// tenant servers: found by its label (and our tag, so never someone else's), made on first
// need with the ports the host firewall admits (cloud-init.ts), attached at create
// (`firewall_id`). A server adopted without one (made by a release before firewalls) is
// attached when it is adopted, or by the operator's repair (attachUnprotected). An operator
// may edit the firewall's rules or disable it; the settings check warns of both.
import { ExecutorError } from './executor.ts'
import { LinodeApi, LinodeApiError, backoffMs, pause } from './linode-api.ts'

export const FIREWALL_LABEL = 'ctfhive-tenants'
export const FIREWALL_TAG = 'ctfhive'

export interface FirewallRule {
  protocol: 'TCP' | 'UDP' | 'ICMP' | 'IPENCAP'
  ports?: string | null
  addresses: { ipv4?: string[], ipv6?: string[] }
  action: 'ACCEPT' | 'DROP'
  label?: string
  description?: string
}

export interface FirewallRules {
  inbound_policy: 'ACCEPT' | 'DROP'
  outbound_policy: 'ACCEPT' | 'DROP'
  inbound: FirewallRule[]
  outbound: FirewallRule[]
  version?: number
}

export interface Firewall { id: number, label: string, status: string, tags?: string[], rules?: FirewallRules }

const EVERYWHERE = { ipv4: ['0.0.0.0/0'], ipv6: ['::/0'] }

/** What the firewall admits: HTTP, HTTPS and HTTP/3 (Caddy), ICMP (path MTU discovery), DHCP replies; everything out. */
export function tenantFirewallRules (): FirewallRules {
  const accept = (label: string, protocol: FirewallRule['protocol'], ports: string | undefined, description: string): FirewallRule =>
    ({ label, protocol, ...(ports === undefined ? {} : { ports }), addresses: EVERYWHERE, action: 'ACCEPT', description })
  return {
    inbound_policy: 'DROP',
    outbound_policy: 'ACCEPT',
    inbound: [
      accept('web-tcp', 'TCP', '80, 443', 'HTTP and HTTPS to Caddy'),
      accept('web-quic', 'UDP', '443', 'HTTP/3 to Caddy'),
      accept('icmp', 'ICMP', undefined, 'ping and path MTU discovery'),
      accept('dhcp-client', 'UDP', '68, 546', 'DHCP and DHCPv6 replies')
    ],
    outbound: []
  }
}

function ruleKey (r: FirewallRule): string {
  const ports = (r.ports ?? '').replace(/\s+/g, '')
  return JSON.stringify([r.protocol, r.action, ports, [...(r.addresses.ipv4 ?? [])].sort(), [...(r.addresses.ipv6 ?? [])].sort()])
}

/** True when `rules` filter as ours do (labels and descriptions aside): nobody edited them. */
export function rulesAsMade (rules: FirewallRules | undefined): boolean {
  if (rules === undefined) return false
  const ours = tenantFirewallRules()
  const keys = (list: FirewallRule[] | undefined): string => JSON.stringify((list ?? []).map(ruleKey))
  return rules.inbound_policy === ours.inbound_policy && rules.outbound_policy === ours.outbound_policy &&
    keys(rules.inbound) === keys(ours.inbound) && keys(rules.outbound) === keys(ours.outbound)
}

/** The firewall labelled ours (not a deleted one); a label held without our tag is a hard error. */
export async function findTenantFirewall (api: LinodeApi, signal?: AbortSignal): Promise<Firewall | undefined> {
  const found = (await api.list<Firewall>('/networking/firewalls', { label: FIREWALL_LABEL }, signal))
    .find((f) => typeof f.label === 'string' && f.label.toLowerCase() === FIREWALL_LABEL && f.status !== 'deleted')
  if (found !== undefined && found.tags?.includes(FIREWALL_TAG) !== true) {
    throw new ExecutorError(`Linode firewall ${found.id} is labelled ${FIREWALL_LABEL} but not tagged ${FIREWALL_TAG}; refusing to use it (rename it, or tag it if it is ours)`, { retryable: false })
  }
  return found
}

/** The firewalls a server is assigned, enabled or disabled (not deleted ones). */
async function serverFirewalls (api: LinodeApi, serverId: number, signal?: AbortSignal): Promise<Firewall[]> {
  return (await api.list<Firewall>(`/linode/instances/${serverId}/firewalls`, {}, signal)).filter((f) => f.status !== 'deleted')
}

/** Lookups of single servers' firewalls at most, so a check stays quick on a large account. */
export const LOOKUP_CAP = 20

export interface UnprotectedServer { id: number, label: string, /** 'none': no firewall; else the disabled one it is behind. */ behind: 'none' | number }

/**
 * Tenant servers (tagged ctfhive, not being deleted) behind no enabled firewall: made before
 * firewalls and never adopted again, taken off it in the console, or behind a disabled one.
 * Servers missing from our enabled firewall's devices are looked up one by one (an operator
 * may have put one behind another firewall), at most LOOKUP_CAP of them; `unchecked` counts
 * the rest. A server deleted meanwhile is skipped.
 */
export async function unprotectedServers (api: LinodeApi, firewall: FirewallRef | undefined, signal?: AbortSignal, cap = LOOKUP_CAP): Promise<{ total: number, unprotected: UnprotectedServer[], unchecked: number }> {
  const servers = (await api.list<{ id: number, label: string, status: string, tags?: string[] }>('/linode/instances', { tags: FIREWALL_TAG }, signal))
    .filter((i) => i.tags?.includes(FIREWALL_TAG) === true && i.status !== 'deleting')
  const behindOurs = new Set<number>()
  if (firewall?.status === 'enabled') {
    const devices = await api.list<{ entity?: { id: number, type: string } }>(`/networking/firewalls/${firewall.id}/devices`, {}, signal)
    for (const d of devices) if (d.entity?.type === 'linode') behindOurs.add(d.entity.id)
  }
  const missing = servers.filter((i) => !behindOurs.has(i.id))
  const unprotected: UnprotectedServer[] = []
  for (const server of missing.slice(0, cap)) {
    let theirs: Firewall[]
    try {
      theirs = await serverFirewalls(api, server.id, signal)
    } catch (err) {
      if (err instanceof LinodeApiError && err.status === 404) continue
      throw err
    }
    if (!theirs.some((f) => f.status === 'enabled')) unprotected.push({ id: server.id, label: server.label, behind: theirs[0]?.id ?? 'none' })
  }
  return { total: servers.length, unprotected, unchecked: Math.max(0, missing.length - cap) }
}

/** Linode's refusal of a firewall call, said in terms of what the operator must change. */
function refusal (err: unknown): unknown {
  if (!(err instanceof LinodeApiError) || (err.status !== 401 && err.status !== 403)) return err
  const why = err.status === 401
    ? 'Linode refused the token for Cloud Firewalls (an invalid token, or one without the firewall:read_write scope)'
    : `the Linode user may not manage the Cloud Firewall (a restricted user needs add_firewalls, and read_write on ${FIREWALL_LABEL} and on the server)`
  return new ExecutorError(`${why}: ${err.message}`, { retryable: false, cause: err })
}

/**
 * Linode lists only the firewalls the user may see: a taken label that stays invisible is a
 * restricted user without a grant on it (or someone else's firewall), which no retry fixes.
 */
function invisible (cause: unknown): ExecutorError {
  return new ExecutorError(`a Linode firewall labelled ${FIREWALL_LABEL} exists, but this token's user cannot see it: grant the user read_write on it, or rename it if it is not ours`, { retryable: false, cause })
}

/** The firewall a server sits behind, as far as the job needs it. */
export interface FirewallRef { id: number, status: string }

export interface TenantFirewallOptions {
  sleep: (ms: number) => Promise<void>
  maxAttempts: number
  log?: { warn: (obj: object, msg: string) => void }
}

/**
 * Looked up afresh for every server (one GET): a firewall disabled or deleted in the console
 * since the last server is seen as it is now.
 */
export class TenantFirewall {
  private readonly api: LinodeApi
  private readonly o: TenantFirewallOptions

  constructor (api: LinodeApi, opts: TenantFirewallOptions) {
    this.api = api
    this.o = opts
  }

  /** Ours: the one found by label, or one made now. A disabled one is used, with a warning. */
  async ensure (signal?: AbortSignal): Promise<FirewallRef> {
    let fw: FirewallRef
    try {
      fw = await this.findOrCreate(signal)
    } catch (err) {
      throw refusal(err)
    }
    if (fw.status !== 'enabled') this.o.log?.warn({ firewall: fw.id, status: fw.status }, `linode firewall ${FIREWALL_LABEL} is ${fw.status}: servers behind it are not filtered`)
    return fw
  }

  private async findOrCreate (signal?: AbortSignal): Promise<FirewallRef> {
    let lastError: unknown
    let taken = false
    for (let attempt = 1; attempt <= this.o.maxAttempts; attempt++) {
      const found = await findTenantFirewall(this.api, signal)
      if (found !== undefined) return { id: found.id, status: found.status }
      if (taken) throw invisible(lastError)
      try {
        const body = { label: FIREWALL_LABEL, tags: [FIREWALL_TAG], rules: tenantFirewallRules() }
        const created = await this.api.call<Firewall | null>('POST', '/networking/firewalls', { body, retry: 'rejected-only', signal })
        // A 2xx that is not a firewall (a proxy's `{}`) is unclear like a lost reply: look again.
        if (created === null || typeof created !== 'object' || !Number.isSafeInteger(created.id) || created.id <= 0) {
          throw new LinodeApiError('Linode API: a firewall create reply that is not a firewall (POST /networking/firewalls)', 200, [], true)
        }
        return { id: created.id, status: created.status }
      } catch (err) {
        // Another worker made it first, or our own create's reply was lost: look again.
        if (!(err instanceof LinodeApiError) || !(err.labelTaken || err.ambiguous)) throw err
        taken = err.labelTaken
        lastError = err
        this.o.log?.warn({ label: FIREWALL_LABEL, status: err.status, attempt }, 'linode firewall create unclear; looking the label up')
        if (!taken) await pause(this.o.sleep, backoffMs(attempt), signal)
      }
    }
    if (taken) throw invisible(lastError)
    throw new ExecutorError(`could not create or find the Linode firewall ${FIREWALL_LABEL}: ${(lastError as Error).message}`, { retryable: true, cause: lastError })
  }

  /**
   * Puts the server behind our firewall unless it is assigned one already (ours, or one an
   * operator chose, enabled or not: Linode gives a server one firewall at a time). Returns
   * the firewall it is behind.
   */
  async attach (serverId: number, signal?: AbortSignal): Promise<FirewallRef> {
    const current = await this.assigned(serverId, signal)
    if (current !== undefined) return current
    return this.add(await this.ensure(signal), serverId, signal)
  }

  /**
   * Adds a server just seen behind no firewall to `fw`; returns the firewall it is behind
   * then (another, if one was assigned meanwhile).
   */
  async add (firewall: FirewallRef, serverId: number, signal?: AbortSignal): Promise<FirewallRef> {
    let fw = firewall
    for (let attempt = 1; ; attempt++) {
      try {
        await this.api.call('POST', `/networking/firewalls/${fw.id}/devices`, { body: { id: serverId, type: 'linode' }, retry: 'rejected-only', signal })
        return fw
      } catch (err) {
        if (!(err instanceof LinodeApiError)) throw err
        // The add may have happened (a lost reply), or the firewall is gone: see what holds now.
        const now = await this.assigned(serverId, signal)
        if (now !== undefined) return now
        if (err.status === 404) {
          fw = await this.ensure(signal)
        } else if (err.status === 400 && err.reasons.every((r) => r.field === undefined)) {
          // Not the request, the server's state (a live migration under way, say; the spec
          // gives no wording): the next attempt adds it.
          throw new ExecutorError(`could not add Linode ${serverId} to the firewall yet: ${err.message}`, { retryable: true, cause: err })
        } else if (!err.ambiguous) {
          throw refusal(err)
        }
        if (attempt >= this.o.maxAttempts) throw err
        await pause(this.o.sleep, backoffMs(attempt), signal)
      }
    }
  }

  /** The firewall the server is assigned (a disabled one too, with a warning), if any. */
  private async assigned (serverId: number, signal?: AbortSignal): Promise<FirewallRef | undefined> {
    const list = await serverFirewalls(this.api, serverId, signal)
    const fw = list.find((f) => f.status === 'enabled') ?? list[0]
    if (fw === undefined) return undefined
    if (fw.status !== 'enabled') this.o.log?.warn({ server: serverId, firewall: fw.id, status: fw.status }, 'linode server sits behind a firewall that is not enabled')
    return { id: fw.id, status: fw.status }
  }
}

export interface FirewallRepair {
  /** Ours, found or made now. */
  firewall: FirewallRef
  /** Tenant servers in all (tagged ctfhive, not being deleted). */
  total: number
  /** Servers that were behind no firewall, now behind firewall `now` (ours, unless one was assigned meanwhile). */
  attached: Array<UnprotectedServer & { now: number }>
  /** Behind a disabled firewall: left alone (a server has one firewall at a time); enabling it protects them. */
  disabled: UnprotectedServer[]
  failed: Array<UnprotectedServer & { error: string }>
}

/**
 * The operator's repair for drift (`npm run linode:check -- --attach-firewall`): every tenant
 * server behind no firewall is put behind ours, made first if there is none yet. Every server
 * is looked up, not LOOKUP_CAP of them. One server's failure does not stop the others.
 */
export async function attachUnprotected (api: LinodeApi, opts: TenantFirewallOptions, signal?: AbortSignal): Promise<FirewallRepair> {
  const tenantFirewall = new TenantFirewall(api, opts)
  const firewall = await tenantFirewall.ensure(signal)
  const { total, unprotected } = await unprotectedServers(api, firewall, signal, Infinity)
  const repair: FirewallRepair = { firewall, total, attached: [], disabled: [], failed: [] }
  for (const server of unprotected) {
    if (server.behind !== 'none') {
      repair.disabled.push(server)
      continue
    }
    try {
      // Just seen behind none: no second lookup of the server or of the firewall.
      repair.attached.push({ ...server, now: (await tenantFirewall.add(firewall, server.id, signal)).id })
    } catch (err) {
      if (signal?.aborted === true) throw err
      repair.failed.push({ ...server, error: (err as Error).message })
    }
  }
  return repair
}
