import t, { type Test } from 'tap'
import { buildTestApp } from '../helpers/build-app.ts'
import { checkoutSession, deliver, makeEvent, subscription } from '../helpers/stripe-events.ts'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import { ExecutorError } from '../../api/provisioning/executor.ts'
import { verifyStoredChain } from '../../api/provisioning/audit.ts'
import type { FastifyInstance } from 'fastify'
import type { Store } from '../../api/store/store.ts'
import { PostgresStore } from '../../api/store/postgres.ts'
import { usePostgres } from '../helpers/postgres.ts'
import { until } from '../helpers/until.ts'

async function liveTenant (app: FastifyInstance, store: Store, sub: string): Promise<string> {
  const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'pro', name: 'Teardown CTF' } })).json().tenant_id
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'pro', subscription: sub })))
  await until(async () => (await store.getTenant(id))?.infra === 'ready', 'ready')
  return id
}

const cancel = (id: string, sub: string) => makeEvent('customer.subscription.deleted', subscription({ id: sub, tenantId: id, status: 'canceled', plan: 'pro' }))
const reactivate = (id: string, sub: string) => makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'pro', subscription: sub }))

/** The runner's timers are unref'd: keep the process up while a test awaits a gate. */
function keepAlive (t: Test): void {
  const timer = setInterval(() => {}, 1000)
  t.teardown(() => clearInterval(timer))
}

async function teardownJob (store: Store, id: string) {
  return (await store.listJobs({ tenant: id })).find((j) => j.kind === 'deprovision')
}

/** A live tenant (subscription `sub_first`) on an app whose runner is stopped: the test claims and runs jobs itself. */
async function liveTenantRunnerStopped (t: Test, graceHours: string) {
  const executor = new FakeExecutor()
  const { app, store } = await buildTestApp(t, { executor, runJobs: false, env: { DEPROVISION_GRACE_HOURS: graceHours, WEBHOOK_WAIT_MS: '0' } })
  const id: string = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'pro', name: 'Teardown CTF' } })).json().tenant_id
  await deliver(app, reactivate(id, 'sub_first'))
  app.jobs.start()
  await until(async () => (await store.getTenant(id))?.infra === 'ready', 'ready')
  await app.jobs.stop()
  return { app, store, executor, id }
}

/** A reactivation lands while the teardown's destroy call is in flight. */
async function reactivateDuringDestroy (t: Test, given?: Store): Promise<void> {
  const executor = new FakeExecutor()
  const { app, store, config } = await buildTestApp(t, { executor, store: given, env: { DEPROVISION_GRACE_HOURS: '0' } })
  const id = await liveTenant(app, store, 'sub_first')
  const old = (await store.getTenant(id))!
  const destroying = executor.holdNext('destroy')
  keepAlive(t)
  await deliver(app, cancel(id, 'sub_first'))
  app.jobs.kick()
  await destroying.reached
  const back = await deliver(app, reactivate(id, 'sub_second'))
  // Its DNS record is gone and its server going: not `active`, though the teardown, not the
  // tenant service, queues the new server (a provision job beside it would race its sweep).
  t.equal(back.json().tenant_state, 'provisioning', 'not "active" while its server is destroyed')
  t.match((await app.inject(`/tenants/${id}/status`)).json(), { state: 'provisioning', billing: 'paid', infra: 'provisioning' })
  t.same((await store.listJobs({ tenant: id })).map((j) => `${j.kind}:${j.status}`), ['provision:done', 'deprovision:running'], 'no provision job beside the teardown')
  destroying.release()

  await until(async () => (await teardownJob(store, id))?.status === 'done', 'teardown done')
  await until(async () => (await store.getTenant(id))?.infra === 'ready', 'ready again')
  const tenant = (await store.getTenant(id))!
  t.match(tenant, { billing: 'paid', infra: 'ready', subscriptionId: 'sub_second', error: null })
  t.not(tenant.serverId, old.serverId, 'a new server')
  t.notOk(executor.servers.has(old.serverId!), 'the old one is gone')
  t.equal(executor.servers.size, 1)
  t.equal(executor.calls.create, 2)
  t.ok(tenant.dnsRecordId !== null && executor.records.get(tenant.dnsRecordId)?.target === tenant.ipv4, 'DNS points at the new server')
  const provisions = (await store.listJobs({ tenant: id })).filter((j) => j.kind === 'provision')
  t.same(provisions.map((j) => j.status), ['done', 'done'])
  const audit = await store.listAudit({ tenant: id })
  const actions = audit.map((e) => e.action)
  t.same(actions.slice(actions.indexOf('teardown.scheduled')), [
    'teardown.scheduled', 'dns.removed', 'tenant.reactivated', 'server.destroyed', 'teardown.done', 'provision.queued',
    'server.created', 'server.running', 'dns.record', 'health.ok', 'provision.ready'
  ])
  t.match(audit.find((e) => e.action === 'provision.queued' && e.detail.source === 'teardown')?.detail, { reason: /reactivated/, provision_job: provisions[1]!.id })
  t.match(audit.find((e) => e.action === 'tenant.reactivated')?.detail, { running_teardown: (await teardownJob(store, id))!.id, teardown_step: 'dns_removed' })
  const chain = await store.listAudit({})
  t.match(await verifyStoredChain(store, config.auditSecret), { ok: true, entries: chain.length, lastSeq: chain.length })
}

