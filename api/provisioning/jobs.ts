// The provisioning job runner. Jobs live in the store; a worker leases one, runs its steps
// and commits each finished step together with its effect and audit entry, so a crashed
// worker's job is picked up again after the lease lapses and resumes after its last step.
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import { getPlan } from '../plans.ts'
import type { Job, JobPatch, Store, Tenant, TenantPatch } from '../store/store.ts'
import { appendAudit } from './audit.ts'
import { ExecutorError, type Executor, type ServerSpec } from './executor.ts'

export type RunnerConfig = Pick<Config, 'auditSecret' | 'baseDomain' | 'linode' | 'provisionAttemptTimeoutS' | 'provisionMaxAttempts'>

export interface JobRunnerOptions {
  store: Store
  executor: Executor
  config: RunnerConfig
  log: Logger
  owner?: string
  /** Between server-status and health polls. */
  pollIntervalMs?: number
  /** How often an idle worker looks for due jobs (other processes may have queued some). */
  idleIntervalMs?: number
  concurrency?: number
  /** Delay before attempt `n + 1` after `n` failed attempts. */
  backoffMs?: (failedAttempts: number) => number
  /** Lease on a claimed job; default the attempt cap + 30 s. */
  leaseMs?: number
}

const defaultBackoff = (n: number): number => Math.min(30_000 * 2 ** (n - 1), 15 * 60_000)

export function serverSpecFor (tenant: Tenant, config: Pick<Config, 'baseDomain' | 'linode'>): ServerSpec {
  const fqdn = `${tenant.slug}.${config.baseDomain}`
  return {
    tenantId: tenant.id,
    slug: tenant.slug,
    fqdn,
    plan: tenant.plan,
    serverType: config.linode.plan !== '' ? config.linode.plan : (getPlan(tenant.plan)?.serverType ?? 'g6-standard-2'),
    tenantName: tenant.name,
    // CTFd's admin needs an address; the email is optional at checkout.
    adminEmail: tenant.email !== '' ? tenant.email : `admin@${fqdn}`
  }
}

