// FakeExecutor: the default when LINODE_API_TOKEN is empty. In memory and instant, so a
// development checkout goes live at once; scriptable to fail, for tests of the job runner.
import { ExecutorError, type CreateResult, type Executor, type ServerInfo, type ServerSpec } from './executor.ts'

export type FakeStep = 'create' | 'get' | 'dns' | 'health' | 'removeDns' | 'destroy'

interface FakeServer extends ServerInfo {
  tenantId: string
}

export class FakeExecutor implements Executor {
  readonly name = 'fake'
  readonly servers = new Map<string, FakeServer>()
  readonly records = new Map<string, { name: string, target: string }>()
  /** How many times each step ran, successful or not. */
  readonly calls: Record<FakeStep, number> = { create: 0, get: 0, dns: 0, health: 0, removeDns: 0, destroy: 0 }
  private readonly failures = new Map<FakeStep, Array<Error>>()
  private nextId = 1
  /** Health answers false this many more times before true (a server still booting). */
  unhealthyChecks = 0

  /** The next `times` calls of `step` throw `error` (a retryable ExecutorError by default). */
  failNext (step: FakeStep, times = 1, error: Error = new ExecutorError(`fake ${step} failure`, { retryable: true })): void {
    const list = this.failures.get(step) ?? []
    for (let i = 0; i < times; i++) list.push(error)
    this.failures.set(step, list)
  }

  clearFailures (): void {
    this.failures.clear()
  }

  private maybeFail (step: FakeStep): void {
    this.calls[step]++
    const err = this.failures.get(step)?.shift()
    if (err !== undefined) throw err
  }

  async createOrAdopt (spec: ServerSpec): Promise<CreateResult> {
    this.maybeFail('create')
    for (const server of this.servers.values()) {
      if (server.tenantId === spec.tenantId) return { server: { ...server }, adopted: true }
    }
    const id = String(this.nextId++)
    const server: FakeServer = { id, label: `ctf-${spec.slug}`, status: 'running', ipv4: `192.0.2.${Number(id) % 250 + 1}`, tenantId: spec.tenantId }
    this.servers.set(id, server)
    return { server: { id, label: server.label, status: server.status, ipv4: server.ipv4 }, adopted: false }
  }

  async getServer (serverId: string): Promise<ServerInfo | undefined> {
    this.maybeFail('get')
    const s = this.servers.get(serverId)
    return s === undefined ? undefined : { id: s.id, label: s.label, status: s.status, ipv4: s.ipv4 }
  }

  async ensureDnsRecord (spec: ServerSpec, ipv4: string): Promise<string> {
    this.maybeFail('dns')
    for (const [id, r] of this.records) {
      if (r.name === spec.slug) {
        r.target = ipv4
        return id
      }
    }
    const id = `rec-${this.records.size + 1}-${spec.slug}`
    this.records.set(id, { name: spec.slug, target: ipv4 })
    return id
  }

  async checkHealth (_fqdn: string): Promise<boolean> {
    this.maybeFail('health')
    if (this.unhealthyChecks > 0) {
      this.unhealthyChecks--
      return false
    }
    return true
  }

  async removeDnsRecord (recordId: string): Promise<void> {
    this.maybeFail('removeDns')
    this.records.delete(recordId)
  }

  async destroyServer (serverId: string): Promise<void> {
    this.maybeFail('destroy')
    this.servers.delete(serverId)
  }
}