t.test('a reactivation while the server is being destroyed provisions a new one', async (t) => {
  await reactivateDuringDestroy(t)
})

t.test('the same on PostgreSQL, where the tenant row lock orders teardown and webhook', async (t) => {
  const server = await usePostgres(t)
  if (server === undefined) return
  const store = new PostgresStore({ url: await server.createDatabase(), poolSize: 5 })
  await store.migrate()
  t.teardown(() => store.close())
  await reactivateDuringDestroy(t, store)
})

t.test('a reactivation before the destroy step calls the teardown off and keeps the server', async (t) => {
  const executor = new FakeExecutor()
  const { app, store } = await buildTestApp(t, { executor, env: { DEPROVISION_GRACE_HOURS: '0' } })
  const id = await liveTenant(app, store, 'sub_first')
  const old = (await store.getTenant(id))!
  const removingDns = executor.holdNext('removeDns')
  keepAlive(t)
  await deliver(app, cancel(id, 'sub_first'))
  app.jobs.kick()
  await removingDns.reached
  const back = await deliver(app, reactivate(id, 'sub_second'))
  t.equal(back.json().tenant_state, 'provisioning', 'not "active" while its DNS record is being removed')
  t.equal((await app.inject(`/tenants/${id}/status`)).json().state, 'provisioning')
  removingDns.release()

  await until(async () => ['done', 'canceled'].includes((await teardownJob(store, id))?.status ?? ''), 'teardown settled')
  t.equal((await teardownJob(store, id))?.status, 'canceled', 'called off')
  t.equal(executor.calls.destroy, 0, 'no destroy call')
  t.ok(executor.servers.has(old.serverId!), 'the server is kept')
  const skipped = (await store.listAudit({ tenant: id })).find((e) => e.action === 'teardown.skipped')
  t.match(skipped?.detail, { reason: 'tenant is no longer canceled' })

  // The record went with the first step: a provision job adopts the server and restores it.
  await until(async () => (await store.getTenant(id))?.dnsRecordId !== null, 'DNS restored')
  await until(async () => (await store.getTenant(id))?.infra === 'ready', 'ready')
  const tenant = (await store.getTenant(id))!
  t.equal(tenant.serverId, old.serverId, 'the same server')
  t.equal(executor.servers.size, 1)
  t.equal(executor.records.get(tenant.dnsRecordId!)?.target, old.ipv4)
  const actions = (await store.listAudit({ tenant: id })).map((e) => e.action)
  t.same(actions.slice(actions.indexOf('teardown.scheduled')), [
    'teardown.scheduled', 'tenant.reactivated', 'dns.removed', 'teardown.skipped', 'provision.queued',
    'server.adopted', 'server.running', 'dns.record', 'health.ok', 'provision.ready'
  ])
  t.equal((await app.inject(`/tenants/${id}/status`)).json().state, 'active')
})