function describe (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

class AttemptTimeout extends ExecutorError {}
/** The worker is shutting down: the attempt is abandoned, not failed; its lease is given back. */
class Shutdown extends Error {}

export class JobRunner {
  readonly owner: string
  private readonly opts: Required<Omit<JobRunnerOptions, 'owner' | 'leaseMs'>>
  private readonly leaseOverride: number | undefined
  private active = 0
  private draining: Promise<void> | null = null
  private timer: NodeJS.Timeout | null = null
  private stopped = true
  private readonly running = new Set<Promise<void>>()
  private readonly controllers = new Set<AbortController>()
  private readonly waiters = new Map<string, Set<() => void>>()

  constructor (opts: JobRunnerOptions) {
    this.owner = opts.owner ?? `worker-${process.pid}-${randomUUID().slice(0, 8)}`
    this.leaseOverride = opts.leaseMs
    this.opts = {
      pollIntervalMs: 3000,
      idleIntervalMs: 5000,
      concurrency: 2,
      backoffMs: defaultBackoff,
      ...opts
    }
  }

  get leaseMs (): number {
    return this.leaseOverride ?? this.opts.config.provisionAttemptTimeoutS * 1000 + 30_000
  }

  start (): void {
    if (!this.stopped) return
    this.stopped = false
    this.kick()
  }

  /** Looks for due jobs now (after a webhook queued one). */
  kick (): void {
    if (this.stopped) return
    this.draining ??= this.drain().finally(() => {
      this.draining = null
      this.schedule()
    })
  }

  /** Resolves when a job of this tenant ends its attempt, or after `ms`. */
  waitForTenant (tenantId: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const set = this.waiters.get(tenantId) ?? new Set()
      const done = (): void => {
        clearTimeout(timer)
        set.delete(done)
        if (set.size === 0) this.waiters.delete(tenantId)
        resolve()
      }
      const timer = setTimeout(done, ms)
      set.add(done)
      this.waiters.set(tenantId, set)
    })
  }

  /** Stops taking jobs, waits for running attempts, and gives their leases back. */
  async stop (): Promise<void> {
    this.stopped = true
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    for (const c of this.controllers) c.abort(new Shutdown('the worker is stopping'))
    await this.draining
    await Promise.allSettled([...this.running])
    await this.opts.store.releaseLeases(this.owner).catch(() => 0)
  }

  /** Claims and runs due jobs until none is left or the concurrency is used up. */
  private async drain (): Promise<void> {
    while (!this.stopped && this.active < this.opts.concurrency) {
      let job: Job | undefined
      try {
        job = await this.opts.store.claimNextJob(this.owner, Date.now(), this.leaseMs)
      } catch (err) {
        this.opts.log.error({ err }, 'could not claim a job')
        return
      }
      if (job === undefined) return
      this.active++
      const p = this.runJob(job).finally(() => {
        this.active--
        this.running.delete(p)
        this.notify(job.tenant)
        this.kick()
      })
      this.running.add(p)
    }
  }

  private schedule (): void {
    if (this.stopped) return
    if (this.timer !== null) clearTimeout(this.timer)
    const wake = (): void => { this.timer = null; this.kick() }
    this.opts.store.nextJobDueAt().then((due) => {
      if (this.stopped) return
      const delay = due === undefined ? this.opts.idleIntervalMs : Math.max(0, Math.min(due - Date.now(), this.opts.idleIntervalMs))
      if (this.timer !== null) clearTimeout(this.timer)
      this.timer = setTimeout(wake, delay + 5)
      this.timer.unref()
    }, () => {
      this.timer = setTimeout(wake, this.opts.idleIntervalMs)
      this.timer.unref()
    })
  }

  private notify (tenantId: string): void {
    for (const done of [...(this.waiters.get(tenantId) ?? [])]) done()
  }

  /** Runs one attempt of a job under the wall-clock cap. Exposed for tests. */
  async runJob (job: Job): Promise<void> {
    const { config, log } = this.opts
    const controller = new AbortController()
    this.controllers.add(controller)
    const capMs = config.provisionAttemptTimeoutS * 1000
    let timer: NodeJS.Timeout | undefined
    const stopped = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        controller.abort(new AttemptTimeout(`the attempt exceeded its ${config.provisionAttemptTimeoutS} s cap`, { retryable: true }))
      }, capMs)
      controller.signal.addEventListener('abort', () => { reject(controller.signal.reason) }, { once: true })
    })
    stopped.catch(() => {})
    try {
      const work = job.kind === 'provision' ? this.provision(job, controller.signal) : this.deprovision(job)
      await Promise.race([work, stopped])
    } catch (err) {
      if (err instanceof Shutdown) {
        log.info({ tenant: job.tenant, job: job.id, step: job.step }, 'attempt abandoned at shutdown; it resumes elsewhere')
      } else {
        await this.failAttempt(job, err).catch((e: unknown) => log.error({ err: e, job: job.id }, 'could not record a failed attempt'))
      }
    } finally {
      clearTimeout(timer)
      this.controllers.delete(controller)
      controller.abort()
    }
  }

  private async failAttempt (job: Job, err: unknown): Promise<void> {
    const { store, config, log } = this.opts
    const attempts = job.attempts + 1
    const message = describe(err)
    const retryable = !(err instanceof ExecutorError) || err.retryable
    const final = !retryable || attempts >= config.provisionMaxAttempts
    log.warn({ tenant: job.tenant, job: job.id, kind: job.kind, step: job.step, attempts, final, reason: message }, 'job attempt failed')
    await store.transaction(async (tx) => {
      if (final) {
        await tx.updateJob(job.id, { status: 'failed', attempts, lastError: message, leaseOwner: null, leaseUntil: 0 })
        if (job.kind === 'provision') await tx.updateTenant(job.tenant, { infra: 'failed', error: `Provisioning failed: ${message}` })
        await appendAudit(tx, config.auditSecret, job.tenant, `${job.kind}.failed`, { job: job.id, step: job.step, attempts, reason: message })
      } else {
        const delay = this.opts.backoffMs(attempts)
        await tx.updateJob(job.id, { status: 'queued', attempts, lastError: message, leaseOwner: null, leaseUntil: 0, runAfter: Date.now() + delay })
        await appendAudit(tx, config.auditSecret, job.tenant, `${job.kind}.attempt_failed`, { job: job.id, step: job.step, attempts, reason: message, retry_in_ms: delay })
      }
    })
  }

  /** Commits a job change together with the tenant's new facts and the audit entry. */
  private async commit (job: Job, jobPatch: JobPatch, tenantPatch: TenantPatch, action: string, detail: Record<string, unknown>): Promise<void> {
    const { store, config } = this.opts
    await store.transaction(async (tx) => {
      await tx.updateJob(job.id, jobPatch)
      if (Object.keys(tenantPatch).length > 0) await tx.updateTenant(job.tenant, tenantPatch)
      await appendAudit(tx, config.auditSecret, job.tenant, action, { job: job.id, ...detail })
    })
  }

  /** A finished step: the next attempt resumes after it. */
  private async commitStep (job: Job, step: string, tenantPatch: TenantPatch, action: string, detail: Record<string, unknown>): Promise<void> {
    await this.commit(job, { step }, tenantPatch, action, detail)
    job.step = step
  }

  private finish (job: Job, status: 'done' | 'canceled', tenantPatch: TenantPatch, action: string, detail: Record<string, unknown>): Promise<void> {
    return this.commit(job, { status, leaseOwner: null, leaseUntil: 0, lastError: null }, tenantPatch, action, detail)
  }

  private async pollUntil (signal: AbortSignal, check: () => Promise<boolean>): Promise<void> {
    while (!(await check())) {
      if (signal.aborted) throw signal.reason
      try {
        await sleep(this.opts.pollIntervalMs, undefined, { signal })
      } catch {
        throw signal.reason
      }
    }
  }

  private async provision (job: Job, signal: AbortSignal): Promise<void> {
    const { store, executor, config } = this.opts
    const tenant = await store.getTenant(job.tenant)
    if (tenant === undefined || tenant.billing === 'canceled') {
      await this.finish(job, 'canceled', {}, 'provision.skipped', { reason: tenant === undefined ? 'tenant removed' : 'tenant canceled' })
      return
    }
    const spec = serverSpecFor(tenant, config)
    let serverId = tenant.serverId
    let ipv4 = tenant.ipv4
    if (job.step === '' || serverId === null) {
      const { server, adopted } = await executor.createOrAdopt(spec)
      serverId = server.id
      ipv4 = server.ipv4
      await this.commitStep(job, 'created', { serverId, ipv4 }, adopted ? 'server.adopted' : 'server.created',
        { server: server.id, label: server.label, type: spec.serverType, status: server.status })
    }
    if (job.step === 'created') {
      let status = 'unknown'
      await this.pollUntil(signal, async () => {
        const s = await executor.getServer(serverId!)
        if (s === undefined) throw new ExecutorError(`server ${serverId} disappeared`, { retryable: true })
        status = s.status
        ipv4 = s.ipv4 ?? ipv4
        return s.status === 'running'
      })
      await this.commitStep(job, 'running', { ipv4 }, 'server.running', { server: serverId, status, ipv4 })
    }
    if (job.step === 'running') {
      if (ipv4 === null) throw new ExecutorError('the server has no IPv4 address', { retryable: true })
      const recordId = await executor.ensureDnsRecord(spec, ipv4)
      await this.commitStep(job, 'dns', { dnsRecordId: recordId }, 'dns.record', { record: recordId, name: spec.fqdn, target: ipv4 })
    }
    if (job.step === 'dns') {
      await this.pollUntil(signal, () => executor.checkHealth(spec.fqdn))
      await this.commitStep(job, 'healthy', {}, 'health.ok', { url: `https://${spec.fqdn}/healthcheck` })
    }
    const now = new Date().toISOString()
    await this.finish(job, 'done', { infra: 'ready', error: null, readyAt: now }, 'provision.ready', { fqdn: spec.fqdn })
  }

  private async deprovision (job: Job): Promise<void> {
    const { store, executor } = this.opts
    const tenant = await store.getTenant(job.tenant)
    if (tenant === undefined) {
      await this.finish(job, 'canceled', {}, 'teardown.skipped', { reason: 'tenant removed' })
      return
    }
    if (tenant.billing !== 'canceled') {
      await this.finish(job, 'canceled', {}, 'teardown.skipped', { reason: 'tenant is no longer canceled' })
      return
    }
    const provisioning = await store.listJobs({ tenant: job.tenant })
    if (provisioning.some((j) => j.kind === 'provision' && (j.status === 'queued' || j.status === 'running'))) {
      // Never tear down under a live provisioning attempt: it may be creating the server now.
      throw new ExecutorError('a provisioning job is still live for this tenant', { retryable: true })
    }
    if (job.step === '') {
      if (tenant.dnsRecordId !== null) await executor.removeDnsRecord(tenant.dnsRecordId)
      await this.commitStep(job, 'dns_removed', { dnsRecordId: null }, 'dns.removed', { record: tenant.dnsRecordId })
    }
    if (job.step === 'dns_removed') {
      if (tenant.serverId !== null) await executor.destroyServer(tenant.serverId)
      await this.commitStep(job, 'destroyed', { serverId: null, ipv4: null }, 'server.destroyed', { server: tenant.serverId })
    }
    await this.finish(job, 'done', { infra: 'deprovisioned' }, 'teardown.done', {})
  }
}
