// Plan changes and the resize job (provisioning/resize.ts) on the FakeExecutor: queued by the
// webhook, one at a time per tenant with the last plan winning, waiting for a provisioning under
// way, superseded by a cancellation, failed for the operator (never the tenant) and retried,
// resumed after a crash. Jobs run one claim at a time, so each case walks an exact order.
import t, { type Test } from 'tap'
import { buildTestApp } from '../helpers/build-app.ts'
import { directRunner, runAll, runOnce, runOne } from '../helpers/job-runner.ts'
import { checkoutSession, deliver, makeEvent, subscription } from '../helpers/stripe-events.ts'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import { ExecutorError } from '../../api/provisioning/executor.ts'
import { verifyStoredChain } from '../../api/provisioning/audit.ts'
import type { Store } from '../../api/store/store.ts'

const TOKEN = 'admin-token-for-resize-tests-0123456789'
const auth = { authorization: `Bearer ${TOKEN}` }
const TYPE = { solo: 'g6-standard-1', standard: 'g6-standard-2', pro: 'g6-standard-4' } as const
type PlanSlug = keyof typeof TYPE

let created = 1_900_000_000
/** A subscription event moving `sub` to `plan` (each later than the last, so none is stale). */
const planEvent = (id: string, sub: string, plan: PlanSlug, status = 'active') =>
  makeEvent('customer.subscription.updated', subscription({ id: sub, tenantId: id, status, lookupKey: `ctfhive_${plan}_monthly` }), { created: created++ })
const cancel = (id: string, sub: string, plan: PlanSlug = 'solo') => makeEvent('customer.subscription.deleted', subscription({ id: sub, tenantId: id, status: 'canceled', lookupKey: `ctfhive_${plan}_monthly` }), { created: created++ })

async function setup (t: Test, executor = new FakeExecutor(), logLines?: Array<Record<string, unknown>>) {
  const built = await buildTestApp(t, { executor, logLines, runJobs: false, env: { DEPROVISION_GRACE_HOURS: '0', WEBHOOK_WAIT_MS: '0', ADMIN_TOKEN: TOKEN, PROVISION_MAX_ATTEMPTS: '3' } })
  const id: string = (await built.app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Resize CTF' } })).json().tenant_id
  return { ...built, executor, id }
}

/** A Solo tenant (subscription `sub_r`) whose server is up. */
async function liveTenant (t: Test, executor = new FakeExecutor(), logLines?: Array<Record<string, unknown>>) {
  const built = await setup(t, executor, logLines)
  await deliver(built.app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: built.id, plan: 'solo', subscription: 'sub_r' }), { created: created++ }))
  await runAll(built.app, built.store)
  const live = (await built.store.getTenant(built.id))!
  t.match(live, { infra: 'ready', plan: 'solo' }, 'the tenant is live on Solo')
  t.equal(executor.servers.get(live.serverId!)?.type, TYPE.solo)
  return { ...built, live }
}

async function actions (store: Store, id: string): Promise<string[]> {
  return (await store.listAudit({ tenant: id })).map((e) => e.action)
}

async function jobs (store: Store, id: string): Promise<string[]> {
  return (await store.listJobs({ tenant: id })).map((j) => `${j.kind}:${j.status}`)
}

/** The runner's timers are unref'd: keep the process up while a test awaits a gate. */
function keepAlive (t: Test): void {
  const timer = setInterval(() => {}, 1000)
  t.teardown(() => clearInterval(timer))
}