t.test('a tenant reactivated before its teardown starts is left alone', async (t) => {
  const { app, store, executor, id } = await liveTenantRunnerStopped(t, '0')
  await deliver(app, cancel(id, 'sub_first'))
  // The teardown is claimed (running) before the reactivation, so the service cannot call it off.
  const job = (await store.claimNextJob(app.jobs.owner, Date.now(), app.jobs.leaseMs))!
  t.equal(job.kind, 'deprovision')
  const back = await deliver(app, reactivate(id, 'sub_second'))
  t.equal((await teardownJob(store, id))?.status, 'running')
  t.equal(back.json().tenant_state, 'active', 'it has removed nothing yet, and will not: still active')
  await app.jobs.runJob(job)
  t.equal((await teardownJob(store, id))?.status, 'canceled')
  t.equal(executor.calls.removeDns + executor.calls.destroy, 0, 'nothing removed')
  t.equal((await store.listJobs({ tenant: id })).filter((j) => j.kind === 'provision').length, 1, 'nothing to restore')
  t.match(await store.getTenant(id), { billing: 'paid', infra: 'ready' })
})

t.test('a tenant reactivated and canceled again while its teardown runs keeps its server for the new grace period', async (t) => {
  const hour = 3_600_000
  const { app, store, executor, id } = await liveTenantRunnerStopped(t, '1')
  const old = (await store.getTenant(id))!
  await deliver(app, cancel(id, 'sub_first'))
  // The first grace period has run out: the cancel is an hour and a half old.
  await store.updateTenant(id, { canceledAt: new Date(Date.now() - 1.5 * hour).toISOString() })
  const job = (await store.claimNextJob(app.jobs.owner, Date.now() + 2 * hour, app.jobs.leaseMs))!
  t.equal(job.kind, 'deprovision')

  // While its first step is in flight, the tenant pays again and cancels again.
  const removingDns = executor.holdNext('removeDns')
  keepAlive(t)
  const running = app.jobs.runJob(job)
  await removingDns.reached
  await deliver(app, reactivate(id, 'sub_second'))
  const before = Date.now()
  await deliver(app, cancel(id, 'sub_second'))
  removingDns.release()
  await running

  const waiting = (await teardownJob(store, id))!
  t.match(waiting, { id: job.id, status: 'queued', step: 'dns_removed', leaseOwner: null, attempts: 0 }, 'waits, after its finished step')
  const canceledAt = Date.parse((await store.getTenant(id))!.canceledAt!)
  t.ok(canceledAt >= before - 1000, 'the second cancel is the one on record')
  t.equal(waiting.runAfter, canceledAt + hour, 'until the new grace period ends')
  t.equal(executor.calls.destroy, 0, 'no destroy call')
  t.ok(executor.servers.has(old.serverId!), 'the server is kept')
  t.match(await store.getTenant(id), { billing: 'canceled', serverId: old.serverId })
  const actions = (await store.listAudit({ tenant: id })).map((e) => e.action)
  t.same(actions.slice(actions.indexOf('teardown.scheduled')), [
    'teardown.scheduled', 'tenant.reactivated', 'teardown.scheduled', 'dns.removed', 'teardown.postponed'
  ])
  const postponed = (await store.listAudit({ tenant: id })).find((e) => e.action === 'teardown.postponed')
  t.match(postponed?.detail, { job: job.id, step: 'dns_removed', run_after: new Date(canceledAt + hour).toISOString() })
  t.equal(await store.claimNextJob(app.jobs.owner, Date.now(), app.jobs.leaseMs), undefined, 'not due before then')

  // Once the new grace period has run out, it resumes with the server.
  await store.updateTenant(id, { canceledAt: new Date(Date.now() - 1.5 * hour).toISOString() })
  const resumed = (await store.claimNextJob(app.jobs.owner, Date.now() + 2 * hour, app.jobs.leaseMs))!
  t.equal(resumed.id, job.id)
  await app.jobs.runJob(resumed)
  t.equal((await teardownJob(store, id))?.status, 'done')
  t.equal(executor.calls.removeDns, 1, 'the record was removed once')
  t.notOk(executor.servers.has(old.serverId!), 'the server is destroyed')
  t.match(await store.getTenant(id), { billing: 'canceled', infra: 'deprovisioned', serverId: null })
})

