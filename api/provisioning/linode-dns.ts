// The tenant's A record in the Linode DNS zone of BASE_DOMAIN. A record create has no
// idempotency key either: the record's name is the key, so a lost create is found by name
// and twins it left behind are removed. The zone's id is cached; a zone deleted (and perhaps
// made again) since is noticed by the 404 it answers and looked up afresh.
import { ExecutorError } from './executor.ts'
import { LinodeApi, LinodeApiError, backoffMs, pause } from './linode-api.ts'

interface DnsRecord { id: number, type: string, name: string, target: string }

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/

export interface TenantDnsOptions {
  baseDomain: string
  sleep: (ms: number) => Promise<void>
  maxAttempts: number
}

export class TenantDns {
  private readonly api: LinodeApi
  private readonly o: TenantDnsOptions
  private zoneId: number | undefined

  constructor (api: LinodeApi, opts: TenantDnsOptions) {
    this.api = api
    this.o = { ...opts, baseDomain: opts.baseDomain.toLowerCase() }
  }

  /** Points `fqdn` at `ipv4` (one A record, made, kept or updated); returns the record's id. */
  async ensure (fqdn: string, ipv4: string, signal?: AbortSignal): Promise<string> {
    if (!IPV4.test(ipv4)) throw new ExecutorError(`invalid IPv4 address ${JSON.stringify(ipv4)}`, { retryable: false })
    const name = this.recordName(fqdn)
    return this.inZone(signal, (zone) => this.upsert(zone, name, ipv4, signal))
  }

  /** Every A record named for `fqdn` (teardown's sweep). */
  async find (fqdn: string, signal?: AbortSignal): Promise<string[]> {
    return this.inZone(signal, async (zone) => {
      if (zone === undefined) return [] // no zone: no record in it
      return (await this.aRecords(zone, this.recordName(fqdn), signal)).map((r) => String(r.id))
    })
  }

  /** Removes a record by id (a numeric string); one already gone counts as removed. */
  async remove (recordId: string, signal?: AbortSignal): Promise<void> {
    const zone = await this.findZone(signal)
    if (zone === undefined) return // no zone: no record in it
    // Not found: the record is gone, or its whole zone is. A zone made again under BASE_DOMAIN
    // holds none of our old ids, and must be found afresh: teardown's sweep by name searches it.
    if (!(await this.api.deleteIgnoringMissing(`/domains/${zone}/records/${recordId}`, signal))) await this.zoneGone(zone, signal)
  }

  private async upsert (found: number | undefined, name: string, ipv4: string, signal?: AbortSignal): Promise<string> {
    const zone = this.requireZone(found)
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
        const created = await this.api.call<DnsRecord>('POST', `/domains/${zone}/records`, { body, retry: 'rejected-only', signal })
        return String(created.id)
      } catch (err) {
        if (!(err instanceof LinodeApiError) || !err.ambiguous || attempt >= this.o.maxAttempts) throw err
        await pause(this.o.sleep, backoffMs(attempt), signal)
      }
    }
  }

  private recordName (fqdn: string): string {
    const lower = fqdn.toLowerCase()
    const suffix = `.${this.o.baseDomain}`
    if (!lower.endsWith(suffix) || lower.length === suffix.length) {
      throw new ExecutorError(`${fqdn} is not under ${this.o.baseDomain}`, { retryable: false })
    }
    return lower.slice(0, -suffix.length)
  }

  private requireZone (id: number | undefined): number {
    if (id === undefined) {
      throw new ExecutorError(`Linode has no DNS zone for ${this.o.baseDomain}; create it in the Domains API first`, { retryable: false })
    }
    return id
  }

  private async findZone (signal?: AbortSignal): Promise<number | undefined> {
    if (this.zoneId === undefined) {
      const zones = await this.api.list<{ id: number, domain: string }>('/domains', { domain: this.o.baseDomain }, signal)
      this.zoneId = zones.find((d) => d.domain.toLowerCase() === this.o.baseDomain)?.id
    }
    return this.zoneId
  }

  /**
   * Runs `fn` in the zone as last looked up. A zone deleted (and perhaps made again) since
   * answers 404: it is looked up once more, and `fn` runs again in what exists now.
   */
  private async inZone<T> (signal: AbortSignal | undefined, fn: (zone: number | undefined) => Promise<T>): Promise<T> {
    const zone = await this.findZone(signal)
    try {
      return await fn(zone)
    } catch (err) {
      if (zone === undefined || !(err instanceof LinodeApiError && err.status === 404) || !(await this.zoneGone(zone, signal))) throw err
      return await fn(await this.findZone(signal))
    }
  }

  /** True (and the cached id forgotten) when the zone no longer exists. */
  private async zoneGone (zone: number, signal?: AbortSignal): Promise<boolean> {
    if (await this.api.getOrUndefined(`/domains/${zone}`, signal) !== undefined) return false
    if (this.zoneId === zone) this.zoneId = undefined
    return true
  }

  /** The zone's A records with exactly this name. */
  private async aRecords (zone: number, name: string, signal?: AbortSignal): Promise<DnsRecord[]> {
    return (await this.api.list<DnsRecord>(`/domains/${zone}/records`, { name, type: 'A' }, signal)).filter((r) => r.type === 'A' && r.name.toLowerCase() === name)
  }
}
