// The provisioning job runner. Jobs live in the store; a worker leases one, runs its steps
// and commits each finished step together with its effect and audit entry, so a crashed
// worker's job is picked up again after the lease lapses and resumes after its last step.
// An attempt ends whole: at shutdown or at its wall-clock cap its signal cancels the executor
// call in flight and refuses further writes (attempt.ts), and runJob returns once it settled.
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import type { Job, Store, StoreOps, Tenant } from '../store/store.ts'
import { Attempt, LeaseLost } from './attempt.ts'
import { appendAudit } from './audit.ts'
import { ExecutorError, type Executor, type ServerSpec } from './executor.ts'
import { resizeWaitEnds, runResize } from './resize.ts'
import { runProvision, serverSpecFor } from './provision.ts'
import { runTeardown } from './teardown.ts'

export type RunnerConfig = Pick<Config, 'auditSecret' | 'baseDomain' | 'deprovisionGraceHours' | 'linode' | 'provisionAttemptTimeoutS' | 'provisionHealthTimeoutS' | 'provisionMaxAttempts'>

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
  /**
   * How long a server may stay off (`offline`) before the job boots it. Linode can show a
   * server off for a few seconds before a boot it started itself.
   */
  bootGraceMs?: number
  /** Lease on a claimed job; default the attempt cap + 30 s. */
  leaseMs?: number
  /**
   * How long a new server waits for Stripe to state the tenant's plan (planWait below), from
   * the job's creation; default 10 minutes. And how often it looks again; default 10 s.
   */
  planWaitMs?: number
  planPollMs?: number
  /**
   * How long Linode may take to run a resized server as its new type, from the request (default
   * 4 hours: a migration copies the whole disk); and how often a resize queued while its tenant
   * is being provisioned looks again (default 30 s).
   */
  resizeWaitMs?: number
  resizePostponeMs?: number
  /**
   * How many jobs that only wait for their new server's health check may run at once besides
   * the `concurrency` slots (default 32): the wait is mostly sleep, and held in a creation slot
   * it would keep new buyers' servers from being made for the whole health window.
   */
  healthConcurrency?: number
  /**
   * How long a job may go on being refused by the provider for now (a rate limit, maintenance),
   * counted from when it entered its step, before it fails anyway (default 6 hours; not a
   * teardown, which keeps trying). Such refusals count no attempt.
   */
  rateLimitBudgetMs?: number
}

const defaultBackoff = (n: number): number => Math.min(30_000 * 2 ** (n - 1), 15 * 60_000)
/**
 * Waits between tries to record an attempt's end while the store fails (a database restart,
 * a failover): 1 s, doubling, at most 30 s, for as long as the attempt's lease runs.
 */
const RECORD_RETRY_FIRST_MS = 1000
const RECORD_RETRY_MAX_MS = 30_000
/** Health polls a job resumed past its health deadline still makes: one blip must not fail it. */
const HEALTH_GRACE_POLLS = 3
/** When a job waiting for its health check finds the health-wait bound full, it looks again this much later. */
const HEALTH_FULL_WAIT_MS = 15_000

/**
 * An error's message as a job's last_error: control characters other than tab and newline (a
 * NUL from a provider's reason text) shown as their codes, as PostgreSQL's text refuses a NUL
 * and the failure would otherwise never be recorded.
 */
