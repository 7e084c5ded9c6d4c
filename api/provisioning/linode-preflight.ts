// Read-only checks of the Linode settings, before a customer pays: a wrong region, image or
// type, a missing zone or a token without rights fails every tenant's provisioning with a
// 400 no retry fixes. Run by `npm run linode:check` and, in the background, at server start.
// Write rights (the token's scopes) cannot be proven without writing; see the docs.
import type { Config } from '../config.ts'
import { PAID_PLANS, planServerType } from '../plans.ts'
import { ExecutorError } from './executor.ts'
import { LinodeApi, LinodeApiError } from './linode-api.ts'
import { FIREWALL_LABEL, findTenantFirewall, rulesAsMade, unprotectedServers, type Firewall } from './linode-firewall.ts'

/**
 * 'unknown': Linode did not answer (no reply, 429, 5xx) or its reply was malformed (not JSON,
 * not shaped as documented), so the setting was not checked.
 */
export type CheckResult = 'pass' | 'warn' | 'fail' | 'unknown'

export interface PreflightCheck {
  check: string
  expected: string
  got: string
  result: CheckResult
}

export interface PreflightSettings {
  region: string
  image: string
  baseDomain: string
  /**
   * Other domains tenants with a server live under (made before a change of BASE_DOMAIN):
   * their records are changed in those zones, by teardown and by provisioning them again.
   */
  olderDomains: readonly string[]
  /** Server type per plan (LINODE_PLAN's one type for all, or with `per-plan` the catalogue's). */
  serverTypes: ReadonlyArray<{ plan: string, type: string }>
}

/** CTFd's stated minimum (NOTES: 2 cores / 1 GB). */
const MIN_VCPUS = 2

interface Grant { id: number, permissions: string | null }
interface Grants { global?: { add_linodes?: boolean, add_firewalls?: boolean }, domain?: Grant[], firewall?: Grant[] }
interface Region { capabilities?: string[], status?: string }
interface Image { status?: string, capabilities?: string[], is_public?: boolean, deprecated?: boolean, eol?: string | null, regions?: Array<{ region: string, status: string }> }
interface LinodeType { vcpus?: number, memory?: number }
interface Zone { id: number, domain: string, type?: string, status?: string }

/** `tenantDomains`: the domains tenants with a server live under (`Store.tenantDomains`). */
export function preflightSettings (config: Pick<Config, 'linode' | 'baseDomain'>, tenantDomains: readonly string[] = []): PreflightSettings {
  const serverTypes = PAID_PLANS.map((p) => ({ plan: p.slug, type: planServerType(p.slug, config.linode.plan) }))
  const baseDomain = config.baseDomain.toLowerCase()
  const olderDomains = [...new Set(tenantDomains.map((d) => d.toLowerCase()))].filter((d) => d !== baseDomain).sort()
  return { region: config.linode.region, image: config.linode.image, baseDomain, olderDomains, serverTypes }
}

/** How many checks ended each way. */
export function countResults (checks: readonly PreflightCheck[]): Record<CheckResult, number> {
  const counts: Record<CheckResult, number> = { pass: 0, warn: 0, fail: 0, unknown: 0 }
  for (const c of checks) counts[c.result]++
  return counts
}

function reason (err: unknown): string {
  if (err instanceof LinodeApiError) {
    if (err.status === 0) return 'no answer'
    // A 2xx that failed is a reply the call could not use: say what it was, not "200 error".
    // The message reads "Linode API[ 200]: a reply that is not JSON (GET /profile)".
    if (err.status >= 200 && err.status < 300) return `${err.message.replace(/^Linode API( \d+)?: /, '').replace(/ \([A-Z]+ \/[^)]*\)$/, '')} (HTTP ${err.status})`
    return `${err.status} ${err.reasons.map((r) => r.reason).join('; ') || 'error'}`
  }
  return err instanceof Error ? err.message : String(err)
}

