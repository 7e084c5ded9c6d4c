// LinodeExecutor: the Executor over Linode API v4. A create has no idempotency key, so the
// label `ctf-<slug>` plus the tag `tenant:<id>` is the key: every ambiguous failure (lost
// reply, timeout, 5xx) and every "Label must be unique" is answered by looking the label up
// and adopting the server when it carries this tenant's tag — never anyone else's. Every
// server sits behind the shared Cloud Firewall (linode-firewall.ts); its A record is kept by
// linode-dns.ts.
import { randomBytes } from 'node:crypto'
import { request, type Dispatcher } from 'undici'
import type { Config } from '../config.ts'
import { CREDENTIAL_PATH } from './cloud-init.ts'
import { ExecutorError, type CreateResult, type Executor, type ServerInfo, type ServerSpec } from './executor.ts'
import { LinodeApi, LinodeApiError, backoffMs, pause } from './linode-api.ts'
import { TenantDns } from './linode-dns.ts'
import { TenantFirewall, type FirewallRef } from './linode-firewall.ts'

export interface LinodeExecutorOptions {
  token: string
  /** e.g. https://api.linode.com/v4 (config.linode.apiBase). */
  apiBase: string
  region: string
  image: string
  /** The tenant's base64 cloud-config: userDataBuilder() from cloud-init.ts. */
  userData: (spec: ServerSpec) => string
  dispatcher?: Dispatcher
  sleep?: (ms: number) => Promise<void>
  /** Tries per API call, the first included (default 5). */
  maxAttempts?: number
  requestTimeoutMs?: number
  /** A Retry-After longer than this fails the call as retryable instead of sleeping. */
  maxRetryAfterMs?: number
  healthTimeoutMs?: number
  rootPassword?: () => string
  /** GETs against the tenant's own server (health, credential envelope); tests inject it. */
  healthFetch?: (url: string, timeoutMs: number, signal?: AbortSignal) => Promise<{ status: number, body: string }>
  log?: { warn: (obj: object, msg: string) => void }
}

interface Instance { id: number, label: string, status: string, type?: string, ipv4?: string[], tags?: string[] }

/** Statuses of a server Linode is resizing (a resize is a migration to another host). */
const RESIZING = new Set(['resizing', 'migrating'])
const LABEL_RULE = /^[a-zA-Z]((?!--|__|\.\.)[a-zA-Z0-9-_.])+$/
const PRIVATE_V4 = /^(10\.|127\.|169\.254\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/

/** `ctf-<slug>` within Linode's label rules: 3–64 chars of [A-Za-z0-9-_.], a letter first, an
 * alphanumeric last, no --, __ or .. (two slugs may normalise alike: the tenant tag still decides). */
export function serverLabel (slug: string): string {
  const label = `ctf-${slug}`.replace(/[^A-Za-z0-9-_.]/g, '-').replace(/([-_.])\1+/g, '$1').slice(0, 64).replace(/[-_.]+$/, '')
  if (label.length < 5 || !LABEL_RULE.test(label)) throw new ExecutorError(`cannot make a Linode label from slug ${JSON.stringify(slug)}`, { retryable: false })
  return label
}

export function tenantTag (tenantId: string): string {
  const tag = `tenant:${tenantId}`
  if (tag.length > 50 || !/^[A-Za-z0-9_-]+$/.test(tenantId)) throw new ExecutorError(`tenant id ${JSON.stringify(tenantId)} cannot be a Linode tag`, { retryable: false })
  return tag
}

function defaultRootPassword (): string {
  // 256 random bits; never stored, logged or returned (nobody logs in with it).
  return `Ct1!${randomBytes(32).toString('base64url')}`
}

/** An object with the numeric id every instance has (and a label and status to show). */
function isInstance (value: unknown): value is Instance {
  const i = value as Partial<Instance> | null
  return i !== null && typeof i === 'object' && Number.isSafeInteger(i.id) && i.id! > 0 && typeof i.label === 'string' && typeof i.status === 'string'
}

function toInfo (i: Instance): ServerInfo {
  const ipv4 = (i.ipv4 ?? []).find((a) => !PRIVATE_V4.test(a)) ?? null
  return { id: String(i.id), label: i.label, status: i.status, ipv4, ...(typeof i.type === 'string' ? { type: i.type } : {}) }
}

function numericId (id: string, what: string): string {
  if (!/^\d{1,18}$/.test(id)) throw new ExecutorError(`invalid ${what} id ${JSON.stringify(id)}`, { retryable: false })
  return id
}

/** The most of a tenant server's answer read (a health check's, a credential envelope's). */
export const TENANT_BODY_MAX = 65536

/**
 * GET of a page a tenant server serves. The tenant owns that server: its answer is read up to
 * TENANT_BODY_MAX bytes and no further, or an endless one would fill this process's memory.
 */
export async function defaultHealthFetch (url: string, timeoutMs: number, signal?: AbortSignal): Promise<{ status: number, body: string }> {
  const bound = AbortSignal.timeout(timeoutMs)
  const res = await request(url, { method: 'GET', headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal: signal === undefined ? bound : AbortSignal.any([signal, bound]) })
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of res.body) {
    chunks.push(chunk as Buffer)
    size += (chunk as Buffer).length
    // Leaving the loop destroys the stream: the rest is never read.
    if (size >= TENANT_BODY_MAX) break
  }
  return { status: res.statusCode, body: Buffer.concat(chunks).subarray(0, TENANT_BODY_MAX).toString('utf8') }
}