t.test('a plan change of a live tenant resizes its server to the new plan\'s type', async (t) => {
  const { app, store, config, id, executor, live } = await liveTenant(t)
  const r = await deliver(app, planEvent(id, 'sub_r', 'pro'))
  t.match(r.json(), { status: 'ok', tenant_state: 'active' }, 'the webhook does not wait for the resize')
  const [resize] = (await store.listJobs({ tenant: id })).filter((j) => j.kind === 'resize')
  t.match(resize, { status: 'queued', step: '' }, 'a resize is queued')
  const audit = await store.listAudit({ tenant: id })
  t.match(audit.find((e) => e.action === 'plan.changed')?.detail, { from: 'solo', to: 'pro', resize_job: resize!.id }, 'the plan change is audited with its resize')

  await runAll(app, store)
  t.equal(executor.servers.get(live.serverId!)?.type, TYPE.pro, 'the server is of the Pro type')
  t.equal(executor.calls.resize, 1)
  t.same(await jobs(store, id), ['provision:done', 'resize:done'])
  const trail = await actions(store, id)
  t.same(trail.slice(trail.indexOf('plan.changed')), ['plan.changed', 'resize.started', 'server.resized', 'resize.done'])
  const started = (await store.listAudit({ tenant: id })).find((e) => e.action === 'resize.started')
  t.match(started?.detail, { job: resize!.id, server: live.serverId, from: TYPE.solo, to: TYPE.pro })
  t.match(await store.getTenant(id), { plan: 'pro', infra: 'ready', serverId: live.serverId, error: null }, 'the same server, still live')
  t.match(await verifyStoredChain(store, config.auditSecret), { ok: true })
})

t.test('plan changes in a row: one resize at a time, and the last plan wins', async (t) => {
  keepAlive(t)
  const { app, store, id, executor, live } = await liveTenant(t)
  // Two changes before the job runs: one job, which reads the plan when it runs.
  await deliver(app, planEvent(id, 'sub_r', 'pro'))
  await deliver(app, planEvent(id, 'sub_r', 'standard'))
  t.same(await jobs(store, id), ['provision:done', 'resize:queued'], 'one resize job for both')
  t.same((await store.listAudit({ tenant: id })).filter((e) => e.action === 'plan.changed').map((e) => [e.detail.from, e.detail.to]), [['solo', 'pro'], ['pro', 'standard']])
  await runAll(app, store)
  t.equal(executor.servers.get(live.serverId!)?.type, TYPE.standard, 'resized once, to the last plan')
  t.equal(executor.calls.resize, 1)

  // A change while a resize runs: it ends at the type it asked for, then queues the next.
  const health = executor.holdNext('health')
  await deliver(app, planEvent(id, 'sub_r', 'pro'))
  const running = runOne(app, store)
  await Promise.race([health.reached, running.then(() => { throw new Error('the attempt ended before its health check') })])
  t.equal(executor.servers.get(live.serverId!)?.type, TYPE.pro, 'Linode resized it to Pro')
  await deliver(app, planEvent(id, 'sub_r', 'solo'))
  t.same(await jobs(store, id), ['provision:done', 'resize:done', 'resize:running'], 'no second resize beside the running one')
  health.release()
  await running
  t.same(await jobs(store, id), ['provision:done', 'resize:done', 'resize:done', 'resize:queued'], 'the next one is queued as the running one ends')
  const queued = (await store.listAudit({ tenant: id })).filter((e) => e.action === 'resize.queued').at(-1)
  t.match(queued?.detail, { reason: /plan changed while the server was resized/, from: TYPE.pro, to: TYPE.solo })
  await runAll(app, store)
  t.equal(executor.servers.get(live.serverId!)?.type, TYPE.solo, 'the server ends at the last plan\'s type')
  t.same(await jobs(store, id), ['provision:done', 'resize:done', 'resize:done', 'resize:done'])
  t.equal(executor.calls.resize, 3)
})

t.test('a plan change back before the job runs: the server is already of the type, so nothing is resized', async (t) => {
  const { app, store, id, executor } = await liveTenant(t)
  await deliver(app, planEvent(id, 'sub_r', 'pro'))
  await deliver(app, planEvent(id, 'sub_r', 'solo'))
  await runAll(app, store)
  t.equal(executor.calls.resize, 0)
  const audit = await store.listAudit({ tenant: id })
  t.match(audit.find((e) => e.action === 'server.resized')?.detail, { type: TYPE.solo, unchanged: true })
  t.match(audit.find((e) => e.action === 'resize.done')?.detail, { type: TYPE.solo })
})

