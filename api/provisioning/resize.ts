// The resize job: brings a live tenant's server to the server type of its plan after a plan
// change (tenants/service.ts queues it; so does provisioning when the server it made or adopted
// is of another type than the plan has by then). Like provisioning, each step is idempotent and
// committed with its audit entry, so an attempt cut off anywhere resumes after its last step:
//   ''              read the server: already the plan's type → done; else ask Linode to resize it
//   'resizing:<T>'  Linode is moving it to T: wait, across attempts, until it runs as T
//   'resized:<T>'   wait for its health check, as provisioning does; then done
// The type asked for is part of the step, so a plan changed again meanwhile never muddles what
// is awaited: the job ends at T and queues the next resize if the plan now wants another type
// (one resize at a time per tenant; the last plan wins). A failure (Linode refusing, a server
// that does not come back) fails the job for the operator and never the tenant: its infra stays
// as it was, and its CTF runs on at the old size. A teardown that destroys the server ends the
// tenant's live resizes in the same transaction: the job works on the server the tenant has, and
// must never go on with one made for the tenant after it.
import type { Logger } from 'pino'
import type { Job, StoreOps, Tenant } from '../store/store.ts'
import { ended, type Attempt } from './attempt.ts'
import { ExecutorError, type Executor, type ServerInfo, type ServerSpec } from './executor.ts'

/** The job's last error while it waits for the tenant's provisioning to end. */
export const AWAITING_PROVISIONING = 'waiting for the provisioning of the tenant to end before resizing its server'
/** The job's last error while the server is in the middle of something (an earlier resize, a boot). */
export const AWAITING_SERVER = 'waiting for the server to settle (an earlier resize or a boot under way) before resizing it'

export interface ResizeDeps {
  executor: Executor
  specFor: (tenant: Tenant) => ServerSpec
  /** The runner's poll: until `check` passes (true), or a failed check finds `until` (epoch ms) past (false). */
  pollUntil: (signal: AbortSignal, check: () => Promise<boolean>, until?: number) => Promise<boolean>
  /** How long Linode may take to run the server as its new type, from the resize request, across attempts. */
  resizeWaitMs: number
  /** How long the server may take to pass its health check once it runs as its new type. */
  healthWaitMs: number
  /** How long a resize queued during the tenant's provisioning waits before it looks again. */
  postponeMs: number
  /** How long the server may stay off before the job boots it. */
  bootGraceMs: number
  log: Pick<Logger, 'warn'>
}

/** What a step awaits: `resizing:g6-standard-4` → Linode moving the server to g6-standard-4. */
export function resizeStep (step: string): { phase: 'resizing' | 'resized', type: string } | undefined {
  const m = /^(resizing|resized):(.+)$/.exec(step)
  return m === null ? undefined : { phase: m[1] as 'resizing' | 'resized', type: m[2]! }
}

/** Until when the step the job waits in may go on across attempts; undefined for a step that does not wait. */
export function resizeWaitEnds (job: Job, deps: Pick<ResizeDeps, 'resizeWaitMs' | 'healthWaitMs'>): number | undefined {
  const at = resizeStep(job.step)
  if (at === undefined) return undefined
  return job.stepAt + (at.phase === 'resizing' ? deps.resizeWaitMs : deps.healthWaitMs)
}