function describe (err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/**
 * The attempt hit its wall-clock cap: a failed attempt, retried after the backoff; while the
 * health check's own deadline has not passed, the job goes on uncounted (continueAttempt).
 */
class AttemptTimeout extends ExecutorError {}
/** The worker is shutting down: the attempt is abandoned, not failed; its lease is given back. */
class Shutdown extends Error {}

export class JobRunner {
  readonly owner: string
  private readonly opts: Required<Omit<JobRunnerOptions, 'owner' | 'leaseMs'>>
  private readonly leaseOverride: number | undefined
  private active = 0
  /** Attempts moved out of the creation slots to wait for a health check (healthConcurrency). */
  private healthActive = 0
  /**
   * Epoch ms (store clock) before which no job is claimed: the provider asked this process to
   * wait (Retry-After). Every job would only meet the same refusal, and use its turn up.
   */
  private notBefore = 0
  private draining: Promise<void> | null = null
  private timer: NodeJS.Timeout | null = null
  private stopped = true
  /** Set by stop(): no job of this worker will end, so nobody should wait for one. */
  private halted = false
  /** Aborted by stop(): ends the waits between tries to record an attempt's end. */
  private halting = new AbortController()
  /** Claims failed in a row (the store refusing writes: a full disk, a read-only standby). */
  private claimFailures = 0
  /** A kick came while a drain ran: its reads may have been made before the job it announces. */
  private kickedMeanwhile = false
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
      bootGraceMs: 30_000,
      backoffMs: defaultBackoff,
      planWaitMs: 10 * 60_000,
      planPollMs: 10_000,
      resizeWaitMs: 4 * 3_600_000,
      resizePostponeMs: 30_000,
      healthConcurrency: 32,
      rateLimitBudgetMs: 6 * 3_600_000,
      ...opts
    }
  }

  get leaseMs (): number {
    return this.leaseOverride ?? this.opts.config.provisionAttemptTimeoutS * 1000 + 30_000
  }

  start (): void {
    if (!this.stopped) return
    this.stopped = false
    this.halted = false
    this.halting = new AbortController()
    this.kick()
  }

  /** Looks for due jobs now (after a webhook queued one). */
  kick (): void {
    if (this.stopped) return
    if (this.draining !== null) {
      this.kickedMeanwhile = true
      return
    }
    this.draining = this.drain().then((wait) => {
      this.draining = null
      // Looked again at once rather than after `wait`: the kick's job may be due now.
      const again = this.kickedMeanwhile
      this.kickedMeanwhile = false
      this.schedule(again ? 0 : wait)
    })
  }

  /** Resolves when a job of this tenant ends its attempt, or after `ms`; at once after stop() has begun. */
  waitForTenant (tenantId: string, ms: number): Promise<void> {
    // Callers read the tenant after waiting, so answering now gives the state as it stands.
    if (this.halted) return Promise.resolve()
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

  /**
   * Stops taking jobs, aborts running attempts and waits until nothing of them runs any more
   * (their executor calls are cancelled), then gives their leases back.
   */
  async stop (): Promise<void> {
    this.stopped = true
    this.halted = true
    // A webhook waiting for its tenant's job would hold the drain for WEBHOOK_WAIT_MS.
    for (const set of [...this.waiters.values()]) for (const done of [...set]) done()
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    this.halting.abort()
    for (const c of this.controllers) c.abort(new Shutdown('the worker is stopping'))
    await this.draining
    await Promise.allSettled([...this.running])
    await this.opts.store.releaseLeases(this.owner).catch(() => 0)
  }

  /**
   * Claims and runs due jobs until none is left or the concurrency is used up; answers how long
   * to wait before looking again. Never sooner than the idle interval when a look would find
   * nothing new: every slot busy (a job that ends looks at once), a job due that another
   * worker took first, or a claim that failed (the store refusing writes: a full disk, a
   * read-only standby), then backing off to a minute rather than retrying, and logging,
   * hundreds of times a second.
   */
  private async drain (): Promise<number> {
    const idle = this.opts.idleIntervalMs
    while (!this.stopped && this.active < this.opts.concurrency) {
      const held = this.notBefore - this.now()
      if (held > 0) return held + 5
      let job: Job | undefined
      try {
        // A claim is a write transaction (on SQLite it waits out another process's write
        // lock, blocking the event loop): made only when a read says a job is due.
        const due = await this.opts.store.nextJobDueAt()
        if (due === undefined || due > this.now()) {
          this.claimFailures = 0
          return due === undefined ? idle : Math.min(due - this.now(), idle) + 5
        }
        job = await this.opts.store.claimNextJob(this.owner, this.now(), this.leaseMs)
        this.claimFailures = 0
      } catch (err) {
        this.claimFailures++
        this.opts.log.error({ err, failures: this.claimFailures }, 'could not claim a job')
        return Math.max(idle, Math.min(idle * 2 ** (this.claimFailures - 1), 60_000))
      }
      if (job === undefined) return idle
      // Claimed while stop() ran: no controller of its would be aborted, so it must not start;
      // stop() gives its lease back once this drain has ended.
      if (this.stopped) return idle
      this.active++
      let health = false
      // The job now only waits for its health check: it gives its creation slot back.
      const toHealthSlot = (): boolean => {
        if (health) return true
        if (this.healthActive >= this.opts.healthConcurrency) return false
        health = true
        this.active--
        this.healthActive++
        this.kick()
        return true
      }
      const p = this.runJob(job, toHealthSlot).finally(() => {
        if (health) this.healthActive--
        else this.active--
        this.running.delete(p)
        this.notify(job.tenant)
        this.kick()
      })
      this.running.add(p)
    }
    return idle
  }

  private schedule (waitMs: number): void {
    if (this.stopped) return
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = setTimeout(() => { this.timer = null; this.kick() }, waitMs)
    this.timer.unref()
  }

  private notify (tenantId: string): void {
    for (const done of [...(this.waiters.get(tenantId) ?? [])]) done()
  }

  /**
   * Runs one attempt of a job under the wall-clock cap. Exposed for tests. `toHealthSlot`: moves
   * the attempt to the health-wait bound (false when that is full); without it, it stays put.
   */
  async runJob (job: Job, toHealthSlot: () => boolean = () => true): Promise<void> {
    const { store, config, log } = this.opts
    // A teardown is not capped: one given up would leave a server billing for ever (below).
    if (job.kind !== 'deprovision' && job.attempts >= config.provisionMaxAttempts) {
      // Reclaimed after its workers died on every attempt (each claim counted one): stop here.
      const attempt = new Attempt({ job, signal: new AbortController().signal, store, auditSecret: config.auditSecret })
      const reason = new ExecutorError(`${job.attempts} attempts ended without a result (${job.lastError ?? 'no error recorded'})`, { retryable: false })
      await this.failAttempt(attempt, reason, { counted: true }).catch((e: unknown) => log.error({ err: e, job: job.id }, 'could not record a failed job'))
      return
    }
    const controller = new AbortController()
    this.controllers.add(controller)
    const timer = setTimeout(() => {
      controller.abort(new AttemptTimeout(`the attempt exceeded its ${config.provisionAttemptTimeoutS} s cap`, { retryable: true }))
    }, config.provisionAttemptTimeoutS * 1000)
    const attempt = new Attempt({ job, signal: controller.signal, store, auditSecret: config.auditSecret })
    let failure: unknown
    let failed = true
    try {
      // Awaited to the end even after an abort: the signal cancels every executor call and
      // store write of the attempt, so it settles promptly and never outlives this call.
      await this.runSteps(attempt, toHealthSlot)
      failed = false
    } catch (err) {
      // Whatever a cancelled call threw, an aborted attempt ends for the abort's reason.
      failure = controller.signal.aborted ? controller.signal.reason : err
    } finally {
      clearTimeout(timer)
      this.controllers.delete(controller)
    }
    if (!failed) {
      // Not awaited: the webhook waiting on this tenant is woken when runJob returns, and a
      // log line must not add a store read to its answer.
      void this.logEnd(job)
      return
    }
    if (failure instanceof Shutdown) {
      log.info({ tenant: job.tenant, job: job.id, step: job.step }, 'attempt abandoned at shutdown; it resumes elsewhere')
      return
    }
    if (failure instanceof LeaseLost) {
      await this.leaseLost(job, failure, 'attempt outlived its lease; another worker has the job')
      return
    }
    const record = failure instanceof AttemptTimeout && this.healthWindowOpen(job) ? this.continueAttempt(attempt) : this.failAttempt(attempt, failure)
    await record.catch(async (e: unknown) => {
      if (e instanceof LeaseLost) await this.leaseLost(job, e, 'the end of the attempt not recorded: another worker has the job')
      else if (this.halting.signal.aborted) log.warn({ err: e, job: job.id }, 'the end of the attempt not recorded before shutdown; it resumes elsewhere')
      else log.error({ err: e, job: job.id }, 'could not record the end of the attempt: the job is taken up again once its lease lapses')
    })
  }

  /**
   * The attempt found the job no longer its own. Either another worker took it (a lapsed lease),
   * or the job was ended under it (a teardown ends its tenant's resizes, clearing their lease):
   * then it stops, as it should, and the log says so rather than blaming a lease.
   */
  private async leaseLost (job: Job, err: LeaseLost, otherwise: string): Promise<void> {
    const { log, store } = this.opts
    const now = await store.getJob(job.id).catch(() => undefined)
    if (now !== undefined && now.status !== 'queued' && now.status !== 'running') {
      log.info({ tenant: job.tenant, job: job.id, kind: job.kind, step: job.step, status: now.status }, 'the job was ended while this attempt ran; the attempt stops without recording anything')
      return
    }
    log.warn({ tenant: job.tenant, job: job.id, step: job.step, reason: err.message }, otherwise)
  }

  /**
   * One info line when the attempt ended its job (done, or canceled as no longer wanted), so a
   * tenant's story can be followed at the default level; an attempt that queued the job again
   * (a wait) writes none. The audit log stays the full record.
   */
  private async logEnd (job: Job): Promise<void> {
    const now = await this.opts.store.getJob(job.id).catch(() => undefined)
    if (now?.status !== 'done' && now?.status !== 'canceled') return
    this.opts.log.info({ tenant: job.tenant, job: job.id, kind: job.kind, step: now.step, status: now.status }, `job ${now.status}`)
  }

  private runSteps (attempt: Attempt, toHealthSlot: () => boolean): Promise<void> {
    const { executor, config, log } = this.opts
    const specFor = (t: Tenant): ServerSpec => serverSpecFor(t, config)
    switch (attempt.job.kind) {
      case 'provision': return runProvision(attempt, {
        executor, config, log, store: this.opts.store, now: () => this.now(), pollUntil: (signal, check, until) => this.pollUntil(signal, check, until),
        healthDeadline: (job) => this.healthDeadline(job), planWaitMs: this.opts.planWaitMs, planPollMs: this.opts.planPollMs, bootGraceMs: this.opts.bootGraceMs,
        toHealthSlot, healthGraceMs: HEALTH_GRACE_POLLS * this.opts.pollIntervalMs, healthFullWaitMs: HEALTH_FULL_WAIT_MS
      })
      case 'deprovision': return runTeardown(attempt, { executor, specFor, graceMs: config.deprovisionGraceHours * 3_600_000, log })
      case 'resize': return runResize(attempt, { ...this.resizeWaits(), executor, specFor, pollUntil: (signal, check, until) => this.pollUntil(signal, check, until), postponeMs: this.opts.resizePostponeMs, bootGraceMs: this.opts.bootGraceMs, log })
      // A kind a newer release queued: never run as something else (a teardown, say).
      default: throw new ExecutorError(`this release does not know jobs of kind ${JSON.stringify(attempt.job.kind)}`, { retryable: false })
    }
  }

  private resizeWaits (): { resizeWaitMs: number, healthWaitMs: number } {
    return { resizeWaitMs: this.opts.resizeWaitMs, healthWaitMs: this.opts.config.provisionHealthTimeoutS * 1000 }
  }

  /**
   * The job waits for the server's health check, or for Linode to resize it, and that wait's
   * own deadline has not passed.
   */
  private healthWindowOpen (job: Job): boolean {
    if (job.kind === 'resize') return this.now() < (resizeWaitEnds(job, this.resizeWaits()) ?? 0)
    return job.kind === 'provision' && job.step === 'dns' && this.now() < this.healthDeadline(job)
  }

  /** Job times keep to the store's clock, which every instance on the database shares. */
  private now (): number {
    return this.opts.store.now()
  }

  private healthDeadline (job: Job): number {
    return job.stepAt + this.opts.config.provisionHealthTimeoutS * 1000
  }

  /**
   * The attempt reached its cap while the server had time left to come up (a first boot pulls
   * images and gets a certificate): not a failure, so no attempt is counted. The job is queued
   * again at once and goes on waiting in a new attempt under a new lease.
   */
  private async continueAttempt (attempt: Attempt): Promise<void> {
    const job = attempt.job
    await this.recordEnd(attempt, (tx) => tx.updateJob(job.id, { status: 'queued', leaseOwner: null, leaseUntil: 0, runAfter: this.now() }))
    this.opts.log.info({ tenant: job.tenant, job: job.id, step: job.step, waited_s: Math.round((this.now() - job.stepAt) / 1000) },
      'still waiting for the health check; the job goes on in a new attempt')
  }

  /** `counted`: the attempts are already in the job (reclaims), so this adds none. */
  private async failAttempt (attempt: Attempt, err: unknown, opts: { counted?: boolean } = {}): Promise<void> {
    const { config, log } = this.opts
    const job = attempt.job
    const retryable = !(err instanceof ExecutorError) || err.retryable
    // The provider refused for now and said for how long (a rate limit, maintenance): not a
    // failure of the job, so no attempt is counted, or a throttle of some minutes would use up
    // every queued job's attempts. The budget, from when the job entered its step, stops a
    // refusal that never ends from looping for ever (a teardown keeps trying, as below).
    const retryAfterMs = retryable && err instanceof ExecutorError ? err.retryAfterMs : undefined
    const refused = retryAfterMs !== undefined
    const overBudget = refused && job.kind !== 'deprovision' && this.now() - job.stepAt >= this.opts.rateLimitBudgetMs
    if (refused) this.notBefore = Math.max(this.notBefore, this.now() + retryAfterMs)
    const attempts = opts.counted === true || (refused && !overBudget) ? job.attempts : job.attempts + 1
    const message = overBudget
      ? `${describe(err)}; the provider still refused ${Math.round((this.now() - job.stepAt) / 60_000)} minutes into the step`
      : describe(err)
    // A teardown keeps trying (the backoff tops out at 15 minutes) through a provider outage
    // of any length; only an error no retry can fix (a revoked token) stops it for the
    // operator, who retries it once fixed (tenants/admin.ts).
    const final = !retryable || overBudget || (job.kind !== 'deprovision' && attempts >= config.provisionMaxAttempts)
    // A teardown still failing past the provisioning cap (an outage that lasts, or a bug) keeps a
    // server billed: say so at error level, where alerts look, while it keeps retrying.
    const stuck = !final && job.kind === 'deprovision' && attempts >= config.provisionMaxAttempts
    log[stuck ? 'error' : 'warn']({ tenant: job.tenant, job: job.id, kind: job.kind, step: job.step, attempts, final, reason: message, ...(refused ? { retry_after_ms: retryAfterMs } : {}) },
      stuck ? 'teardown still failing: the server is still running; it keeps retrying' : refused && !final ? 'the provider asked to wait; the job waits, no attempt counted' : 'job attempt failed')
    // The alerts are logged once the failure is recorded: a try whose commit fails is tried
    // again (recordEnd), and its rolled-back failure would otherwise be alerted each time.
    const alerts: Array<[object, string]> = []
    // Fenced by the lease, not by the signal: a timed-out attempt is aborted and still records this.
    await this.recordEnd(attempt, async (tx) => {
      alerts.length = 0
      if (final) {
        await tx.updateJob(job.id, { status: 'failed', attempts, lastError: message, leaseOwner: null, leaseUntil: 0 })
        // The status endpoint is public: the cause (provider answers, addresses) stays in the
        // job and the audit log, where the operator reads it.
        // A canceled tenant's error keeps why it was canceled: no retry is offered it.
        if (job.kind === 'provision') {
          const canceled = (await tx.getTenantForUpdate(job.tenant))?.billing === 'canceled'
          await tx.updateTenant(job.tenant, { infra: 'failed', ...(canceled ? {} : { error: `Provisioning failed after ${attempts} attempt${attempts === 1 ? '' : 's'}; our team has the details and can retry it.` }) })
          // The buyer's page says our team has been told: this is the line the alerts see.
          alerts.push([{ tenant: job.tenant, job: job.id, step: job.step, attempts, canceled, reason: message }, canceled
            ? 'provisioning failed for a canceled tenant: its teardown removes whatever was made'
            : 'provisioning failed: the buyer has paid and has no CTF; fix the cause, then retry it (ctfhive retry)'])
        }
        await appendAudit(tx, config.auditSecret, job.tenant, `${job.kind}.failed`, { job: job.id, step: job.step, attempts, reason: message })
        if (job.kind === 'deprovision') alerts.push([{ tenant: job.tenant, job: job.id, step: job.step, reason: message }, 'teardown failed: the server is still running; fix the cause, then retry it (ctfhive retry)'])
        // The tenant is left as it is: its CTF runs on, at the size it had.
        if (job.kind === 'resize') {
          alerts.push([{ tenant: job.tenant, job: job.id, step: job.step, reason: message }, job.step.startsWith('resized:')
            ? 'resize failed: the server runs as its plan\'s type, but its CTF did not pass the health check; fix the cause, then retry it (ctfhive retry)'
            : 'resize failed: the server is not of its plan\'s type; fix the cause, then retry it (ctfhive retry)'])
        }
      } else {
        const delay = Math.max(this.opts.backoffMs(Math.max(attempts, 1)), retryAfterMs ?? 0)
        await tx.updateJob(job.id, { status: 'queued', attempts, lastError: message, leaseOwner: null, leaseUntil: 0, runAfter: this.now() + delay })
        await appendAudit(tx, config.auditSecret, job.tenant, `${job.kind}.attempt_failed`, { job: job.id, step: job.step, attempts, reason: message, retry_in_ms: delay, ...(refused ? { counted: false } : {}) })
      }
    })
    for (const [obj, msg] of alerts) log.error(obj, msg)
  }

  /**
   * Records the end of an attempt (fenced by its lease), trying again while the store fails:
   * else a database restart of a second leaves the job `running` until its lease lapses (5.5
   * minutes by default), its tenant shown as still being set up. Tries stop once the lease
   * would have lapsed by the next one, when the job is any worker's to claim again (which
   * counts this attempt), or when the worker stops (stop() gives the lease back). A try near
   * the lease's end is safe all the same: each checks, with the job row locked, that the claim
   * is still this attempt's (LeaseLost otherwise).
   */
  private async recordEnd (attempt: Attempt, fn: (tx: StoreOps) => Promise<unknown>): Promise<void> {
    const job = attempt.job
    const log = this.opts.log
    for (let tries = 1; ; tries++) {
      try {
        await attempt.leased(fn)
        if (tries > 1) log.info({ tenant: job.tenant, job: job.id, tries }, 'the end of the attempt recorded once the store answered again')
        return
      } catch (err) {
        if (err instanceof LeaseLost) throw err
        const delay = Math.min(RECORD_RETRY_FIRST_MS * 2 ** (tries - 1), RECORD_RETRY_MAX_MS)
        if (this.halting.signal.aborted || this.now() + delay >= job.leaseUntil) throw err
        if (tries === 1) log.warn({ err, tenant: job.tenant, job: job.id }, 'could not record the end of the attempt; trying again while its lease runs')
        try {
          await sleep(delay, undefined, { signal: this.halting.signal })
        } catch {
          throw err
        }
      }
    }
  }

  /** Polls until `check` passes (true), or until a failed check finds `until` (epoch ms) past (false). */
  private async pollUntil (signal: AbortSignal, check: () => Promise<boolean>, until = Infinity): Promise<boolean> {
    while (!(await check())) {
      if (signal.aborted) throw signal.reason
      const left = until - this.now()
      if (left <= 0) return false
      try {
        await sleep(Math.min(this.opts.pollIntervalMs, left), undefined, { signal })
      } catch {
        throw signal.reason
      }
    }
    return true
  }


}