export async function linodePreflight (api: LinodeApi, s: PreflightSettings, signal?: AbortSignal): Promise<PreflightCheck[]> {
  const checks: PreflightCheck[] = []
  const add = (check: string, expected: string, got: string, result: CheckResult): void => { checks.push({ check, expected, got, result }) }
  /**
   * Runs one check; an API refusal fails it with Linode's reason, an outage leaves it unknown.
   * So does a reply the check cannot read (`null` where an object belongs: a TypeError, not an
   * ExecutorError): it proves nothing about the setting.
   */
  const attempt = async (check: string, expected: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn()
    } catch (err) {
      if (signal?.aborted === true) throw signal.reason
      if (!(err instanceof ExecutorError)) add(check, expected, `could not check: a malformed reply from LINODE_API_BASE (${reason(err)})`, 'unknown')
      else if (err.retryable) add(check, expected, `could not check: ${reason(err)}`, 'unknown')
      else add(check, expected, reason(err), 'fail')
    }
  }

  // Without a working token every other call fails the same way: stop at the first check.
  let tokenOk = false
  await attempt('token', 'accepted', async () => {
    const profile = await api.call<{ username?: string, restricted?: boolean }>('GET', '/profile', { signal })
    add('token', 'accepted', `accepted (user ${profile.username ?? '?'})`, 'pass')
    tokenOk = true
  })
  if (!tokenOk) return checks

  let grants: Grants | undefined
  await attempt('user rights', 'may create servers', async () => {
    const g = await api.call<Grants>('GET', '/profile/grants', { signal })
    // 204 (an empty object here): an unrestricted user, who may do everything.
    if (Object.keys(g).length === 0) return add('user rights', 'may create servers', 'unrestricted user', 'pass')
    grants = g
    // add_linodes is not enough: every server is created with its tags (adoption and teardown
    // find servers by them), and Linode lets only an unrestricted user tag one (POST
    // /linode/instances). The grants still inform the zone and firewall checks below.
    add('user rights', 'may create servers', `restricted user ${g.global?.add_linodes === true ? 'with' : 'without'} add_linodes: only an unrestricted user may tag servers, and each is created with tags`, 'fail')
  })

  await attempt('servers', 'listable (linodes scope)', async () => {
    await api.call('GET', '/linode/instances?page=1&page_size=25', { signal })
    add('servers', 'listable (linodes scope)', 'listed', 'pass')
  })

  // Capability names as GET /regions lists them ('Cloud Firewall' is not among the spec's
  // examples; Linode's own Ansible collection and Cloud Manager fixtures show it).
  const needs = ['Linodes', 'Metadata', 'Cloud Firewall']
  const regionExpected = `${s.region}: ${needs.join(', ')}`
  await attempt('region', regionExpected, async () => {
    const region = await api.getOrUndefined<Region>(`/regions/${encodeURIComponent(s.region)}`, signal)
    if (region === undefined) return add('region', regionExpected, 'no such region (LINODE_REGION)', 'fail')
    const missing = needs.filter((c) => region.capabilities?.includes(c) !== true)
    if (missing.length > 0) return add('region', regionExpected, `lacks ${missing.join(', ')} (LINODE_REGION)`, 'fail')
    add('region', regionExpected, region.status === undefined || region.status === 'ok' ? 'ok' : `status ${region.status}`, region.status === undefined || region.status === 'ok' ? 'pass' : 'warn')
  })

  await attempt('image', `${s.image}: available, cloud-init`, async () => {
    const expected = `${s.image}: available, cloud-init`
    // Image ids hold a slash (linode/debian12): it is part of the path.
    const path = `/images/${s.image.split('/').map(encodeURIComponent).join('/')}`
    // Anyone may read a public image, but with a token Linode asks for the images:read_only
    // scope, which provisioning does not need: read it without. A private one needs the token.
    const isPublic = s.image.startsWith('linode/')
    let image: Image | undefined
    try {
      image = await api.getOrUndefined<Image>(path, signal, { anonymous: isPublic })
    } catch (err) {
      if (isPublic || !(err instanceof LinodeApiError) || (err.status !== 401 && err.status !== 403)) throw err
      const needs = err.status === 401 ? 'the token needs the images:read_only scope' : 'the token needs the images:read_only scope, and a restricted user a grant on the image'
      return add('image', expected, `${reason(err)} (a private image: ${needs}) (LINODE_IMAGE)`, 'fail')
    }
    if (image === undefined) return add('image', expected, 'no such image (LINODE_IMAGE)', 'fail')
    if (image.status !== undefined && image.status !== 'available') return add('image', expected, `status ${image.status} (LINODE_IMAGE)`, 'fail')
    if (image.is_public === false) {
      // A private image lives in the regions it was copied to: elsewhere every create fails.
      const here = image.regions?.find((r) => r.region === s.region)
      if ((image.regions?.length ?? 0) > 0 && here?.status !== 'available') {
        return add('image', expected, `not available in ${s.region} (${here?.status ?? 'not stored there'}) (LINODE_IMAGE)`, 'fail')
      }
      // Linode reports the capability for public images only.
      return add('image', expected, 'private image: make sure it runs cloud-init', 'warn')
    }
    if (image.capabilities?.includes('cloud-init') !== true) return add('image', expected, 'no cloud-init: the server would never set itself up (LINODE_IMAGE)', 'fail')
    if (image.deprecated === true) return add('image', expected, `deprecated${image.eol != null ? `, end of life ${image.eol.slice(0, 10)}` : ''}`, 'warn')
    add('image', expected, 'available, cloud-init', 'pass')
  })

  let soldOut = new Set<string>()
  let availabilityKnown = false
  try {
    const list = await api.call<Array<{ plan: string, available: boolean }>>('GET', `/regions/${encodeURIComponent(s.region)}/availability`, { signal })
    soldOut = new Set(list.filter((a) => a.available === false).map((a) => a.plan))
    availabilityKnown = true
  } catch {
    if (signal?.aborted === true) throw signal.reason
  }
  const types = new Map<string, string[]>()
  for (const { plan, type } of s.serverTypes) types.set(type, [...(types.get(type) ?? []), plan])
  for (const [type, plans] of types) {
    const check = `type ${type} (${plans.join(', ')})`
    const expected = `exists, ≥ ${MIN_VCPUS} CPUs, sold in ${s.region}`
    await attempt(check, expected, async () => {
      const info = await api.getOrUndefined<LinodeType>(`/linode/types/${encodeURIComponent(type)}`, signal)
      if (info === undefined) return add(check, expected, 'no such type (plan catalogue or LINODE_PLAN)', 'fail')
      if (soldOut.has(type)) return add(check, expected, `sold out in ${s.region}`, 'fail')
      const size = `${info.vcpus ?? '?'} CPU, ${Math.round((info.memory ?? 0) / 1024)} GB`
      if ((info.vcpus ?? 0) < MIN_VCPUS) return add(check, expected, `${size}: below CTFd's minimum of ${MIN_VCPUS} cores`, 'warn')
      add(check, expected, availabilityKnown ? size : `${size}; availability not known`, availabilityKnown ? 'pass' : 'warn')
    })
  }

  /**
   * A zone the records are made in: present, primary, writable by a restricted user. The
   * BASE_DOMAIN zone fails every new tenant; an older domain's only its own tenants (`warn`).
   */
  const zoneCheck = (check: string, domain: string, expected: string, missing: string, severity: 'fail' | 'warn'): Promise<void> => attempt(check, expected, async () => {
    const zones = await api.list<Zone>('/domains', { domain }, signal)
    const zone = zones.find((z) => z.domain.toLowerCase() === domain)
    if (zone === undefined) return add(check, expected, missing, severity)
    if (zone.type === 'slave') return add(check, expected, 'a secondary zone: records cannot be added', severity)
    if (grants !== undefined && grants.domain?.find((d) => d.id === zone.id)?.permissions !== 'read_write') {
      return add(check, expected, 'the restricted user may not change it (needs read_write)', severity)
    }
    add(check, expected, `zone ${zone.id}, ${zone.status ?? 'active'}`, zone.status === undefined || zone.status === 'active' ? 'pass' : 'warn')
  })
  await zoneCheck('DNS zone', s.baseDomain, `${s.baseDomain}: active master zone`, 'no zone: create it in Linode\'s Domains (BASE_DOMAIN)', 'fail')
  for (const domain of s.olderDomains) {
    await zoneCheck(`DNS zone ${domain}`, domain, `${domain}: active master zone (tenants made under it)`,
      'no zone: tenants made under it have no DNS records, and cannot be provisioned again', 'warn')
  }

  const fwExpected = `${FIREWALL_LABEL}: ours, enabled, rules as made`
  let firewallsReadable = false
  let ours: Firewall | undefined
  await attempt('firewall', fwExpected, async () => {
    let fw
    try {
      fw = await findTenantFirewall(api, signal)
    } catch (err) {
      if (!(err instanceof LinodeApiError) || (err.status !== 401 && err.status !== 403)) throw err
      const needs = err.status === 401 ? 'the token needs the firewall:read_write scope' : 'the restricted user needs a grant on firewalls'
      return add('firewall', fwExpected, `${reason(err)} (${needs})`, 'fail')
    }
    firewallsReadable = true
    ours = fw
    if (fw === undefined) {
      if (grants === undefined) return add('firewall', fwExpected, 'none yet: made at the first provisioning', 'pass')
      if (grants.global?.add_firewalls !== true) return add('firewall', fwExpected, 'none yet, and the restricted user may not make one (add_firewalls)', 'fail')
      // Linode lists only what the user may see: one made by someone else stays hidden.
      return add('firewall', fwExpected, 'none the restricted user can see: made at the first provisioning (one that exists needs a read_write grant)', 'pass')
    }
    if (grants !== undefined && grants.firewall?.find((g) => g.id === fw.id)?.permissions !== 'read_write') {
      return add('firewall', fwExpected, `firewall ${fw.id}: the restricted user may not add servers to it (needs read_write)`, 'fail')
    }
    if (fw.status !== 'enabled') return add('firewall', fwExpected, `firewall ${fw.id} is ${fw.status}: it filters nothing`, 'warn')
    if (!rulesAsMade(fw.rules)) {
      return add('firewall', fwExpected, `firewall ${fw.id}: rules edited (version ${fw.rules?.version ?? '?'}); they must still admit TCP 80 and 443 from everywhere`, 'warn')
    }
    add('firewall', fwExpected, `firewall ${fw.id}, enabled`, 'pass')
  })

  // Drift: a server taken off the firewall in the console, or made before firewalls.
  if (firewallsReadable) {
    const expected = 'every tenant server behind a firewall'
    await attempt('servers behind it', expected, async () => {
      const { total, unprotected, unchecked } = await unprotectedServers(api, ours, signal)
      const servers = `${total} tenant server${total === 1 ? '' : 's'}`
      if (unprotected.length === 0 && unchecked === 0) return add('servers behind it', expected, `${servers}, none exposed`, 'pass')
      if (unprotected.length === 0) return add('servers behind it', expected, `${servers}; none exposed among those checked, ${unchecked} not checked`, 'warn')
      const names = unprotected.slice(0, 5).map((u) => `${u.label} (${u.id}${u.behind === 'none' ? '' : `, behind disabled firewall ${u.behind}`})`).join(', ') + (unprotected.length > 5 ? ', …' : '')
      const bare = unprotected.some((u) => u.behind === 'none')
      const disabled = unprotected.some((u) => u.behind !== 'none')
      const attach = `add those behind none with npm run linode:check -- --attach-firewall`
      const hint = bare && disabled ? `${attach}, and enable the disabled firewall in the console` : bare ? attach : 'enable the firewall in the console'
      const more = unchecked > 0 ? `; ${unchecked} more not checked` : ''
      add('servers behind it', expected, `${unprotected.length} of ${servers} behind no enabled firewall: ${names}${more}; ${hint}`, 'warn')
    })
  }
  return checks
}

