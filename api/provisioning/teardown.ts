// The teardown of a canceled tenant: DNS record, then server. A paid event of a new
// subscription may reactivate the tenant at any moment (tenants/lifecycle.ts), and the tenant
// service only calls off *queued* teardowns, so a running one looks again, with the tenant row
// locked, before each destructive step, in the transaction that ends it and after a failed
// step; finding the tenant paid once it began removing, it queues the provisioning. A tenant
// may also be reactivated and canceled again between two looks: its new grace period is then
// honoured.
import type { Logger } from 'pino'
import type { StoreOps, Tenant } from '../store/store.ts'
import { LeaseLost, ended, stepTime, type Attempt } from './attempt.ts'
import { ExecutorError, type Executor, type ServerSpec } from './executor.ts'

/**
 * Committed with the check that lets the first removal start: from then on the DNS record may
 * be gone even if the attempt ends before `dns_removed` (a later removal fails, a reply is lost,
 * a shutdown), so a reactivation must provision the tenant again: every place that decides it
 * (here, and the tenant service) looks for any step but ''.
 */
const DNS_REMOVING = 'dns_removing'

export interface TeardownDeps {
  executor: Executor
  specFor: (tenant: Tenant) => ServerSpec
  graceMs: number
  log: Pick<Logger, 'error'>
}

export async function runTeardown (attempt: Attempt, deps: TeardownDeps): Promise<void> {
  try {
    await tearDown(attempt, deps)
  } catch (err) {
    // An abandoned attempt writes nothing (and another may hold the job): the runner handles it.
    if (attempt.signal.aborted || err instanceof LeaseLost) throw err
    // A tenant reactivated meanwhile waits for this teardown to queue its provisioning (the
    // tenant service marked it `provisioning` and queued none): now, rather than after the
    // backoff (or never, after a failure no retry fixes). Otherwise the failure is the runner's.
    if (!(await calledOffAfterFailure(attempt, err).catch(() => false))) throw err
  }
}

async function tearDown (attempt: Attempt, { executor, specFor, graceMs, log }: TeardownDeps): Promise<void> {
  const { job, signal } = attempt
  if (job.step === '' || job.step === DNS_REMOVING) {
    const tenant = await tenantToTearDown(attempt, graceMs, DNS_REMOVING)
    if (tenant === undefined) return
    // The kept id, and whatever is named for the tenant: a record whose create answer was lost
    // has no id here and would otherwise point the address at an IP Linode hands to others.
    const spec = specFor(tenant)
    const { removed, left, failed } = await sweep(tenant.dnsRecordId, () => executor.findDnsRecords(spec, signal), (id) => executor.removeDnsRecord(spec, id, signal), { mayFail: true })
    if (left.length > 0 || failed.lookup_failed !== undefined) {
      // Not a reason to keep the server billing, but a record left pointing at an address
      // Linode hands to someone else: the operator removes it by hand.
      log.error({ tenant: tenant.id, job: job.id, fqdn: spec.fqdn, left_behind: left, ...failed },
        left.length > 0 ? 'teardown left DNS records behind (remove them by hand); it goes on to destroy the server' : 'teardown could not search for DNS records (any left must be removed by hand); it goes on to destroy the server')
    }
    // A record left behind keeps its id on the tenant, where the operator's view shows it.
    await attempt.commitStep('dns_removed', { dnsRecordId: left.find((id) => id === tenant.dnsRecordId) ?? null }, 'dns.removed',
      { records: removed, ...(left.length > 0 ? { left_behind: left } : {}), ...failed })
  }
  if (job.step === 'dns_removed') {
    const tenant = await tenantToTearDown(attempt, graceMs)
    if (tenant === undefined) return
    // Likewise a server made by an attempt cut off before it kept the id (a restart, a cancel
    // first): found by the tenant's tag, it is destroyed too rather than billed for ever. The
    // search is the only proof that nothing is left, even when an id is kept: a unique label
    // rules out a twin under that label only, not one the tag finds under another (a server
    // renamed in the console, say). So it must succeed before anything is destroyed.
    const { removed } = await sweep(tenant.serverId, async () => (await executor.findServers(specFor(tenant), signal)).map((s) => s.id),
      (id) => executor.destroyServer(id, signal), { mayFail: false })
    await attempt.commitStep('destroyed', { serverId: null, ipv4: null }, 'server.destroyed', { servers: removed }, (tx) => endResizes(attempt, tx))
  }
  await attempt.transaction(async (tx) => {
    const tenant = await tx.getTenantForUpdate(job.tenant)
    const reactivated = tenant !== undefined && tenant.billing !== 'canceled'
    await tx.updateJob(job.id, ended('done'))
    await tx.updateTenant(job.tenant, { infra: reactivated ? 'provisioning' : 'deprovisioned' })
    await attempt.audit(tx, 'teardown.done', {})
    // Reactivated while the server was being destroyed: the tenant service found this
    // teardown running and queued nothing, so the new server is queued here or never.
    if (reactivated) await provisionAgain(attempt, tx, tenant, 'reactivated while its server was destroyed')
  })
}

/**
 * Removes the kept id and every leftover the search finds, and answers what it removed. A
 * failed search or removal fails the attempt (retried, or for the operator when no retry
 * helps), unless `mayFail` and no retry could help: DNS only, where a call that cannot succeed
 * (a token without the Domains scope, a restricted user's zone grant removed, a zone re-created
 * under a new id) must not keep the teardown from destroying the server, which bills. A failed
 * search is noted in `failed` and the kept id removed all the same; a record whose removal is
 * refused so is `left` behind, its reason in `failed`.
 */