t.test('a plan change before the first server exists: the provisioning makes the new plan\'s type, and no resize is queued', async (t) => {
  const { app, store, id, executor } = await setup(t)
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'solo', subscription: 'sub_r' }), { created: created++ }))
  t.same(await jobs(store, id), ['provision:queued'])
  await deliver(app, planEvent(id, 'sub_r', 'pro'))
  t.same(await jobs(store, id), ['provision:queued'], 'no server yet: nothing to resize')
  const changed = (await store.listAudit({ tenant: id })).find((e) => e.action === 'plan.changed')?.detail
  t.match(changed, { from: 'solo', to: 'pro', source: /^event / }, 'audited')
  t.notOk(changed !== undefined && 'resize_job' in changed, 'without a resize')
  await runAll(app, store)
  t.same([...executor.servers.values()].map((s) => s.type), [TYPE.pro], 'the provisioning read the plan when it ran')
  t.equal(executor.calls.resize, 0)
  t.same(await jobs(store, id), ['provision:done'])
})

t.test('a plan change while the server is being created: the provisioning queues the resize, which waits for it to end', async (t) => {
  keepAlive(t)
  const executor = new FakeExecutor()
  const { app, store, id } = await setup(t, executor)
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'solo', subscription: 'sub_r' }), { created: created++ }))
  const create = executor.holdNext('create')
  // The DNS step fails once: the provision job waits in its backoff, the server made.
  executor.failNext('dns', 1)
  const provisioning = runOne(app, store)
  await create.reached
  await deliver(app, planEvent(id, 'sub_r', 'pro'))
  t.same(await jobs(store, id), ['provision:running'], 'no server id yet: the service queues no resize')
  create.release()
  await provisioning
  const tenant = (await store.getTenant(id))!
  t.equal(executor.servers.get(tenant.serverId!)?.type, TYPE.solo, 'made at the plan the attempt read')
  t.same(await jobs(store, id), ['provision:queued', 'resize:queued'], 'the step that kept the server queued the resize')
  t.match((await store.listAudit({ tenant: id })).find((e) => e.action === 'resize.queued')?.detail, { server: tenant.serverId, from: TYPE.solo, to: TYPE.pro, plan: 'pro' })

  // The resize is due first (the provisioning in its backoff), and waits: a provisioning is
  // under way. Claimed now, not a minute on: due then too, the provision job would go first.
  t.equal((await runOnce(store, app.jobs)).kind, 'resize')
  t.match((await store.listJobs({ tenant: id })).find((j) => j.kind === 'resize'), { status: 'queued', attempts: 0, lastError: /waiting for the provisioning/ }, 'postponed, not counted')
  t.equal(executor.calls.resize, 0)
  await runAll(app, store)
  t.equal(executor.servers.get(tenant.serverId!)?.type, TYPE.pro, 'resized once the provisioning ended')
  t.same(await jobs(store, id), ['provision:done', 'resize:done'])
  const trail = await actions(store, id)
  t.ok(trail.indexOf('resize.postponed') < trail.indexOf('provision.ready') && trail.indexOf('provision.ready') < trail.indexOf('resize.started'), 'one job at a time')
  t.equal(trail.filter((a) => a === 'resize.postponed').length, 1, 'the wait is audited once')
})

