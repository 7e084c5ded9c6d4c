// One attempt of one job, as its steps see it: the job, the attempt's abort signal, and the
// store writes the steps make. No write happens once the signal is aborted (shutdown or the
// wall-clock cap): the lease may already be someone else's, and an abandoned attempt must not
// record steps, or a finished job, over the attempt that took the job next. Every write also
// checks, with the job row locked, that the lease is still this attempt's: a worker frozen past
// its lease (a paused VM) finds the job taken and writes nothing.
import type { Job, JobPatch, Store, StoreOps, Tenant, TenantPatch } from '../store/store.ts'
import { appendAudit } from './audit.ts'

/** The job fields that end a job: its lease is given up with it. */
export function ended (status: 'done' | 'canceled'): JobPatch {
  return { status, leaseOwner: null, leaseUntil: 0, lastError: null }
}

/**
 * When a job enters a step now: always after it was queued, even within its millisecond, as a
 * step time no later than that marks a job an older release moved (jobs.ts, the health check's
 * window).
 */
export function stepTime (job: Job, now: number): number {
  return Math.max(now, Date.parse(job.createdAt) + 1)
}

/** More writes in a step's transaction, given the tenant as it was read (and locked) there. */
export type AfterCommit = (tx: StoreOps, tenant: Tenant | undefined) => Promise<unknown>

/** Another worker holds the job now: this attempt must not write. */
export class LeaseLost extends Error {}

export class Attempt {
  readonly job: Job
  readonly signal: AbortSignal
  private readonly store: Store
  private readonly auditSecret: string

  constructor (opts: { job: Job, signal: AbortSignal, store: Store, auditSecret: string }) {
    this.job = opts.job
    this.signal = opts.signal
    this.store = opts.store
    this.auditSecret = opts.auditSecret
  }

  /** The store's clock, which every job time keeps to. */
  now (): number {
    return this.store.now()
  }

  /** A store transaction of this attempt; it throws the abort reason instead of writing once aborted. */
  transaction<T> (fn: (tx: StoreOps) => Promise<T>): Promise<T> {
    return this.leased(async (tx) => {
      // Checked inside: a transaction may wait its turn (group commit) while the abort lands.
      this.signal.throwIfAborted()
      return fn(tx)
    })
  }

  /** A transaction that writes only while this attempt still holds the job's lease (LeaseLost otherwise). */
  leased<T> (fn: (tx: StoreOps) => Promise<T>): Promise<T> {
    return this.store.transaction(async (tx) => {
      // Tenant row first, then the job's: the order a webhook takes them in (it locks the
      // tenant, then cancels its queued jobs), so the two never wait on each other in a cycle.
      await tx.getTenantForUpdate(this.job.tenant)
      const now = await tx.getJobForUpdate(this.job.id)
      // The owner alone is not enough: this same worker may have claimed the job again after
      // the lease lapsed. Each claim sets a later lease_until, so the pair names one claim.
      if (now === undefined || now.leaseOwner !== this.job.leaseOwner || now.leaseUntil !== this.job.leaseUntil) {
        throw new LeaseLost(`job ${this.job.id} is held by ${now?.leaseOwner ?? 'nobody'} now, not ${this.job.leaseOwner ?? 'nobody'}`)
      }
      return fn(tx)
    })
  }

  /** Appends an audit entry about this job. */
  audit (tx: StoreOps, action: string, detail: Record<string, unknown>): Promise<unknown> {
    return appendAudit(tx, this.auditSecret, this.job.tenant, action, { job: this.job.id, ...detail })
  }

  /**
   * Commits a job change together with the tenant's new facts and the audit entry. `tenantPatch`
   * may be worked out from the tenant as it is now, read (and locked) in the transaction; `then`
   * writes more in it, given that tenant (as it was before the patch).
   */
  commit (jobPatch: JobPatch, tenantPatch: TenantPatch | ((tenant: Tenant | undefined) => TenantPatch), action: string, detail: Record<string, unknown>, then?: AfterCommit): Promise<void> {
    return this.transaction(async (tx) => {
      await tx.updateJob(this.job.id, jobPatch)
      const tenant = typeof tenantPatch === 'function' || then !== undefined ? await tx.getTenantForUpdate(this.job.tenant) : undefined
      const patch = typeof tenantPatch === 'function' ? tenantPatch(tenant) : tenantPatch
      if (Object.keys(patch).length > 0) await tx.updateTenant(this.job.tenant, patch)
      await this.audit(tx, action, detail)
      await then?.(tx, tenant)
    })
  }

  /** A finished step: the next attempt resumes after it. */
  async commitStep (step: string, tenantPatch: TenantPatch, action: string, detail: Record<string, unknown>, then?: AfterCommit): Promise<void> {
    const stepAt = stepTime(this.job, this.now())
    await this.commit({ step, stepAt }, tenantPatch, action, detail, then)
    this.job.step = step
    this.job.stepAt = stepAt
  }

  finish (status: 'done' | 'canceled', tenantPatch: TenantPatch | ((tenant: Tenant | undefined) => TenantPatch), action: string, detail: Record<string, unknown>): Promise<void> {
    return this.commit(ended(status), tenantPatch, action, detail)
  }
}
