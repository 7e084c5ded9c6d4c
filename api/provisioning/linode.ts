// LinodeExecutor: the Executor over Linode API v4. A create has no idempotency key, so the
// label `ctf-<slug>` plus the tag `tenant:<id>` is the key: every ambiguous failure (lost
// reply, timeout, 5xx) and every "Label must be unique" is answered by looking the label up
// and adopting the server when it carries this tenant's tag — never anyone else's.
import { randomBytes } from 'node:crypto'
import { request, type Dispatcher } from 'undici'
import type { Config } from '../config.ts'
import { CREDENTIAL_PATH } from './cloud-init.ts'
import { ExecutorError, type CreateResult, type Executor, type ServerInfo, type ServerSpec } from './executor.ts'

export interface LinodeExecutorOptions {
  token: string
  /** e.g. https://api.linode.com/v4 (config.linode.apiBase). */
  apiBase: string
  region: string
  image: string
  baseDomain: string
  /** The tenant's base64 cloud-config: userDataBuilder() from cloud-init.ts. */
  userData: (spec: ServerSpec) => string
  dispatcher?: Dispatcher
  sleep?: (ms: number) => Promise<void>
  now?: () => number
  /** Between status polls in waitUntilRunning (default 3000, as Linode's own tools). */
  pollIntervalMs?: number
  /** Default bound of waitUntilRunning (default 15 min, as Terraform's create timeout). */
  maxPollMs?: number
  /** Tries per API call, the first included (default 5). */
  maxAttempts?: number
  requestTimeoutMs?: number
  /** A Retry-After longer than this fails the call as retryable instead of sleeping. */
  maxRetryAfterMs?: number
  healthTimeoutMs?: number
  rootPassword?: () => string
  /** GETs against the tenant's own server (health, credential envelope); tests inject it. */
  healthFetch?: (url: string, timeoutMs: number) => Promise<{ status: number, body: string }>
  log?: { warn: (obj: object, msg: string) => void }
}

export interface LinodeReason { field?: string, reason: string }

/** An API answer other than 2xx; status 0 means no answer (network error, timeout). */
export class LinodeApiError extends ExecutorError {
  readonly status: number
  readonly reasons: LinodeReason[]
  constructor (message: string, status: number, reasons: LinodeReason[], retryable: boolean, cause?: unknown) {
    super(message, { retryable, cause })
    this.name = 'LinodeApiError'
    this.status = status
    this.reasons = reasons
  }

  /** The request may have been applied even though we got no success answer. */
  get ambiguous (): boolean {
    return this.status === 0 || this.status === 408 || this.status >= 500
  }
}

interface Instance { id: number, label: string, status: string, ipv4?: string[], tags?: string[] }
interface DnsRecord { id: number, type: string, name: string, target: string }
interface Page<T> { data: T[], page: number, pages: number, results: number }
type Retry = 'always' | 'rejected-only'