t.test('a cancellation supersedes a pending resize; one claimed before it ends at its first look', async (t) => {
  const { app, store, id, executor, live } = await liveTenant(t)
  await deliver(app, planEvent(id, 'sub_r', 'pro'))
  const [resize] = (await store.listJobs({ tenant: id })).filter((j) => j.kind === 'resize')
  await deliver(app, cancel(id, 'sub_r'))
  t.match(await store.getJob(resize!.id), { status: 'canceled' }, 'the queued resize is called off')
  t.match((await store.listAudit({ tenant: id })).find((e) => e.action === 'resize.canceled')?.detail, { resize_job: resize!.id, reason: 'tenant canceled' })
  await runAll(app, store)
  t.equal(executor.calls.resize, 0, 'never resized')
  t.equal(executor.servers.size, 0, 'torn down')
  t.match(await store.getTenant(id), { billing: 'canceled', infra: 'deprovisioned' })

  // Another tenant: its resize is claimed (running) when the cancel lands.
  const other = await liveTenant(t)
  await deliver(other.app, planEvent(other.id, 'sub_r', 'pro'))
  const claimed = (await other.store.claimNextJob(other.app.jobs.owner, Date.now(), other.app.jobs.leaseMs))!
  t.equal(claimed.kind, 'resize')
  await deliver(other.app, cancel(other.id, 'sub_r'))
  await other.app.jobs.runJob(claimed)
  t.match(await other.store.getJob(claimed.id), { status: 'canceled' })
  t.match((await other.store.listAudit({ tenant: other.id })).find((e) => e.action === 'resize.skipped')?.detail, { reason: /tenant canceled/ })
  t.equal(other.executor.calls.resize, 0)
  t.equal(other.executor.servers.get(other.live.serverId!)?.type, TYPE.solo)
  t.notOk(executor.servers.has(live.serverId!))
})

t.test('a teardown ends a resize under way: the tenant back on another plan keeps the new server\'s type, and a later plan change resizes it', async (t) => {
  keepAlive(t)
  const logLines: Array<Record<string, unknown>> = []
  const { app, store, id, executor, live } = await liveTenant(t, new FakeExecutor(), logLines)
  await deliver(app, planEvent(id, 'sub_r', 'pro'))
  const resize = (await store.listJobs({ tenant: id })).find((j) => j.kind === 'resize')!
  // The job reads the server and asks for Pro; its wait for the new type hangs at its first look.
  executor.holdNext('get').release()
  const look = executor.holdNext('get')
  const resizing = runOne(app, store)
  await look.reached
  t.match(await store.getJob(resize.id), { status: 'running', step: `resizing:${TYPE.pro}` })
  await deliver(app, cancel(id, 'sub_r', 'pro'))
  t.match(await store.getJob(resize.id), { status: 'running' }, 'the cancellation calls off only resizes not begun')

  t.ok(await runOne(app, store), 'the teardown runs (no grace period)')
  t.notOk(executor.servers.has(live.serverId!), 'the server is destroyed')
  t.match(await store.getJob(resize.id), { status: 'canceled', leaseOwner: null }, 'the teardown ends the resize of the server it destroyed')
  const ended = (await store.listAudit({ tenant: id })).find((e) => e.action === 'resize.canceled' && e.detail.resize_job === resize.id)
  t.match(ended?.detail, { step: `resizing:${TYPE.pro}`, status: 'running', reason: /destroyed by the teardown/ })
  t.ok((await actions(store, id)).indexOf('server.destroyed') < (await actions(store, id)).indexOf('resize.canceled'), 'audited with the destruction')

  // The attempt under way finds the server gone: it records nothing, and is not queued again.
  look.release()
  await resizing
  t.match(await store.getJob(resize.id), { status: 'canceled', attempts: 0 }, 'the running attempt stopped without writing')
  t.ok(logLines.some((l) => l.job === resize.id && /ended while this attempt ran/.test(String(l.msg))), 'and the log says it was ended, not that another worker has it')

  // The buyer comes back at once, on Standard: a new server of Standard's type, left alone.
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'standard', subscription: 'sub_r2' }), { created: created++ }))
  await runAll(app, store)
  const back = (await store.getTenant(id))!
  t.match(back, { billing: 'paid', plan: 'standard', infra: 'ready' })
  t.not(back.serverId, live.serverId, 'a new server')
  t.equal(executor.servers.get(back.serverId!)?.type, TYPE.standard, 'of the plan it came back on, not the type the old resize awaited')
  t.same(await jobs(store, id), ['provision:done', 'resize:canceled', 'deprovision:done', 'provision:done'], 'no resize latched onto the new server')
  t.equal(executor.calls.resize, 1)

  // A later plan change gets a resize of its own.
  await deliver(app, planEvent(id, 'sub_r2', 'pro'))
  const next = (await store.listJobs({ tenant: id })).at(-1)!
  t.match(next, { kind: 'resize', status: 'queued', step: '' })
  t.not(next.id, resize.id)
  await runAll(app, store)
  t.equal(executor.servers.get(back.serverId!)?.type, TYPE.pro, 'the new server is resized to the new plan')
  t.match(await store.getJob(next.id), { status: 'done' })
})

