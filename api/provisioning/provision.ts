// A provision job's steps: create (or adopt) the server, wait until it runs, point its DNS
// record at it, wait for its health check. Each step commits before the next begins, so a
// later attempt resumes at the last one finished (jobs.ts runs the attempts).
import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import { planServerType } from '../plans.ts'
import { tenantFqdn } from '../tenants/address.ts'
import type { Job, Store, Tenant } from '../store/store.ts'
import { ended, type Attempt } from './attempt.ts'
import { ExecutorError, type Executor, type ServerSpec } from './executor.ts'
import { queueResizeIfOffPlan } from './resize.ts'

export interface ProvisionDeps {
  executor: Executor
  config: Pick<Config, 'baseDomain' | 'linode' | 'provisionHealthTimeoutS'>
  log: Pick<Logger, 'warn'>
  store: Pick<Store, 'listAudit'>
  /** The store's clock, which every instance on the database shares. */
  now: () => number
  /** The runner's poll: until `check` passes (true), or a failed check finds `until` (epoch ms) past (false). */
  pollUntil: (signal: AbortSignal, check: () => Promise<boolean>, until?: number) => Promise<boolean>
  /** When the health check's window, counted from the DNS step across attempts, ends. */
  healthDeadline: (job: Job) => number
  planWaitMs: number
  planPollMs: number
  bootGraceMs: number
  /** Moves the attempt out of the creation slots once it only waits for the health check (false: no room). */
  toHealthSlot: () => boolean
  /** How long a job resumed past its health deadline still polls (a few checks). */
  healthGraceMs: number
  /** When there is no room to wait for the health check: how much later the job looks again. */
  healthFullWaitMs: number
}

/** The job's last error while it waits for the plan: the operator's view says why it waits. */
export const AWAITING_PLAN = 'waiting for Stripe to state the plan of the subscription before sizing the server'

/** CTFd's users.email is a VARCHAR(128). */
const CTFD_EMAIL_MAX = 128

/** Health polls between two looks at the server itself (about a minute at the 3 s default). */
const SERVER_CHECK_EVERY = 20

export function serverSpecFor (tenant: Tenant, config: Pick<Config, 'baseDomain' | 'linode'>): ServerSpec {
  const fqdn = tenantFqdn(tenant, config.baseDomain)
  return {
    tenantId: tenant.id,
    slug: tenant.slug,
    fqdn,
    plan: tenant.plan,
    serverType: planServerType(tenant.plan, config.linode.plan),
    tenantName: tenant.name,
    // CTFd's admin needs an address; the email is optional at checkout, and CTFd stores at most
    // 128 characters of one (its setup would fail on a longer one, and the server never come up).
    adminEmail: tenant.email !== '' && tenant.email.length <= CTFD_EMAIL_MAX ? tenant.email : `admin@${fqdn}`
  }
}

/**
 * A checkout made elsewhere (a Payment Link, the Dashboard) names no plan, and neither does an
 * invoice: the tenant it made has the default plan until an event about its subscription
 * states the price, which Stripe may deliver after them. A resize later would cost the new
 * CTF a reboot, so the first server waits for it (queued again, no attempt counted) up to
 * `planWaitMs` after the job was made; then it is sized by the plan the tenant has (and
 * resized if an event states another). True when the job waits.
 */
async function planWait (attempt: Attempt, tenant: Tenant, deps: ProvisionDeps): Promise<boolean> {
  const { job } = attempt
  if (tenant.planAt !== 0 || tenant.subscriptionId === null) return false
  // A tenant our own checkout made has the plan its buyer chose there: the session's price.
  const [created] = await deps.store.listAudit({ tenant: tenant.id, limit: 1 })
  if (created?.action === 'tenant.created' && created.detail.source === 'checkout') return false
  const until = Date.parse(job.createdAt) + deps.planWaitMs
  if (deps.now() >= until) {
    if (job.lastError === AWAITING_PLAN) {
      deps.log.warn({ tenant: tenant.id, job: job.id, plan: tenant.plan, subscription: tenant.subscriptionId }, 'no event stated the plan of the subscription in time: the server is sized by the plan the tenant has')
      await attempt.transaction((tx) => attempt.audit(tx, 'provision.plan_assumed', { plan: tenant.plan, subscription: tenant.subscriptionId }))
    }
    return false
  }
  await attempt.leased(async (tx) => {
    await tx.updateJob(job.id, { status: 'queued', leaseOwner: null, leaseUntil: 0, runAfter: Math.min(deps.now() + deps.planPollMs, until), lastError: AWAITING_PLAN })
    if (job.lastError !== AWAITING_PLAN) {
      await attempt.audit(tx, 'provision.awaiting_plan', { subscription: tenant.subscriptionId, until: new Date(until).toISOString() })
    }
  })
  return true
}