export class LinodeExecutor implements Executor {
  readonly name = 'linode'
  private readonly o: Required<Omit<LinodeExecutorOptions, 'token' | 'apiBase' | 'dispatcher' | 'log' | 'maxRetryAfterMs' | 'requestTimeoutMs'>> & Pick<LinodeExecutorOptions, 'log'>
  private readonly api: LinodeApi
  private readonly firewall: TenantFirewall
  private readonly dns: TenantDns

  constructor (opts: LinodeExecutorOptions) {
    const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)))
    const maxAttempts = opts.maxAttempts ?? 5
    this.api = new LinodeApi({
      token: opts.token,
      apiBase: opts.apiBase,
      dispatcher: opts.dispatcher,
      sleep,
      maxAttempts,
      requestTimeoutMs: opts.requestTimeoutMs ?? 30_000,
      maxRetryAfterMs: opts.maxRetryAfterMs ?? 60_000,
      log: opts.log
    })
    this.firewall = new TenantFirewall(this.api, { sleep, maxAttempts, log: opts.log })
    this.dns = new TenantDns(this.api, { sleep, maxAttempts })
    this.o = {
      region: opts.region,
      image: opts.image,
      userData: opts.userData,
      log: opts.log,
      sleep,
      maxAttempts,
      healthTimeoutMs: opts.healthTimeoutMs ?? 5000,
      rootPassword: opts.rootPassword ?? defaultRootPassword,
      healthFetch: opts.healthFetch ?? defaultHealthFetch
    }
  }

  static fromConfig (config: Pick<Config, 'linode'>, extra: Pick<LinodeExecutorOptions, 'userData'> & Partial<LinodeExecutorOptions>): LinodeExecutor {
    const { token, apiBase, region, image } = config.linode
    return new LinodeExecutor({ token, apiBase, region, image, ...extra })
  }

  async createOrAdopt (spec: ServerSpec, signal?: AbortSignal): Promise<CreateResult> {
    const label = serverLabel(spec.slug)
    const tag = tenantTag(spec.tenantId)
    let firewall: FirewallRef | undefined
    let lastError: unknown
    for (let attempt = 1; attempt <= this.o.maxAttempts; attempt++) {
      const existing = await this.findTenantServer(label, tag, signal)
      if (existing !== undefined) {
        // Made with the firewall by the lost try; one made by an older release gets it now.
        const behind = await this.firewall.attach(existing.id, signal)
        return { server: toInfo(existing), adopted: true, firewall: { id: String(behind.id), status: behind.status } }
      }
      firewall ??= await this.firewall.ensure(signal)
      try {
        const body = {
          type: spec.serverType,
          region: this.o.region,
          image: this.o.image,
          label,
          tags: ['ctfhive', tag],
          root_pass: this.o.rootPassword(),
          metadata: { user_data: this.o.userData(spec) },
          firewall_id: firewall.id,
          booted: true
        }
        const created = await this.api.call<Instance>('POST', '/linode/instances', { body, retry: 'rejected-only', signal })
        // A 2xx that is not an instance (a proxy's `{}`) tells nothing of what Linode did: an
        // unclear create, looked up by label like a lost reply, never kept as server "undefined".
        if (!isInstance(created)) throw new LinodeApiError('Linode API: a create reply that is not an instance (POST /linode/instances)', 200, [], true)
        return { server: toInfo(created), adopted: false, firewall: { id: String(firewall.id), status: firewall.status } }
      } catch (err) {
        if (err instanceof LinodeApiError && err.status === 400 && err.reasons.some((r) => r.field === 'firewall_id')) {
          // The firewall was deleted since we looked it up (in the console, say): find or make
          // it again. Refused though it exists (a region without Cloud Firewalls): no retry helps.
          const refused = firewall.id
          firewall = await this.firewall.ensure(signal)
          if (firewall.id === refused) throw new ExecutorError(`Linode refused firewall ${refused} for ${label}: ${err.message}`, { retryable: false, cause: err })
          lastError = err
          continue
        }
        const taken = err instanceof LinodeApiError && err.labelTaken
        if (!(err instanceof LinodeApiError) || !(taken || err.ambiguous)) throw err
        // The create may have happened (or a twin did): look again before another try.
        lastError = err
        this.o.log?.warn({ label, status: err.status, attempt }, 'linode create unclear; looking the label up')
        if (!taken) await pause(this.o.sleep, backoffMs(attempt), signal)
      }
    }
    throw new ExecutorError(`could not create or find Linode ${label}: ${(lastError as Error).message}`, { retryable: true, cause: lastError })
  }

  /** This tenant's server by label; a label held without this tenant's tag is a hard error. */
  private async findTenantServer (label: string, tag: string, signal?: AbortSignal): Promise<Instance | undefined> {
    const sameLabel = (i: Instance): boolean => i.label.toLowerCase() === label.toLowerCase()
    const byLabel = (await this.api.list<Instance>('/linode/instances', { label }, signal)).filter(sameLabel)
    let mine = byLabel.find((i) => i.tags?.includes(tag) === true)
    if (mine === undefined && byLabel.length > 0) {
      throw new ExecutorError(`Linode label ${label} is held by server ${byLabel[0]!.id}, which is not tagged ${tag}; refusing to adopt it`, { retryable: false })
    }
    if (mine === undefined) {
      const byTag = await this.taggedServers(tag, signal)
      // An unclear create can land between the two lookups: under this label it is ours.
      mine = byTag.find(sameLabel)
      if (mine === undefined && byTag.length > 0) {
        throw new ExecutorError(`tenant already has Linode ${byTag[0]!.id} labelled ${byTag[0]!.label}, not ${label}; refusing a second server`, { retryable: false })
      }
    }
    // A torn-down tenant's old server may still be listed while Linode deletes it: adopting it
    // would strand a reactivated tenant, and its label blocks a new one until it is gone.
    if (mine?.status === 'deleting') throw new ExecutorError(`Linode ${mine.id} (${label}) is still being deleted; a new server must wait for it`, { retryable: true })
    return mine
  }

  async getServer (serverId: string, signal?: AbortSignal): Promise<ServerInfo | undefined> {
    const server = await this.getInstance(numericId(serverId, 'server'), signal)
    return server === undefined ? undefined : toInfo(server)
  }

  async bootServer (serverId: string, signal?: AbortSignal): Promise<boolean> {
    const id = numericId(serverId, 'server')
    try {
      await this.api.call('POST', `/linode/instances/${id}/boot`, { body: {}, signal })
      return true
    } catch (err) {
      // 400 is Linode's "Linode busy" (a boot or shutdown already under way; also the answer
      // to a retry whose first try's reply was lost, so that boot goes unaudited), 404 a
      // server gone since: the job's next status poll sees which. A lasting 400 (a server
      // Linode cannot boot) is asked again after each grace until the attempts run out.
      if (!(err instanceof LinodeApiError) || (err.status !== 400 && err.status !== 404)) throw err
      this.o.log?.warn({ server: id, status: err.status, reason: err.message }, 'linode declined the boot')
      return false
    }
  }

  /**
   * `migration_type: warm`: the server keeps serving while Linode copies it to its new host, and
   * is down only for the reboot at the end (a cold one is down for the whole copy: minutes to
   * hours). `allow_auto_disk_resize`: a larger type's disk is used whole; a smaller one's is
   * shrunk when the data fits, and Linode refuses the resize when it does not.
   */
  async resizeServer (serverId: string, type: string, signal?: AbortSignal): Promise<void> {
    const id = numericId(serverId, 'server')
    const before = await this.getInstance(id, signal)
    if (before === undefined) throw new ExecutorError(`Linode ${id} does not exist; there is nothing to resize`, { retryable: false })
    // A resize reboots: a wrong id must never reach a server that is not a tenant's.
    if (before.tags?.includes('ctfhive') !== true) throw new ExecutorError(`Linode ${id} (${before.label}) is not tagged ctfhive; refusing to resize it`, { retryable: false })
    if (before.type === type || RESIZING.has(before.status)) return
    let lastError: unknown
    for (let attempt = 1; attempt <= this.o.maxAttempts; attempt++) {
      try {
        const body = { type, allow_auto_disk_resize: true, migration_type: 'warm' }
        await this.api.call('POST', `/linode/instances/${id}/resize`, { body, retry: 'rejected-only', signal })
        return
      } catch (err) {
        if (!(err instanceof LinodeApiError)) throw err
        // Its reply lost: a resize Linode took (this call's, or one asked before a restart)
        // shows in the server, and a second request would be refused as busy.
        const now = await this.getInstance(id, signal)
        if (now === undefined) throw new ExecutorError(`Linode ${id} no longer exists; there is nothing to resize`, { retryable: false, cause: err })
        if (now.type === type) return
        if (err.ambiguous) {
          if (RESIZING.has(now.status)) return
          lastError = err
          await pause(this.o.sleep, backoffMs(attempt), signal)
          continue
        }
        if (err.retryable) throw err
        // Busy with something else (a boot, a backup, or a migration or resize not ours: refused,
        // this request started none): the job asks again once the server has settled.
        if (RESIZING.has(now.status) || (err.status === 400 && err.reasons.some((r) => /busy/i.test(r.reason)))) {
          throw new ExecutorError(`Linode ${id} is busy; the resize to ${type} is asked again later: ${err.message}`, { retryable: true, cause: err })
        }
        throw new ExecutorError(`Linode refused to resize ${id} (${now.label}) from ${String(now.type)} to ${type}: ${err.message}`, { retryable: false, cause: err })
      }
    }
    throw new ExecutorError(`could not ask Linode to resize ${id} to ${type}: ${(lastError as Error).message}`, { retryable: true, cause: lastError })
  }

  async ensureDnsRecord (spec: ServerSpec, ipv4: string, signal?: AbortSignal): Promise<string> {
    return this.dns.ensure(spec.fqdn, ipv4, signal)
  }

  async checkHealth (fqdn: string, signal?: AbortSignal): Promise<boolean> {
    try {
      const res = await this.o.healthFetch(`https://${fqdn}/healthcheck`, this.o.healthTimeoutMs, signal)
      return res.status === 200
    } catch {
      if (signal?.aborted === true) throw signal.reason
      return false
    }
  }

  /** The sealed admin credential the server publishes (see cloud-init.ts); undefined until it exists. */
  async fetchCredentialEnvelope (fqdn: string, signal?: AbortSignal): Promise<string | undefined> {
    try {
      const res = await this.o.healthFetch(`https://${fqdn}${CREDENTIAL_PATH}`, this.o.healthTimeoutMs, signal)
      return res.status === 200 && res.body.startsWith('{"v":') ? res.body.trim() : undefined
    } catch {
      if (signal?.aborted === true) throw signal.reason
      return undefined
    }
  }

  async findServers (spec: ServerSpec, signal?: AbortSignal): Promise<ServerInfo[]> {
    return (await this.taggedServers(tenantTag(spec.tenantId), signal)).filter((i) => i.tags!.includes('ctfhive')).map(toInfo)
  }

  async findDnsRecords (spec: ServerSpec, signal?: AbortSignal): Promise<string[]> {
    return this.dns.find(spec.fqdn, signal)
  }

  /** Servers carrying this tag (checked again here, whatever the API's filter did), not those being deleted. */
  private async taggedServers (tag: string, signal?: AbortSignal): Promise<Instance[]> {
    return (await this.api.list<Instance>('/linode/instances', { tags: tag }, signal)).filter((i) => i.tags?.includes(tag) === true && i.status !== 'deleting')
  }

  async removeDnsRecord (spec: ServerSpec, recordId: string, signal?: AbortSignal): Promise<void> {
    await this.dns.remove(spec.fqdn, numericId(recordId, 'DNS record'), signal)
  }

  async destroyServer (serverId: string, signal?: AbortSignal): Promise<void> {
    const id = numericId(serverId, 'server')
    const server = await this.getInstance(id, signal)
    if (server === undefined) return
    // A wrong id must never take down something that is not a tenant server.
    if (server.tags?.includes('ctfhive') !== true) {
      throw new ExecutorError(`Linode ${id} (${server.label}) is not tagged ctfhive; refusing to destroy it`, { retryable: false })
    }
    try {
      await this.api.deleteIgnoringMissing(`/linode/instances/${id}`, signal)
    } catch (err) {
      // A DELETE has no body to be wrong: its 400 is the server's state ("cannot be deleted"
      // while it is being cloned or a backup restored into it), which passes. Final, the
      // teardown would stop and leave the server billing until an operator retried it.
      if (err instanceof LinodeApiError && err.status === 400) {
        throw new ExecutorError(`Linode ${id} cannot be deleted now (a clone or a backup restore under way?); the teardown asks again later: ${err.message}`, { retryable: true, cause: err })
      }
      throw err
    }
  }

  /** The instance, undefined when Linode has none (404); a reply of another shape is a retryable failed call. */
  private async getInstance (id: string, signal?: AbortSignal): Promise<Instance | undefined> {
    const found = await this.api.getOrUndefined<unknown>(`/linode/instances/${id}`, signal)
    if (found === undefined) return undefined
    const tags = (found as { tags?: unknown }).tags
    if (!isInstance(found) || !Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) {
      throw new LinodeApiError(`Linode API: a reply for instance ${id} that is not an instance (GET /linode/instances/{id})`, 200, [], true)
    }
    return found
  }
}