async function sweep (kept: string | null, find: () => Promise<string[]>, remove: (id: string) => Promise<void>, opts: { mayFail: boolean }): Promise<{ removed: string[], left: string[], failed: { lookup_failed?: string, remove_failed?: string } }> {
  const forGood = (err: unknown): err is ExecutorError => opts.mayFail && err instanceof ExecutorError && !err.retryable
  let found: string[] = []
  const failed: { lookup_failed?: string, remove_failed?: string } = {}
  try {
    found = await find()
  } catch (err) {
    if (!forGood(err)) throw err
    failed.lookup_failed = err.message
  }
  const ids = new Set(found)
  if (kept !== null) ids.add(kept)
  const removed: string[] = []
  const left: string[] = []
  for (const id of ids) {
    try {
      await remove(id)
      removed.push(id)
    } catch (err) {
      if (!forGood(err)) throw err
      left.push(id)
      failed.remove_failed ??= err.message
    }
  }
  return { removed, left, failed }
}

/**
 * The tenant as it is now, when the next destructive step may run; otherwise this answers
 * undefined, and the teardown either ends as `canceled` (teardown.skipped: the tenant is paid
 * again) or waits for the grace period of the tenant's latest cancellation (teardown.postponed).
 * The row lock orders the check against the webhook's billing change.
 */
async function tenantToTearDown (attempt: Attempt, graceMs: number, mark?: string): Promise<Tenant | undefined> {
  const { job } = attempt
  return attempt.transaction(async (tx) => {
    const tenant = await tx.getTenantForUpdate(job.tenant)
    if (tenant?.billing === 'canceled') {
      // Never before the grace period of the tenant's latest cancellation: it was reactivated
      // and canceled again while this teardown ran (a running teardown cannot be called off,
      // and the new cancel found it live and queued no other), or DEPROVISION_GRACE_HOURS was
      // raised since. The job resumes after its last step then.
      const graceEnds = tenant.canceledAt === null ? 0 : Date.parse(tenant.canceledAt) + graceMs
      if (graceEnds > tx.now()) {
        await tx.updateJob(job.id, { status: 'queued', runAfter: graceEnds, leaseOwner: null, leaseUntil: 0, lastError: null })
        await attempt.audit(tx, 'teardown.postponed', { reason: 'the grace period of the latest cancellation has not ended', canceled_at: tenant.canceledAt, run_after: new Date(graceEnds).toISOString(), step: job.step })
        return undefined
      }
      const jobs = await tx.listJobs({ tenant: job.tenant })
      if (jobs.some((j) => j.kind === 'provision' && (j.status === 'queued' || j.status === 'running'))) {
        // Never tear down under a live provisioning attempt: it may be creating the server now.
        throw new ExecutorError('a provisioning job is still live for this tenant', { retryable: true })
      }
      if (mark !== undefined && job.step !== mark) {
        const stepAt = stepTime(job, tx.now())
        await tx.updateJob(job.id, { step: mark, stepAt })
        Object.assign(job, { step: mark, stepAt })
      }
      return tenant
    }
    await tx.updateJob(job.id, ended('canceled'))
    await attempt.audit(tx, 'teardown.skipped', { reason: tenant === undefined ? 'tenant removed' : 'tenant is no longer canceled' })
    // The DNS record is already gone: a provision job adopts the kept server and restores it.
    if (tenant !== undefined && job.step !== '') await provisionAgain(attempt, tx, tenant, 'reactivated after its DNS record was removed')
    return undefined
  })
}

/**
 * After a failed step: if the tenant is no longer canceled, the teardown ends as its next look
 * would end it (`teardown.skipped`, then the provisioning), saying what failed; true then.
 */
async function calledOffAfterFailure (attempt: Attempt, err: unknown): Promise<boolean> {
  const { job } = attempt
  return attempt.transaction(async (tx) => {
    const tenant = await tx.getTenantForUpdate(job.tenant)
    if (tenant === undefined || tenant.billing === 'canceled') return false
    await tx.updateJob(job.id, ended('canceled'))
    await attempt.audit(tx, 'teardown.skipped', { reason: 'tenant is no longer canceled', step: job.step, failure: err instanceof Error ? err.message : String(err) })
    if (job.step !== '') await provisionAgain(attempt, tx, tenant, 'reactivated while its teardown was failing')
    return true
  })
}

/**
 * With the server destroyed, a resize of it has nothing left to resize. One still live (claimed
 * before the cancellation, which calls off queued ones only, or queued again after a failed
 * look at the vanished server) would otherwise take a server made for the tenant later as its
 * own and wait for it to reach a type the plan may no longer want, holding every later plan
 * change (the tenant service hands those to the live job). Ended here, in the transaction that
 * forgets the server, its lease cleared: an attempt still running writes nothing more (its next
 * write finds the job not its own). A provisioning later resizes its new server itself when the
 * plan wants another type (queueResizeIfOffPlan).
 */
async function endResizes (attempt: Attempt, tx: StoreOps): Promise<void> {
  for (const job of await tx.listJobs({ tenant: attempt.job.tenant })) {
    if (job.kind !== 'resize' || (job.status !== 'queued' && job.status !== 'running')) continue
    await tx.updateJob(job.id, ended('canceled'))
    await attempt.audit(tx, 'resize.canceled', { resize_job: job.id, step: job.step, status: job.status, reason: 'its server was destroyed by the teardown' })
  }
}

async function provisionAgain (attempt: Attempt, tx: StoreOps, tenant: Tenant, reason: string): Promise<void> {
  // At most one live provision job per tenant (jobs_live): a queued one is reused.
  const provision = await tx.enqueueJob({ kind: 'provision', tenant: tenant.id, runAfter: tx.now() })
  await tx.updateTenant(tenant.id, { infra: 'provisioning', error: null })
  await attempt.audit(tx, 'provision.queued', { plan: tenant.plan, source: 'teardown', provision_job: provision.id, reason })
}