/** A LinodeApi for a one-off check: few tries, short timeouts. */
export function preflightApi (config: Pick<Config, 'linode'>): LinodeApi {
  return new LinodeApi({
    token: config.linode.token,
    apiBase: config.linode.apiBase,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    maxAttempts: 3,
    requestTimeoutMs: 10_000,
    maxRetryAfterMs: 10_000
  })
}

/**
 * The check at server start: in the background, logged. A failed check is an error (every
 * tenant would fail); a warning is one; nothing stops the server, which serves what it can.
 */
export async function logLinodePreflight (config: Pick<Config, 'linode' | 'baseDomain'>, log: { info: (o: object, m: string) => void, warn: (o: object, m: string) => void, error: (o: object, m: string) => void }, signal?: AbortSignal, tenantDomains: readonly string[] = []): Promise<PreflightCheck[]> {
  try {
    const checks = await linodePreflight(preflightApi(config), preflightSettings(config, tenantDomains), signal)
    for (const c of checks) {
      if (c.result === 'fail') log.error({ check: c.check, expected: c.expected, got: c.got }, 'linode setting check failed: provisioning will fail until it is fixed (npm run linode:check)')
      else if (c.result === 'warn') log.warn({ check: c.check, expected: c.expected, got: c.got }, 'linode setting check warns')
      else if (c.result === 'unknown') log.warn({ check: c.check, expected: c.expected, got: c.got }, 'linode setting not checked: Linode did not answer')
    }
    const n = countResults(checks)
    log.info({ passed: n.pass, warnings: n.warn, failed: n.fail, unknown: n.unknown }, 'linode settings checked')
    return checks
  } catch (err) {
    // Cut short by shutdown: nothing to report. Out of time, or a bug: say so.
    if (signal?.aborted !== true || (signal.reason as Error | undefined)?.name === 'TimeoutError') log.warn({ reason: reason(err) }, 'linode settings could not be checked')
    return []
  }
}