export async function runResize (attempt: Attempt, deps: ResizeDeps): Promise<void> {
  const { job, signal } = attempt
  const { executor } = deps
  const tenant = await tenantToResize(attempt, deps)
  if (tenant === undefined) return
  const serverId = tenant.serverId!
  if (job.step === '') {
    const target = deps.specFor(tenant).serverType
    const server = await executor.getServer(serverId, signal)
    if (server === undefined) return skip(attempt, 'the server no longer exists', { server: serverId })
    // Its type is decided only once it settles: a resize under way (one called off by a
    // cancellation, or asked before a restart) may be taking it to another type.
    if (server.status !== 'running' && server.status !== 'offline') return waitForServer(attempt, deps, server.status)
    // An executor that does not tell the type has nothing to resize by.
    if (server.type === undefined) return finish(attempt, deps, target, { server: serverId, type: target, unchanged: true })
    if (server.type === target) {
      // Already the plan's type; the CTF must still answer (a retry after a failed health check).
      await attempt.commitStep(`resized:${target}`, {}, 'server.resized', { server: serverId, type: target, status: server.status, unchanged: true })
    } else {
      await executor.resizeServer(serverId, target, signal)
      await attempt.commitStep(`resizing:${target}`, {}, 'resize.started', { server: serverId, from: server.type, to: target })
    }
  }
  const at = resizeStep(job.step)
  if (at === undefined) throw new ExecutorError(`a resize job cannot resume at step ${JSON.stringify(job.step)}`, { retryable: false })
  if (at.phase === 'resizing') {
    const server = await runningAs(attempt, deps, serverId, at.type)
    await attempt.commitStep(`resized:${at.type}`, {}, 'server.resized', { server: serverId, type: at.type, status: server.status })
  }
  const { fqdn } = deps.specFor(tenant)
  // The server rebooted on its new host: CTFd and Caddy must come back, as after provisioning.
  if (!(await deps.pollUntil(signal, () => executor.checkHealth(fqdn, signal), job.stepAt + deps.healthWaitMs))) {
    throw new ExecutorError(`https://${fqdn}/healthcheck did not answer 200 within ${Math.round(deps.healthWaitMs / 1000)} s of the server running as ${at.type}`, { retryable: false })
  }
  await finish(attempt, deps, at.type, { server: serverId, type: at.type, url: `https://${fqdn}/healthcheck` })
}

/**
 * The tenant, when the job may go on; otherwise undefined, and the job has ended (the tenant
 * is canceled or gone: its teardown supersedes the resize) or waits for the tenant's
 * provisioning, which may be making the server now. The row lock orders the look against the
 * webhook's changes.
 */
async function tenantToResize (attempt: Attempt, deps: ResizeDeps): Promise<Tenant | undefined> {
  const { job } = attempt
  return attempt.transaction(async (tx) => {
    const tenant = await tx.getTenantForUpdate(job.tenant)
    const end = async (reason: string): Promise<undefined> => {
      await tx.updateJob(job.id, ended('canceled'))
      await attempt.audit(tx, 'resize.skipped', { reason, step: job.step })
      return undefined
    }
    if (tenant === undefined) return end('tenant removed')
    if (tenant.billing === 'canceled') return end('tenant canceled: its teardown removes the server')
    if (job.step !== '') return tenant.serverId === null ? end('the tenant has no server any more') : tenant
    const provisioning = (await tx.listJobs({ tenant: job.tenant })).some((j) => j.kind === 'provision' && (j.status === 'queued' || j.status === 'running'))
    if (provisioning || tenant.infra === 'provisioning') {
      // The provisioning ends in minutes, or fails for good (below).
      await postpone(attempt, tx, deps, AWAITING_PROVISIONING, 'the tenant is being provisioned')
      return undefined
    }
    // A failed provisioning's retry adopts the server and queues the resize it needs (jobs.ts).
    if (tenant.infra === 'failed') return end('its provisioning failed; the retry of it resizes the server')
    if (tenant.infra !== 'ready' || tenant.serverId === null) return end('the tenant has no server')
    return tenant
  })
}

/**
 * Queued again, uncounted, while the server is busy (resizing, migrating, booting): up to the
 * resize wait from the job's creation, after which the operator looks.
 */
async function waitForServer (attempt: Attempt, deps: ResizeDeps, status: string): Promise<void> {
  const { job } = attempt
  if (attempt.now() > Date.parse(job.createdAt) + deps.resizeWaitMs) {
    throw new ExecutorError(`the server stayed ${status} for ${Math.round(deps.resizeWaitMs / 60_000)} min; the resize was not asked`, { retryable: false })
  }
  await attempt.transaction((tx) => postpone(attempt, tx, deps, AWAITING_SERVER, `the server is ${status}`))
}

/** Queued again after `postponeMs`, no attempt counted (nothing failed); audited once per wait. */
async function postpone (attempt: Attempt, tx: StoreOps, deps: Pick<ResizeDeps, 'postponeMs'>, waiting: string, reason: string): Promise<void> {
  const { job } = attempt
  await tx.updateJob(job.id, { status: 'queued', leaseOwner: null, leaseUntil: 0, runAfter: tx.now() + deps.postponeMs, lastError: waiting })
  if (job.lastError !== waiting) await attempt.audit(tx, 'resize.postponed', { reason })
}