const LABEL_RULE = /^[a-zA-Z]((?!--|__|\.\.)[a-zA-Z0-9-_.])+$/
const PRIVATE_V4 = /^(10\.|127\.|169\.254\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/
const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/

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

function toInfo (i: Instance): ServerInfo {
  const ipv4 = (i.ipv4 ?? []).find((a) => !PRIVATE_V4.test(a)) ?? null
  return { id: String(i.id), label: i.label, status: i.status, ipv4 }
}

function numericId (id: string, what: string): string {
  if (!/^\d{1,18}$/.test(id)) throw new ExecutorError(`invalid ${what} id ${JSON.stringify(id)}`, { retryable: false })
  return id
}

async function defaultHealthFetch (url: string, timeoutMs: number): Promise<{ status: number, body: string }> {
  const res = await request(url, { method: 'GET', headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal: AbortSignal.timeout(timeoutMs) })
  return { status: res.statusCode, body: (await res.body.text()).slice(0, 65536) }
}

export class LinodeExecutor implements Executor {
  readonly name = 'linode'
  private readonly o: Required<Omit<LinodeExecutorOptions, 'token' | 'dispatcher' | 'log'>> & Pick<LinodeExecutorOptions, 'dispatcher' | 'log'>
  // A #private field: util.inspect and JSON.stringify of the executor never show it.
  readonly #token: string
  private zoneId: number | undefined

  constructor (opts: LinodeExecutorOptions) {
    const { token, ...rest } = opts
    if (token === '') throw new ExecutorError('LinodeExecutor needs an API token', { retryable: false })
    this.#token = token
    this.o = {
      ...rest,
      apiBase: opts.apiBase.replace(/\/+$/, ''),
      baseDomain: opts.baseDomain.toLowerCase(),
      sleep: opts.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
      now: opts.now ?? Date.now,
      pollIntervalMs: opts.pollIntervalMs ?? 3000,
      maxPollMs: opts.maxPollMs ?? 15 * 60_000,
      maxAttempts: opts.maxAttempts ?? 5,
      requestTimeoutMs: opts.requestTimeoutMs ?? 30_000,
      maxRetryAfterMs: opts.maxRetryAfterMs ?? 60_000,
      healthTimeoutMs: opts.healthTimeoutMs ?? 5000,
      rootPassword: opts.rootPassword ?? defaultRootPassword,
      healthFetch: opts.healthFetch ?? defaultHealthFetch
    }
  }

  static fromConfig (config: Pick<Config, 'linode' | 'baseDomain'>, extra: Pick<LinodeExecutorOptions, 'userData'> & Partial<LinodeExecutorOptions>): LinodeExecutor {
    const { token, apiBase, region, image } = config.linode
    return new LinodeExecutor({ token, apiBase, region, image, baseDomain: config.baseDomain, ...extra })
  }

  async createOrAdopt (spec: ServerSpec): Promise<CreateResult> {
    const label = serverLabel(spec.slug)
    const tag = tenantTag(spec.tenantId)
    let lastError: unknown
    for (let attempt = 1; attempt <= this.o.maxAttempts; attempt++) {
      const existing = await this.findTenantServer(label, tag)
      if (existing !== undefined) return { server: toInfo(existing), adopted: true }
      try {
        const body = {
          type: spec.serverType,
          region: this.o.region,
          image: this.o.image,
          label,
          tags: ['ctfhive', tag],
          root_pass: this.o.rootPassword(),
          metadata: { user_data: this.o.userData(spec) },
          booted: true
        }
        const created = await this.call<Instance>('POST', '/linode/instances', { body, retry: 'rejected-only' })
        return { server: toInfo(created), adopted: false }
      } catch (err) {
        const taken = err instanceof LinodeApiError && err.status === 400 && err.reasons.some((r) => r.field === 'label' && /unique/i.test(r.reason))
        if (!(err instanceof LinodeApiError) || !(taken || err.ambiguous)) throw err
        // The create may have happened (or a twin did): look again before another try.
        lastError = err
        this.o.log?.warn({ label, status: err.status, attempt }, 'linode create unclear; looking the label up')
        if (!taken) await this.o.sleep(this.backoff(attempt))
      }
    }
    throw new ExecutorError(`could not create or find Linode ${label}: ${(lastError as Error).message}`, { retryable: true, cause: lastError })
  }

  /** This tenant's server by label; a label held without this tenant's tag is a hard error. */
  private async findTenantServer (label: string, tag: string): Promise<Instance | undefined> {
    const byLabel = (await this.list<Instance>('/linode/instances', { label })).filter((i) => i.label.toLowerCase() === label.toLowerCase())
    const mine = byLabel.find((i) => i.tags?.includes(tag) === true)
    if (mine !== undefined) return mine
    if (byLabel.length > 0) {
      throw new ExecutorError(`Linode label ${label} is held by server ${byLabel[0]!.id}, which is not tagged ${tag}; refusing to adopt it`, { retryable: false })
    }
    const byTag = (await this.list<Instance>('/linode/instances', { tags: tag })).filter((i) => i.tags?.includes(tag) === true)
    if (byTag.length > 0) {
      throw new ExecutorError(`tenant already has Linode ${byTag[0]!.id} labelled ${byTag[0]!.label}, not ${label}; refusing a second server`, { retryable: false })
    }
    return undefined
  }

  async getServer (serverId: string): Promise<ServerInfo | undefined> {
    const server = await this.getInstance(numericId(serverId, 'server'))
    return server === undefined ? undefined : toInfo(server)
  }

  /** Polls every pollIntervalMs until the server is `running` (booted; cloud-init runs on for minutes). */
  async waitUntilRunning (serverId: string, opts: { timeoutMs?: number, signal?: AbortSignal } = {}): Promise<ServerInfo> {
    const deadline = this.o.now() + (opts.timeoutMs ?? this.o.maxPollMs)
    for (;;) {
      const server = await this.getServer(serverId)
      if (server === undefined) throw new ExecutorError(`Linode ${serverId} no longer exists`, { retryable: false })
      if (server.status === 'running') return server
      if (server.status === 'billing_suspension') throw new ExecutorError(`Linode ${serverId} is suspended for billing`, { retryable: false })
      if (opts.signal?.aborted === true || this.o.now() + this.o.pollIntervalMs > deadline) {
        throw new ExecutorError(`Linode ${serverId} is still ${server.status}; gave up waiting for running`, { retryable: true })
      }
      await this.o.sleep(this.o.pollIntervalMs)
    }
  }

  async ensureDnsRecord (spec: ServerSpec, ipv4: string): Promise<string> {
    if (!IPV4.test(ipv4)) throw new ExecutorError(`invalid IPv4 address ${JSON.stringify(ipv4)}`, { retryable: false })
    const name = this.recordName(spec)
    const zone = await this.zone()
    for (let attempt = 1; ; attempt++) {
      const records = (await this.list<DnsRecord>(`/domains/${zone}/records`, { name, type: 'A' }))
        .filter((r) => r.type === 'A' && r.name.toLowerCase() === name)
      if (records.length > 0) {
        const keep = records.find((r) => r.target === ipv4) ?? records[0]!
        // Twins left by a lost create would round-robin visitors to a wrong address.
        for (const twin of records) if (twin !== keep) await this.deleteIgnoringMissing(`/domains/${zone}/records/${twin.id}`)
        if (keep.target !== ipv4) await this.call('PUT', `/domains/${zone}/records/${keep.id}`, { body: { target: ipv4, ttl_sec: 300 } })
        return String(keep.id)
      }
      try {
        const body = { type: 'A', name, target: ipv4, ttl_sec: 300 }
        const created = await this.call<DnsRecord>('POST', `/domains/${zone}/records`, { body, retry: 'rejected-only' })
        return String(created.id)
      } catch (err) {
        if (!(err instanceof LinodeApiError) || !err.ambiguous || attempt >= this.o.maxAttempts) throw err
        await this.o.sleep(this.backoff(attempt))
      }
    }
  }

  private recordName (spec: ServerSpec): string {
    const fqdn = spec.fqdn.toLowerCase()
    const suffix = `.${this.o.baseDomain}`
    if (!fqdn.endsWith(suffix) || fqdn.length === suffix.length) {
      throw new ExecutorError(`${spec.fqdn} is not under ${this.o.baseDomain}`, { retryable: false })
    }
    return fqdn.slice(0, -suffix.length)
  }

  private async zone (): Promise<number> {
    const id = await this.findZone()
    if (id === undefined) {
      throw new ExecutorError(`Linode has no DNS zone for ${this.o.baseDomain}; create it in the Domains API first`, { retryable: false })
    }
    return id
  }

  private async findZone (): Promise<number | undefined> {
    if (this.zoneId === undefined) {
      const zones = await this.list<{ id: number, domain: string }>('/domains', { domain: this.o.baseDomain })
      this.zoneId = zones.find((d) => d.domain.toLowerCase() === this.o.baseDomain)?.id
    }
    return this.zoneId
  }

  async checkHealth (fqdn: string): Promise<boolean> {
    try {
      const res = await this.o.healthFetch(`https://${fqdn}/healthcheck`, this.o.healthTimeoutMs)
      return res.status === 200
    } catch {
      return false
    }
  }

  /** The sealed admin credential the server publishes (see cloud-init.ts); undefined until it exists. */
  async fetchCredentialEnvelope (fqdn: string): Promise<string | undefined> {
    try {
      const res = await this.o.healthFetch(`https://${fqdn}${CREDENTIAL_PATH}`, this.o.healthTimeoutMs)
      return res.status === 200 && res.body.startsWith('{"v":') ? res.body.trim() : undefined
    } catch {
      return undefined
    }
  }

  async removeDnsRecord (recordId: string): Promise<void> {
    const id = numericId(recordId, 'DNS record')
    const zone = await this.findZone()
    if (zone !== undefined) await this.deleteIgnoringMissing(`/domains/${zone}/records/${id}`) // no zone: no record in it
  }

  async destroyServer (serverId: string): Promise<void> {
    const id = numericId(serverId, 'server')
    const server = await this.getInstance(id)
    if (server === undefined) return
    // A wrong id must never take down something that is not a tenant server.
    if (server.tags?.includes('ctfhive') !== true) {
      throw new ExecutorError(`Linode ${id} (${server.label}) is not tagged ctfhive; refusing to destroy it`, { retryable: false })
    }
    await this.deleteIgnoringMissing(`/linode/instances/${id}`)
  }

  private async getInstance (id: string): Promise<Instance | undefined> {
    try {
      return await this.call<Instance>('GET', `/linode/instances/${id}`)
    } catch (err) {
      if (err instanceof LinodeApiError && err.status === 404) return undefined
      throw err
    }
  }

  private async deleteIgnoringMissing (path: string): Promise<void> {
    try {
      await this.call('DELETE', path)
    } catch (err) {
      if (!(err instanceof LinodeApiError && err.status === 404)) throw err
    }
  }

  private async list<T> (path: string, filter: Record<string, string>): Promise<T[]> {
    const out: T[] = []
    for (let page = 1; ; page++) {
      const res = await this.call<Page<T>>('GET', `${path}?page=${page}&page_size=500`, { filter })
      out.push(...(res.data ?? []))
      if (page >= (res.pages ?? 1) || page >= 100) return out
    }
  }

  private backoff (attempt: number): number {
    // Exponential with equal jitter: 0.5–1 s, 1–2 s, 2–4 s … capped at 30 s.
    const ceiling = Math.min(1000 * 2 ** (attempt - 1), 30_000)
    return Math.round(ceiling / 2 + Math.random() * ceiling / 2)
  }

  private redact (text: string): string {
    return text.split(this.#token).join('[redacted]')
  }

  /** One API call with retries: 429 after Retry-After; 5xx and network errors only when `retry` is 'always'. */
  private async call<T = unknown> (method: string, path: string, opts: { body?: unknown, filter?: object, retry?: Retry } = {}): Promise<T> {
    const retry = opts.retry ?? 'always'
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}`, accept: 'application/json' }
    if (opts.body !== undefined) headers['content-type'] = 'application/json'
    if (opts.filter !== undefined) headers['x-filter'] = JSON.stringify(opts.filter)
    const op = `${method} ${path.split('?')[0]}`
    for (let attempt = 1; ; attempt++) {
      let error: LinodeApiError
      let delay = this.backoff(attempt)
      try {
        const res = await request(`${this.o.apiBase}${path}`, {
          method: method as Dispatcher.HttpMethod,
          headers,
          body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
          dispatcher: this.o.dispatcher,
          headersTimeout: this.o.requestTimeoutMs,
          bodyTimeout: this.o.requestTimeoutMs
        })
        const text = await res.body.text()
        let json: unknown
        try { json = text === '' ? {} : JSON.parse(text) } catch { json = undefined }
        if (res.statusCode >= 200 && res.statusCode < 300) {
          if (json === undefined) throw new LinodeApiError(`Linode API ${res.statusCode}: unreadable reply (${op})`, res.statusCode, [], true)
          return json as T
        }
        error = this.apiError(res.statusCode, json, op, res.headers['x-maintenance-mode'] !== undefined)
        if (res.statusCode === 429) {
          const after = Number(res.headers['retry-after'])
          if (Number.isFinite(after) && after >= 0) delay = after * 1000
          if (delay > this.o.maxRetryAfterMs) throw error
        } else if (!error.retryable || retry === 'rejected-only') {
          throw error
        }
      } catch (err) {
        if (err instanceof LinodeApiError) throw err
        const message = this.redact(err instanceof Error ? err.message : String(err))
        error = new LinodeApiError(`Linode API unreachable: ${message} (${op})`, 0, [], true, new Error(message))
        if (retry === 'rejected-only') throw error
      }
      if (attempt >= this.o.maxAttempts) throw error
      this.o.log?.warn({ op, status: error.status, attempt, delayMs: delay }, 'linode call failed; retrying')
      await this.o.sleep(delay)
    }
  }

  private apiError (status: number, json: unknown, op: string, maintenance: boolean): LinodeApiError {
    const raw = (json as { errors?: unknown } | undefined)?.errors
    const reasons: LinodeReason[] = Array.isArray(raw)
      ? raw.map((e: { field?: unknown, reason?: unknown }) => ({
          ...(typeof e.field === 'string' ? { field: e.field } : {}),
          reason: this.redact(String(e.reason ?? 'unknown error'))
        }))
      : []
    const detail = reasons.length > 0
      ? reasons.map((r) => r.field !== undefined ? `${r.field}: ${r.reason}` : r.reason).join('; ')
      : (maintenance ? 'Linode is in maintenance' : 'no error detail')
    const retryable = status === 429 || status === 408 || status >= 500
    return new LinodeApiError(`Linode API ${status}: ${detail} (${op})`, status, reasons, retryable)
  }
}