t.test('a tenant back on its kept server before the teardown ran is resized if the cancellation called its resize off', async (t) => {
  const { app, store, id, executor, live } = await liveTenant(t)
  await deliver(app, planEvent(id, 'sub_r', 'pro'))
  await deliver(app, cancel(id, 'sub_r', 'pro'))
  t.same(await jobs(store, id), ['provision:done', 'resize:canceled', 'deprovision:queued'])
  // A new subscription on the same plan: no plan change, the teardown not begun.
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'pro', subscription: 'sub_r2' }), { created: created++ }))
  t.match(await store.getTenant(id), { billing: 'paid', plan: 'pro', infra: 'ready', serverId: live.serverId })
  const reactivated = (await store.listAudit({ tenant: id })).find((e) => e.action === 'tenant.reactivated')
  t.same(await jobs(store, id), ['provision:done', 'resize:canceled', 'deprovision:canceled', 'resize:queued'])
  t.equal(reactivated?.detail.resize_job, (await store.listJobs({ tenant: id })).at(-1)?.id, 'the reactivation queued a look at the server')
  await runAll(app, store)
  t.equal(executor.servers.get(live.serverId!)?.type, TYPE.pro, 'of the plan it came back on')
  t.equal(executor.servers.size, 1)
})

t.test('a tenant canceled and back on another plan while its first server is set up gets that plan\'s type once the provisioning ends', async (t) => {
  keepAlive(t)
  const executor = new FakeExecutor()
  const { app, store, id } = await setup(t, executor)
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'pro', subscription: 'sub_r' }), { created: created++ }))
  // The server is made; its health check is still awaited.
  const health = executor.holdNext('health')
  const provisioning = runOne(app, store)
  await health.reached
  const tenant = (await store.getTenant(id))!
  t.equal(executor.servers.get(tenant.serverId!)?.type, TYPE.pro, 'made at Pro')
  // Its last state names Solo (a downgrade the cancellation ended), and it comes back on Solo.
  await deliver(app, cancel(id, 'sub_r', 'solo'))
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'solo', subscription: 'sub_r2' }), { created: created++ }))
  t.match(await store.getTenant(id), { billing: 'paid', plan: 'solo' }, 'back, on Solo')
  t.same(await jobs(store, id), ['provision:running', 'deprovision:canceled', 'resize:queued'], 'the reactivation queued a look at the server, as the provisioning will not look again')
  health.release()
  await provisioning
  await runAll(app, store)
  t.match(await store.getTenant(id), { infra: 'ready', plan: 'solo', serverId: tenant.serverId })
  t.equal(executor.servers.get(tenant.serverId!)?.type, TYPE.solo, 'resized to the plan it came back on')
  t.equal(executor.servers.size, 1)
})

