// The tenant's A record in the Linode DNS zone its address is under: the address less its
// first label (the BASE_DOMAIN of the day the tenant was made; a later change of BASE_DOMAIN
// leaves older tenants, and their records, in the zone they were made in). A record create has
// no idempotency key either: the record's name is the key, so a lost create is found by name
// and twins it left behind are removed. Zone ids are cached; a zone deleted (and perhaps made
// again) since is noticed by the 404 it answers and looked up afresh.
import { DNS_LABEL } from '../tenants/address.ts'
import { ExecutorError } from './executor.ts'
import { LinodeApi, LinodeApiError, backoffMs, pause } from './linode-api.ts'

interface DnsRecord { id: number, type: string, name: string, target: string }

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/

export interface TenantDnsOptions {
  sleep: (ms: number) => Promise<void>
  maxAttempts: number
}

/** A tenant address split into the record's name and the zone it lives in. */
interface Place { name: string, domain: string }

export class TenantDns {
  private readonly api: LinodeApi
  private readonly o: TenantDnsOptions
  /** Zone id by domain; an absent zone is not cached, so one made later is found. */
  private readonly zones = new Map<string, number>()

  constructor (api: LinodeApi, opts: TenantDnsOptions) {
    this.api = api
    this.o = opts
  }

  /** Points `fqdn` at `ipv4` (one A record, made, kept or updated); returns the record's id. */
  async ensure (fqdn: string, ipv4: string, signal?: AbortSignal): Promise<string> {
    if (!IPV4.test(ipv4)) throw new ExecutorError(`invalid IPv4 address ${JSON.stringify(ipv4)}`, { retryable: false })
    const place = placeOf(fqdn)
    return this.inZone(place.domain, signal, (zone) => this.upsert(this.requireZone(zone, place.domain), place.name, ipv4, signal))
  }

  /** Every A record named for `fqdn` (teardown's sweep). */
  async find (fqdn: string, signal?: AbortSignal): Promise<string[]> {
    const place = placeOf(fqdn)
    return this.inZone(place.domain, signal, async (zone) => {
      if (zone === undefined) return [] // no zone: no record in it
      return (await this.aRecords(zone, place.name, signal)).map((r) => String(r.id))
    })
  }

  /** Removes a record of `fqdn`'s zone by id (a numeric string); one already gone counts as removed. */
  async remove (fqdn: string, recordId: string, signal?: AbortSignal): Promise<void> {
    const { domain } = placeOf(fqdn)
    const zone = await this.findZone(domain, signal)
    if (zone === undefined) return // no zone: no record in it
    // Not found: the record is gone, or its whole zone is. A zone made again under the same
    // domain holds none of our old ids, and must be found afresh: teardown's sweep by name searches it.
    if (!(await this.api.deleteIgnoringMissing(`/domains/${zone}/records/${recordId}`, signal))) await this.zoneGone(domain, zone, signal)
  }

  private async upsert (zone: number, name: string, ipv4: string, signal?: AbortSignal): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      const records = await this.aRecords(zone, name, signal)
      if (records.length > 0) {
        const keep = records.find((r) => r.target === ipv4) ?? records[0]!
        // Twins left by a lost create would round-robin visitors to a wrong address.
        for (const twin of records) if (twin !== keep) await this.api.deleteIgnoringMissing(`/domains/${zone}/records/${twin.id}`, signal)
        if (keep.target !== ipv4) await this.api.call('PUT', `/domains/${zone}/records/${keep.id}`, { body: { target: ipv4, ttl_sec: 300 }, signal })
        return String(keep.id)
      }
      try {
        const body = { type: 'A', name, target: ipv4, ttl_sec: 300 }
        const created = await this.api.call<DnsRecord | null>('POST', `/domains/${zone}/records`, { body, retry: 'rejected-only', signal })
        // A 2xx that is not a record (a proxy's `{}`): unclear like a lost reply, so the
        // record is looked up by name again rather than kept as id "undefined".
        if (created === null || typeof created !== 'object' || !Number.isSafeInteger(created.id) || created.id <= 0) {
          throw new LinodeApiError(`Linode API: a record create reply that is not a record (POST /domains/${zone}/records)`, 200, [], true)
        }
        return String(created.id)
      } catch (err) {
        if (!(err instanceof LinodeApiError) || !err.ambiguous || attempt >= this.o.maxAttempts) throw err
        await pause(this.o.sleep, backoffMs(attempt), signal)
      }
    }
  }

  private requireZone (id: number | undefined, domain: string): number {
    if (id === undefined) {
      throw new ExecutorError(`Linode has no DNS zone for ${domain}; create it in the Domains API first`, { retryable: false })
    }
    return id
  }

  private async findZone (domain: string, signal?: AbortSignal): Promise<number | undefined> {
    let id = this.zones.get(domain)
    if (id === undefined) {
      const zones = await this.api.list<{ id: number, domain: string }>('/domains', { domain }, signal)
      id = zones.find((d) => d.domain.toLowerCase() === domain)?.id
      if (id !== undefined) this.zones.set(domain, id)
    }
    return id
  }

  /**
   * Runs `fn` in the domain's zone as last looked up. A zone deleted (and perhaps made again)
   * since answers 404: it is looked up once more, and `fn` runs again in what exists now.
   */
  private async inZone<T> (domain: string, signal: AbortSignal | undefined, fn: (zone: number | undefined) => Promise<T>): Promise<T> {
    const zone = await this.findZone(domain, signal)
    try {
      return await fn(zone)
    } catch (err) {
      if (zone === undefined || !(err instanceof LinodeApiError && err.status === 404) || !(await this.zoneGone(domain, zone, signal))) throw err
      return await fn(await this.findZone(domain, signal))
    }
  }

  /** True (and the cached id forgotten) when the zone no longer exists. */
  private async zoneGone (domain: string, zone: number, signal?: AbortSignal): Promise<boolean> {
    if (await this.api.getOrUndefined(`/domains/${zone}`, signal) !== undefined) return false
    if (this.zones.get(domain) === zone) this.zones.delete(domain)
    return true
  }

  /** The zone's A records with exactly this name. */
  private async aRecords (zone: number, name: string, signal?: AbortSignal): Promise<DnsRecord[]> {
    return (await this.api.list<DnsRecord>(`/domains/${zone}/records`, { name, type: 'A' }, signal)).filter((r) => r.type === 'A' && r.name.toLowerCase() === name)
  }
}

/** `acme-1a2b.ctfhive.us` → the record `acme-1a2b` in the zone `ctfhive.us`. */
function placeOf (fqdn: string): Place {
  const lower = fqdn.toLowerCase().replace(/\.$/, '')
  const dot = lower.indexOf('.')
  const name = lower.slice(0, dot)
  const domain = lower.slice(dot + 1)
  if (dot < 0 || !DNS_LABEL.test(name) || !domain.split('.').every((l) => DNS_LABEL.test(l))) {
    throw new ExecutorError(`${JSON.stringify(fqdn)} is not a tenant address (<label>.<zone>)`, { retryable: false })
  }
  return { name, domain }
}
