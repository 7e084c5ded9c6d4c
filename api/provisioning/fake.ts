// FakeExecutor: the default when LINODE_API_TOKEN is empty. In memory and instant, so a
// development checkout goes live at once; scriptable to fail or to hold a call, for tests of
// the job runner.
import { ExecutorError, type CreateResult, type Executor, type ServerInfo, type ServerSpec } from './executor.ts'

export type FakeStep = 'create' | 'get' | 'boot' | 'resize' | 'dns' | 'health' | 'removeDns' | 'destroy' | 'find'

interface FakeServer extends ServerInfo {
  tenantId: string
  type: string
}

/** A call held in flight, as a slow provider would: tests decide when it goes on. */
export interface FakeHold {
  /** Resolves with the held call's signal once the call has started. */
  readonly reached: Promise<AbortSignal | undefined>
  /** Lets the held call go on (a no-op once it has ended). */
  release (): void
  /** How the held call ended: released, or aborted (it then rejected with the signal's reason). */
  readonly ended: 'released' | 'aborted' | undefined
}

class Hold implements FakeHold {
  readonly reached: Promise<AbortSignal | undefined>
  ended: 'released' | 'aborted' | undefined
  private arrive!: (signal: AbortSignal | undefined) => void
  private go: () => void = () => {}
  private released = false

  constructor () {
    this.reached = new Promise((resolve) => { this.arrive = resolve })
  }

  release (): void {
    this.released = true
    this.go()
  }

  /** Waits for release(), or rejects with the signal's reason when it aborts first. */
  wait (signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.ended = 'aborted'
        reject(signal!.reason)
      }
      this.go = () => {
        if (this.ended !== undefined) return
        signal?.removeEventListener('abort', onAbort)
        this.ended = 'released'
        resolve()
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.arrive(signal)
      if (this.released) this.go()
    })
  }
}

function info (s: FakeServer): ServerInfo {
  return { id: s.id, label: s.label, status: s.status, ipv4: s.ipv4, type: s.type }
}

export class FakeExecutor implements Executor {
  readonly name = 'fake'
  readonly servers = new Map<string, FakeServer>()
  readonly records = new Map<string, { name: string, target: string }>()
  /** How many times each step ran, successful or not. */
  readonly calls: Record<FakeStep, number> = { create: 0, get: 0, boot: 0, resize: 0, dns: 0, health: 0, removeDns: 0, destroy: 0, find: 0 }
  private readonly failures = new Map<FakeStep, Array<Error>>()
  private readonly holds = new Map<FakeStep, Hold[]>()
  private nextId = 1
  /** Health answers false this many more times before true (a server still booting). */
  unhealthyChecks = 0
  /** The status a new server starts in: `offline` plays one whose boot never ran. */
  newServerStatus = 'running'

  /** The next `times` calls of `step` throw `error` (a retryable ExecutorError by default). */
  failNext (step: FakeStep, times = 1, error: Error = new ExecutorError(`fake ${step} failure`, { retryable: true })): void {
    const list = this.failures.get(step) ?? []
    for (let i = 0; i < times; i++) list.push(error)
    this.failures.set(step, list)
  }

  clearFailures (): void {
    this.failures.clear()
  }

  /** The next call of `step` waits, before doing anything, until released or aborted. */
  holdNext (step: FakeStep): FakeHold {
    const hold = new Hold()
    this.holds.set(step, [...(this.holds.get(step) ?? []), hold])
    return hold
  }

  private async enter (step: FakeStep, signal: AbortSignal | undefined): Promise<void> {
    this.calls[step]++
    signal?.throwIfAborted()
    await this.holds.get(step)?.shift()?.wait(signal)
    const err = this.failures.get(step)?.shift()
    if (err !== undefined) throw err
  }

  async createOrAdopt (spec: ServerSpec, signal?: AbortSignal): Promise<CreateResult> {
    await this.enter('create', signal)
    // As LinodeExecutor: the label and the tenant together are the key; a clash on either one
    // is refused for good, never adopted, or the tests would pass where Linode fails.
    const label = `ctf-${spec.slug}`
    const holder = [...this.servers.values()].find((s) => s.label.toLowerCase() === label.toLowerCase())
    if (holder !== undefined && holder.tenantId !== spec.tenantId) {
      throw new ExecutorError(`fake label ${label} is held by server ${holder.id} of another tenant; refusing to adopt it`, { retryable: false })
    }
    if (holder !== undefined) return { server: info(holder), adopted: true }
    const other = [...this.servers.values()].find((s) => s.tenantId === spec.tenantId)
    if (other !== undefined) {
      throw new ExecutorError(`tenant already has fake server ${other.id} labelled ${other.label}, not ${label}; refusing a second server`, { retryable: false })
    }
    const id = String(this.nextId++)
    const server: FakeServer = { id, label, status: this.newServerStatus, ipv4: `192.0.2.${Number(id) % 250 + 1}`, type: spec.serverType, tenantId: spec.tenantId }
    this.servers.set(id, server)
    return { server: info(server), adopted: false }
  }

  async getServer (serverId: string, signal?: AbortSignal): Promise<ServerInfo | undefined> {
    await this.enter('get', signal)
    const s = this.servers.get(serverId)
    return s === undefined ? undefined : info(s)
  }

  /** Instant, like every step here: the server runs as `type` at once. */
  async resizeServer (serverId: string, type: string, signal?: AbortSignal): Promise<void> {
    await this.enter('resize', signal)
    const s = this.servers.get(serverId)
    if (s === undefined) throw new ExecutorError(`fake server ${serverId} does not exist`, { retryable: false })
    s.type = type
  }

  async bootServer (serverId: string, signal?: AbortSignal): Promise<boolean> {
    await this.enter('boot', signal)
    const s = this.servers.get(serverId)
    if (s === undefined || s.status !== 'offline') return false
    s.status = 'running'
    return true
  }

  async ensureDnsRecord (spec: ServerSpec, ipv4: string, signal?: AbortSignal): Promise<string> {
    await this.enter('dns', signal)
    for (const [id, r] of this.records) {
      if (r.name === spec.fqdn) {
        r.target = ipv4
        return id
      }
    }
    const id = `rec-${this.records.size + 1}-${spec.slug}`
    this.records.set(id, { name: spec.fqdn, target: ipv4 })
    return id
  }

  async checkHealth (_fqdn: string, signal?: AbortSignal): Promise<boolean> {
    await this.enter('health', signal)
    if (this.unhealthyChecks > 0) {
      this.unhealthyChecks--
      return false
    }
    return true
  }

  async findServers (spec: ServerSpec, signal?: AbortSignal): Promise<ServerInfo[]> {
    await this.enter('find', signal)
    return [...this.servers.values()].filter((s) => s.tenantId === spec.tenantId).map(info)
  }

  async findDnsRecords (spec: ServerSpec, signal?: AbortSignal): Promise<string[]> {
    await this.enter('find', signal)
    return [...this.records].filter(([, r]) => r.name === spec.fqdn).map(([id]) => id)
  }

  async removeDnsRecord (_spec: ServerSpec, recordId: string, signal?: AbortSignal): Promise<void> {
    await this.enter('removeDns', signal)
    this.records.delete(recordId)
  }

  async destroyServer (serverId: string, signal?: AbortSignal): Promise<void> {
    await this.enter('destroy', signal)
    this.servers.delete(serverId)
  }
}