/** Waits until the server runs as `type`, booting it when it stays off. */
async function runningAs (attempt: Attempt, deps: ResizeDeps, serverId: string, type: string): Promise<ServerInfo> {
  const { job, signal } = attempt
  const { executor } = deps
  let last: ServerInfo | undefined
  // Seen not running since this attempt began to wait: the resize was under way.
  let left = false
  let offSince: number | undefined
  const arrived = await deps.pollUntil(signal, async () => {
    const s = await executor.getServer(serverId, signal)
    // Retried: a teardown that removed it ends this job as it forgets the server (teardown.ts),
    // so this attempt records nothing more and no later one takes the tenant's next server.
    if (s === undefined) throw new ExecutorError(`server ${serverId} disappeared while it was resized`, { retryable: true })
    last = s
    if (s.status === 'running') {
      if (s.type === type) return true
      // Back at the old type after leaving it: Linode ended the resize without doing it.
      if (left) throw new ExecutorError(`Linode ended the resize of server ${serverId} to ${type} without it: the server runs as ${String(s.type)} again (its events in the Linode console say why)`, { retryable: false })
      return false
    }
    left = true
    offSince = s.status === 'offline' ? offSince ?? attempt.now() : undefined
    if (offSince !== undefined && attempt.now() - offSince >= deps.bootGraceMs) {
      offSince = undefined // a declined boot is asked again after another grace
      if (await executor.bootServer(serverId, signal)) await attempt.transaction((tx) => attempt.audit(tx, 'server.boot', { server: serverId, status: s.status, type: s.type }))
    }
    return false
  }, job.stepAt + deps.resizeWaitMs)
  if (!arrived) {
    throw new ExecutorError(`server ${serverId} was not running as ${type} within ${Math.round(deps.resizeWaitMs / 60_000)} min of the resize request (last seen ${String(last?.status)} as ${String(last?.type)})`, { retryable: false })
  }
  return last!
}

function skip (attempt: Attempt, reason: string, detail: Record<string, unknown>): Promise<void> {
  return attempt.transaction(async (tx) => {
    await tx.updateJob(attempt.job.id, ended('canceled'))
    await attempt.audit(tx, 'resize.skipped', { reason, step: attempt.job.step, ...detail })
  })
}

/**
 * Ends the job with the server running as `type`. The plan may have changed again while it ran
 * (the tenant service found this job live and queued no other): the next resize is queued here.
 */
async function finish (attempt: Attempt, deps: ResizeDeps, type: string, detail: Record<string, unknown>): Promise<void> {
  const { job } = attempt
  await attempt.transaction(async (tx) => {
    await tx.updateJob(job.id, ended('done'))
    await attempt.audit(tx, 'resize.done', detail)
    const tenant = await tx.getTenantForUpdate(job.tenant)
    if (tenant === undefined || tenant.billing === 'canceled' || tenant.serverId === null) return
    const wanted = deps.specFor(tenant).serverType
    if (wanted === type) return
    const next = await tx.enqueueJob({ kind: 'resize', tenant: tenant.id, runAfter: tx.now() })
    await attempt.audit(tx, 'resize.queued', { reason: 'the plan changed while the server was resized', plan: tenant.plan, from: type, to: wanted, resize_job: next.id })
  })
}

/**
 * Provisioning made or adopted a server of `type` (the one the provider reports): when the plan
 * the tenant has now wants another (an earlier try's server, or a plan changed since the attempt
 * read it), a resize is queued in the same transaction; it waits for the provisioning to end.
 */
export async function queueResizeIfOffPlan (attempt: Attempt, tx: StoreOps, tenant: Tenant | undefined, server: string, type: string, specFor: (tenant: Tenant) => ServerSpec): Promise<void> {
  if (tenant === undefined || tenant.billing === 'canceled') return
  const wanted = specFor(tenant).serverType
  if (wanted === type) return
  const job = await tx.enqueueJob({ kind: 'resize', tenant: tenant.id, runAfter: tx.now() })
  await attempt.audit(tx, 'resize.queued', { reason: 'the server is not of the type of the plan', plan: tenant.plan, server, from: type, to: wanted, resize_job: job.id })
}