t.test('Linode refusing a resize fails the job for the operator, not the tenant; the operator\'s retry runs it again', async (t) => {
  const logLines: Array<Record<string, unknown>> = []
  const { app, store, id, executor, live } = await liveTenant(t, new FakeExecutor(), logLines)
  const reason = 'Linode API 400: The Linode has allocated more disk than the new service plan allows. (POST /linode/instances/1/resize)'
  executor.failNext('resize', 1, new ExecutorError(reason, { retryable: false }))
  await deliver(app, planEvent(id, 'sub_r', 'pro'))
  await runAll(app, store)
  t.match((await store.listJobs({ tenant: id })).at(-1), { kind: 'resize', status: 'failed', attempts: 1, lastError: reason })
  t.match(await store.getTenant(id), { infra: 'ready', plan: 'pro', error: null }, 'the tenant is not failed')
  t.equal((await app.inject(`/tenants/${id}/status`)).json().state, 'active', 'and its CTF stays up')
  t.equal(executor.servers.get(live.serverId!)?.type, TYPE.solo, 'at the old size')
  t.match((await store.listAudit({ tenant: id })).find((e) => e.action === 'resize.failed')?.detail, { reason, attempts: 1, step: '' })
  t.ok(logLines.some((l) => l.level === 50 && /resize failed/.test(String(l.msg)) && l.tenant === id), 'an error line for the operator')
  const view = (await app.inject({ url: `/admin/tenants/${id}`, headers: auth })).json()
  t.match(view.jobs.at(-1), { kind: 'resize', status: 'failed', last_error: reason }, 'the admin view says why')

  const retried = await app.inject({ method: 'POST', url: `/admin/tenants/${id}/retry`, headers: auth })
  t.equal(retried.statusCode, 200)
  t.equal(retried.json().state, 'active')
  await runAll(app, store)
  t.equal(executor.servers.get(live.serverId!)?.type, TYPE.pro, 'resized once retried')
  t.same(await jobs(store, id), ['provision:done', 'resize:failed', 'resize:done'])
  const trail = await actions(store, id)
  t.same(trail.slice(trail.indexOf('resize.failed')), ['resize.failed', 'resize.retry_requested', 'resize.started', 'server.resized', 'resize.done'])
  const again = await app.inject({ method: 'POST', url: `/admin/tenants/${id}/retry`, headers: auth })
  t.equal(again.statusCode, 409, 'nothing failed any more')
  t.match(again.json(), { error: 'conflict', message: /this tenant is active and has no failed resize\./ })
})

t.test('a resize whose server does not pass its health check in time fails the job; the tenant stays as it is', async (t) => {
  const { store, runner, id, executor } = await directRunner(t, { healthS: 0.05, pollIntervalMs: 5 })
  await runOnce(store, runner)
  t.equal((await store.getTenant(id))?.infra, 'ready')
  await store.updateTenant(id, { plan: 'pro' })
  await store.enqueueJob({ kind: 'resize', tenant: id, runAfter: 0 })
  executor.unhealthyChecks = 1_000_000
  await runOnce(store, runner)
  t.match((await store.listJobs({ tenant: id })).at(-1), { kind: 'resize', status: 'failed', step: `resized:${TYPE.pro}`, lastError: /healthcheck did not answer 200/ })
  t.match(await store.getTenant(id), { infra: 'ready', error: null })

  // The server is of its plan's type now, but its CTF must answer before a retry ends as done.
  await store.enqueueJob({ kind: 'resize', tenant: id, runAfter: 0 })
  const checks = executor.calls.health
  await runOnce(store, runner)
  t.ok(executor.calls.health > checks, 'the retry checks the CTF again')
  t.match((await store.listJobs({ tenant: id })).at(-1), { kind: 'resize', status: 'failed', lastError: /healthcheck did not answer 200/ }, 'and fails again while it does not answer')
  executor.unhealthyChecks = 0
  await store.enqueueJob({ kind: 'resize', tenant: id, runAfter: 0 })
  await runOnce(store, runner)
  t.match((await store.listJobs({ tenant: id })).at(-1), { kind: 'resize', status: 'done' }, 'done once it answers')
  t.equal(executor.calls.resize, 1, 'never asked Linode again: the type was right')
})