/**
 * Whether the provider says the server is gone (404). Its API failing says nothing about the
 * server: the health wait goes on (the look is a side check, not worth an attempt).
 */
async function serverGone (serverId: string, signal: AbortSignal, tenant: string, deps: ProvisionDeps): Promise<boolean> {
  try {
    return await deps.executor.getServer(serverId, signal) === undefined
  } catch (err) {
    if (signal.aborted) throw signal.reason
    deps.log.warn({ err, tenant, server: serverId }, 'could not look at the server during its health wait; waiting on')
    return false
  }
}

export async function runProvision (attempt: Attempt, deps: ProvisionDeps): Promise<void> {
  const { executor, config, log } = deps
  const { job, signal } = attempt
  // Decided with the tenant row locked: a reactivation committed a moment earlier found this
  // job live and queued no other, so it must see the tenant paid here, not skip.
  const tenant = await attempt.transaction(async (tx) => {
    const t = await tx.getTenantForUpdate(job.tenant)
    if (t !== undefined && t.billing !== 'canceled') return t
    await tx.updateJob(job.id, ended('canceled'))
    await attempt.audit(tx, 'provision.skipped', { reason: t === undefined ? 'tenant removed' : 'tenant canceled' })
    // No attempt of its first server ever failed (canceled while the job waited for the plan,
    // say): none is coming, and the status says so. One that failed may have made a server
    // whose answer was lost: that tenant stays as it is. Either way the teardown the
    // cancellation queued stays, to sweep whatever carries the tenant's tag.
    if (t !== undefined && t.infra === 'provisioning' && t.serverId === null && job.step === '' && job.attempts === 0) {
      await tx.updateTenant(t.id, { infra: 'none' })
    }
    return undefined
  })
  if (tenant === undefined) return
  if (job.step === '' && tenant.serverId === null && await planWait(attempt, tenant, deps)) return
  const spec = serverSpecFor(tenant, config)
  let serverId = tenant.serverId
  let ipv4 = tenant.ipv4
  // A tenant torn down and reactivated has no serverId any more: it gets a new server.
  if (job.step === '' || serverId === null) {
    const { server, adopted, firewall } = await executor.createOrAdopt(spec, signal)
    serverId = server.id
    ipv4 = server.ipv4
    // An earlier try's server made under another plan (or LINODE_PLAN) is kept, and the
    // audit names the type it has and the one this plan would get. It is resized once the
    // provisioning ends, as is a server made while the plan changed (queued with this step).
    const type = server.type ?? spec.serverType
    if (type !== spec.serverType) log.warn({ tenant: tenant.id, server: server.id, type, planned_type: spec.serverType }, 'adopted a server of another type than the plan\'s')
    // The address its first administrator is set up with (an adopted server: as an earlier
    // attempt asked, the tenant's address then): the welcome page names this one.
    await attempt.commitStep('created', { serverId, ipv4, adminEmail: spec.adminEmail }, adopted ? 'server.adopted' : 'server.created',
      { server: server.id, label: server.label, type, ...(type === spec.serverType ? {} : { planned_type: spec.serverType }), status: server.status, ...(firewall === undefined ? {} : { firewall: firewall.id, firewall_status: firewall.status }) },
      (tx, now) => queueResizeIfOffPlan(attempt, tx, now, server.id, type, (t) => serverSpecFor(t, config)))
  }
  if (job.step === 'created') {
    let status = 'unknown'
    let offSince: number | undefined
    await deps.pollUntil(signal, async () => {
      const s = await executor.getServer(serverId!, signal)
      if (s === undefined) {
        // Deleted behind our back: forget it, so the next attempt makes a new one instead of
        // polling a dead id until the attempts run out.
        await attempt.commitStep('', { serverId: null, ipv4: null }, 'server.vanished', { server: serverId })
        throw new ExecutorError(`server ${serverId} disappeared; the next attempt creates a new one`, { retryable: true })
      }
      status = s.status
      ipv4 = s.ipv4 ?? ipv4
      // Off, not on its way up: an adopted server whose boot never ran, or one switched off
      // since. Left alone it would use up every attempt waiting.
      offSince = s.status === 'offline' ? offSince ?? deps.now() : undefined
      if (offSince !== undefined && deps.now() - offSince >= deps.bootGraceMs) {
        offSince = undefined // a declined boot is asked again after another grace
        if (await executor.bootServer(serverId!, signal)) {
          await attempt.transaction((tx) => attempt.audit(tx, 'server.boot', { server: serverId, status: s.status }))
        }
      }
      return s.status === 'running'
    })
    await attempt.commitStep('running', { ipv4 }, 'server.running', { server: serverId, status, ipv4 })
  }
  if (job.step === 'running') {
    if (ipv4 === null) throw new ExecutorError('the server has no IPv4 address', { retryable: true })
    const recordId = await executor.ensureDnsRecord(spec, ipv4, signal)
    await attempt.commitStep('dns', { dnsRecordId: recordId }, 'dns.record', { record: recordId, name: spec.fqdn, target: ipv4 })
  }
  if (job.step === 'dns') {
    // A release before migration 003 moved the job here without recording when (step_at is 0,
    // or still the time it was queued): the window starts now, or the check would fail at once.
    if (job.stepAt <= Date.parse(job.createdAt)) {
      const stepAt = deps.now()
      await attempt.transaction((tx) => tx.updateJob(job.id, { stepAt }))
      job.stepAt = stepAt
    }
    // Waiting here holds no creation slot (jobs.ts): new buyers' servers are made meanwhile.
    // With no room for one more wait, the job is queued again, uncounted, and looks later.
    if (!deps.toHealthSlot()) {
      await attempt.transaction((tx) => tx.updateJob(job.id, { status: 'queued', leaseOwner: null, leaseUntil: 0, runAfter: deps.now() + deps.healthFullWaitMs }))
      return
    }
    // The wait has its own deadline, across attempts (continueAttempt). Past it the server is
    // broken, not slow (cloud-init failed, no certificate): the job fails for the operator,
    // whose retry runs the steps again and gives the check a new window. A job resumed past it
    // (it waited for its turn) still polls a few times, so one blip does not fail it.
    const until = Math.max(deps.healthDeadline(job), deps.now() + deps.healthGraceMs)
    let polls = 0
    const healthy = await deps.pollUntil(signal, async () => {
      // Now and then, that the server is still there: one deleted meanwhile would be polled,
      // its freed address left in DNS, until the deadline failed the job for the wrong reason.
      if (++polls % SERVER_CHECK_EVERY === 0 && serverId !== null && await serverGone(serverId, signal, tenant.id, deps)) {
        await attempt.commitStep('', { serverId: null, ipv4: null }, 'server.vanished', { server: serverId })
        throw new ExecutorError(`server ${serverId} disappeared while its health check was awaited; the next attempt creates a new one and points DNS at it`, { retryable: true })
      }
      return await executor.checkHealth(spec.fqdn, signal)
    }, until)
    if (!healthy) {
      throw new ExecutorError(`https://${spec.fqdn}/healthcheck did not answer 200 within ${config.provisionHealthTimeoutS} s of its DNS record`, { retryable: false })
    }
    await attempt.commitStep('healthy', {}, 'health.ok', { url: `https://${spec.fqdn}/healthcheck` })
  }
  const now = new Date(deps.now()).toISOString()
  // A cancellation that landed meanwhile keeps its reason (the teardown follows).
  await attempt.finish('done', (t) => ({ infra: 'ready', readyAt: now, ...(t?.billing === 'canceled' ? {} : { error: null }) }), 'provision.ready', { fqdn: spec.fqdn })
}