t.test('a teardown claimed early never runs before the grace period of the latest cancel', async (t) => {
  const { app, store, executor, id } = await liveTenantRunnerStopped(t, '1')
  await deliver(app, cancel(id, 'sub_first'))
  // Claimed with its lease (running), then reactivated and canceled again before its first look.
  const job = (await store.claimNextJob(app.jobs.owner, Date.now() + 2 * 3_600_000, app.jobs.leaseMs))!
  await deliver(app, reactivate(id, 'sub_second'))
  await deliver(app, cancel(id, 'sub_second'))
  t.equal((await teardownJob(store, id))?.status, 'running', 'the cancel found it live and queued no other')
  await app.jobs.runJob(job)
  t.match(await teardownJob(store, id), { id: job.id, status: 'queued', step: '' })
  t.equal(executor.calls.removeDns + executor.calls.destroy, 0, 'nothing removed')
  t.match(await store.getTenant(id), { billing: 'canceled', infra: 'ready' })
  t.equal((await app.inject(`/tenants/${id}/status`)).json().state, 'canceled')
})

/** Paid, then canceled while its first server is being made (the create held until released). */
async function cancelWhileCreating (t: Test, graceHours: string, name: string, sub: string) {
  const executor = new FakeExecutor()
  const { app, store } = await buildTestApp(t, { executor, env: { DEPROVISION_GRACE_HOURS: graceHours, WEBHOOK_WAIT_MS: '0' } })
  const id: string = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'pro', name } })).json().tenant_id
  const creating = executor.holdNext('create')
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'pro', subscription: sub })))
  await creating.reached
  await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: sub, tenantId: id, status: 'canceled', plan: 'pro' })))
  return { executor, app, store, id, creating }
}

t.test('a cancel while the first server is being created: the teardown waits for the provisioning, and no server is left', async (t) => {
  const { executor, app, store, id, creating } = await cancelWhileCreating(t, '0', 'Race CTF', 'sub_race_create')
  app.jobs.kick()
  // The teardown gets its chance while the server is still being made.
  await new Promise((resolve) => setTimeout(resolve, 300))
  creating.release()
  await until(async () => (await store.listJobs({ tenant: id })).every((j) => j.status !== 'queued' && j.status !== 'running'), 'the jobs settle', 20_000)
  t.equal(executor.servers.size, 0, 'no server keeps running (and billing) for a canceled tenant')
  t.equal((await store.getTenant(id))?.infra, 'deprovisioned')
  t.equal((await app.inject(`/tenants/${id}/status`)).json().error, 'The subscription was canceled.', 'the provisioning that ended later kept the reason')
})

t.test('a provisioning that fails for good after a cancel keeps the cancellation as the reason', async (t) => {
  const { executor, app, store, id, creating } = await cancelWhileCreating(t, '72', 'Failed Race CTF', 'sub_race_fail')
  executor.failNext('create', 1, new ExecutorError('the region is out of capacity', { retryable: false }))
  creating.release()
  await until(async () => (await store.listJobs({ tenant: id })).some((j) => j.kind === 'provision' && j.status === 'failed'), 'the provisioning fails')
  const status = (await app.inject(`/tenants/${id}/status`)).json()
  t.match(status, { state: 'canceled', infra: 'failed', error: 'The subscription was canceled.' }, 'not "our team can retry it": no retry is offered a canceled tenant')
})

t.test('retrying a teardown that has not failed (still in its grace period) is refused', async (t) => {
  const { app, store } = await buildTestApp(t, { env: { DEPROVISION_GRACE_HOURS: '72' } })
  const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Grace CTF' } })).json().tenant_id
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'solo', subscription: 'sub_grace' })))
  await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: 'sub_grace', tenantId: id, status: 'canceled', plan: 'solo' })))
  t.match((await store.listJobs({ tenant: id })).filter((j) => j.kind === 'deprovision'), [{ status: 'queued' }])
  t.equal(await app.tenants.retryTeardown(id), false, 'nothing failed: nothing to retry')
  const audit = await store.listAudit({ tenant: id })
  t.notOk(audit.some((e) => e.action === 'teardown.retry_requested'), 'and no retry is written down')
})