t.test('a server still busy (an earlier resize under way) is waited out before its type decides anything', async (t) => {
  const { store, runner, id, executor } = await directRunner(t, { pollIntervalMs: 5 })
  await runOnce(store, runner)
  const serverId = (await store.getTenant(id))!.serverId!
  // A resize to pro the cancellation called off is still moving the server; the plan is solo again.
  executor.servers.get(serverId)!.status = 'resizing'
  const job = await store.enqueueJob({ kind: 'resize', tenant: id, runAfter: 0 })
  await runOnce(store, runner)
  t.match(await store.getJob(job.id), { status: 'queued', attempts: 0, step: '', lastError: /waiting for the server to settle/ }, 'queued again, uncounted: not "unchanged"')
  t.ok((await store.listAudit({ tenant: id })).some((e) => e.action === 'resize.postponed' && e.detail.reason === 'the server is resizing'))
  // It lands on pro: the job then brings it back to the plan's type.
  Object.assign(executor.servers.get(serverId)!, { status: 'running', type: TYPE.pro })
  await store.updateJob(job.id, { runAfter: 0 })
  await runOnce(store, runner)
  t.match(await store.getJob(job.id), { status: 'done' })
  t.equal(executor.servers.get(serverId)!.type, TYPE.solo, 'back at the plan\'s type')
})

t.test('an attempt that reaches its cap while Linode resizes goes on in a new one, uncounted', async (t) => {
  const { store, runner, id, executor } = await directRunner(t, { capS: 1, pollIntervalMs: 5 })
  await runOnce(store, runner)
  await store.updateTenant(id, { plan: 'pro' })
  const job = await store.enqueueJob({ kind: 'resize', tenant: id, runAfter: 0 })
  // Holds are taken in order: the first read goes on, the second (the wait for the new type)
  // hangs until the cap aborts it.
  executor.holdNext('get').release()
  const held = executor.holdNext('get')
  await runOnce(store, runner)
  t.equal(held.ended, 'aborted', 'the cap cancelled the wait')
  t.match(await store.getJob(job.id), { status: 'queued', attempts: 0, step: `resizing:${TYPE.pro}` }, 'queued again at its step, no attempt counted')
  await runOnce(store, runner)
  t.match(await store.getJob(job.id), { status: 'done', step: `resized:${TYPE.pro}` })
  t.equal(executor.calls.resize, 1, 'asked once')
})

t.test('a resize job whose worker died resumes after its last finished step', async (t) => {
  const { app, store, id, executor, live } = await liveTenant(t)
  await deliver(app, planEvent(id, 'sub_r', 'pro'))
  // Worker "dead-worker" asks for the resize, commits that step, and dies with its lease.
  const job = (await store.claimNextJob('dead-worker', Date.now(), 60_000))!
  t.equal(job.kind, 'resize')
  await executor.resizeServer(live.serverId!, TYPE.pro)
  await store.updateJob(job.id, { step: `resizing:${TYPE.pro}`, stepAt: Date.now() })
  t.equal(await store.claimNextJob('other', job.leaseUntil - 1, 60_000), undefined, 'not claimable while the lease holds')
  const reclaimed = (await store.claimNextJob(app.jobs.owner, job.leaseUntil, 60_000))!
  t.match(reclaimed, { id: job.id, step: `resizing:${TYPE.pro}`, attempts: 1 }, 'taken again at its step; the lost attempt counted')
  await app.jobs.runJob(reclaimed)
  t.match(await store.getJob(job.id), { status: 'done' })
  t.equal(executor.calls.resize, 1, 'the resize was not asked again')
  t.same((await actions(store, id)).slice(-2), ['server.resized', 'resize.done'])
})
