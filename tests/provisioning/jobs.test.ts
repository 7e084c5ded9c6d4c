import t from 'tap'
import { pino } from 'pino'
import { buildTestApp, storeWithOverrides } from '../helpers/build-app.ts'
import { checkoutSession, deliver, invoice, makeEvent, subscription } from '../helpers/stripe-events.ts'

const invoiceFor = (sub: string) => invoice({ subscription: sub })
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import { ExecutorError, type ServerInfo } from '../../api/provisioning/executor.ts'
import { JobRunner } from '../../api/provisioning/jobs.ts'
import { serverSpecFor } from '../../api/provisioning/provision.ts'
import { verifyStoredChain } from '../../api/provisioning/audit.ts'
import type { Job, Store } from '../../api/store/store.ts'
import type { FastifyInstance } from 'fastify'
import { until } from '../helpers/until.ts'
import { directRunner, runOnce } from '../helpers/job-runner.ts'

async function paidTenant (app: FastifyInstance, sub = 'sub_jobs'): Promise<string> {
  const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'pro', name: 'Jobs CTF' } })).json().tenant_id
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'pro', subscription: sub })))
  return id
}

t.test('retryable failures back off and retry; every step is audited', async (t) => {
  const executor = new FakeExecutor()
  executor.failNext('dns', 2)
  const { app, store } = await buildTestApp(t, { executor, env: { PROVISION_MAX_ATTEMPTS: '5' } })
  const id = await paidTenant(app)
  await until(async () => (await store.getTenant(id))?.infra === 'ready', 'ready')
  const [job] = await store.listJobs({ tenant: id })
  t.equal(job?.status, 'done')
  t.equal(job?.attempts, 2, 'two failed attempts before success')
  t.equal(executor.calls.create, 1, 'later attempts resume at the failed step')
  t.equal(executor.calls.dns, 3)
  t.equal(executor.servers.size, 1, 'exactly one server')
  const actions = (await store.listAudit({ tenant: id })).map((e) => e.action)
  t.same(actions, [
    'tenant.created', 'provision.queued', 'server.created', 'server.running', 'provision.attempt_failed',
    'provision.attempt_failed', 'dns.record', 'health.ok', 'provision.ready'
  ])
  t.match(await verifyStoredChain(store, app.config.auditSecret), { ok: true, entries: actions.length, lastSeq: actions.length })
  const tenant = await store.getTenant(id)
  t.equal(tenant?.error, null)
  t.ok(tenant?.serverId)
  t.ok(tenant?.dnsRecordId)
})

t.test('the last attempt fails the tenant with a readable error', async (t) => {
  const executor = new FakeExecutor()
  executor.failNext('create', 10, new ExecutorError('Linode API 503: maintenance', { retryable: true }))
  const logLines: Array<Record<string, unknown>> = []
  const { app, store } = await buildTestApp(t, { executor, logLines, env: { PROVISION_MAX_ATTEMPTS: '3' } })
  const id = await paidTenant(app)
  await until(async () => (await store.getTenant(id))?.infra === 'failed', 'failed')
  // The buyer's page says the team has been told: the last failure is an error line of its own,
  // not the warning each retried attempt gets.
  const lines = logLines.filter((l) => l.tenant === id)
  t.equal(lines.filter((l) => l.msg === 'job attempt failed' && l.level === 40).length, 3, 'each attempt warns')
  const failed = lines.filter((l) => l.level === 50)
  t.equal(failed.length, 1, 'one error line')
  t.match(failed[0], { msg: /^provisioning failed: .*ctfhive retry/, attempts: 3, step: '', reason: 'Linode API 503: maintenance', canceled: false })
  const status = (await app.inject(`/tenants/${id}/status`)).json()
  t.equal(status.state, 'failed')
  t.equal(status.error, 'Provisioning failed after 3 attempts; our team has the details and can retry it.', 'the public status says what happened, not why')
  // Not the whole body: its random id and timestamps may hold a "503".
  t.notMatch(status.error, /Linode|503|maintenance/, 'no provider detail in public')
  const [job] = await store.listJobs({ tenant: id })
  t.equal(job?.lastError, 'Linode API 503: maintenance', 'the operator sees the cause on the job')
  t.ok((await store.listAudit({ tenant: id })).some((e) => e.action === 'provision.failed' && e.detail.reason === 'Linode API 503: maintenance'), 'and in the audit log')
  t.equal(job?.status, 'failed')
  t.equal(job?.attempts, 3)
  t.equal(executor.calls.create, 3)

  // An operator retry re-queues it; this time it goes through.
  executor.clearFailures()
  t.equal(await app.tenants.retryProvisioning(id), true, 'queued')
  t.match(await store.getTenant(id), { infra: /^(provisioning|ready)$/ })
  await until(async () => (await store.getTenant(id))?.infra === 'ready', 'ready after retry')
  t.equal((await app.inject(`/tenants/${id}/status`)).json().state, 'active')
  t.equal(await app.tenants.retryProvisioning(id), false, 'retry of a healthy tenant does nothing')
  t.equal((await store.getTenant(id))?.infra, 'ready')
})

t.test('a non-retryable error fails at once', async (t) => {
  const executor = new FakeExecutor()
  executor.failNext('create', 1, new ExecutorError('Linode API 400: type: not a valid type', { retryable: false }))
  const { app, store } = await buildTestApp(t, { executor, env: { PROVISION_MAX_ATTEMPTS: '5' } })
  const id = await paidTenant(app)
  await until(async () => (await store.getTenant(id))?.infra === 'failed', 'failed')
  t.equal((await store.listJobs({ tenant: id }))[0]?.attempts, 1)
})

t.test('a control character in an error (a NUL, which PostgreSQL\'s text refuses) is kept as its code', async (t) => {
  const executor = new FakeExecutor()
  executor.failNext('create', 1, new ExecutorError('Linode API 400: label: ctf-\u0000x\u001b[31m\tbad\nline', { retryable: false }))
  const { app, store } = await buildTestApp(t, { executor })
  const id = await paidTenant(app)
  await until(async () => (await store.getTenant(id))?.infra === 'failed', 'failed')
  t.equal((await store.listJobs({ tenant: id }))[0]?.lastError, 'Linode API 400: label: ctf-\\u0000x\\u001b[31m\tbad\nline')
})

t.test('the wall-clock cap ends an attempt', async (t) => {
  const executor = new FakeExecutor()
  // The health call is held until aborted, so only the cap can end the attempt; the cap is
  // long enough for the steps before it on a slow machine. The health check's own deadline
  // (1 s) has passed by then, so the cap counts as a failed attempt (jobs-health.test.ts).
  const health = executor.holdNext('health')
  const { store, runner, job, id } = await directRunner(t, { executor, capS: 3, maxAttempts: 1, healthS: 1, pollIntervalMs: 10 })
  t.equal((await runOnce(store, runner)).id, job.id)
  t.equal(health.ended, 'aborted', 'the cap cancelled the held health call')
  const tenant = await store.getTenant(id)
  t.equal(tenant?.infra, 'failed')
  t.equal(tenant?.error, 'Provisioning failed after 1 attempt; our team has the details and can retry it.')
  t.match(await store.getJob(job.id), { step: 'dns', lastError: /exceeded its 3 s cap/ }, 'it got as far as the health check; the job says why it ended')
})

/** Worker "dead-worker" takes the job, creates the server and commits that step, then dies (its lease lasts `leaseMs`). */
async function diesAfterCreate (app: FastifyInstance, store: Store, executor: FakeExecutor, id: string, leaseMs: number): Promise<{ job: Job, server: ServerInfo }> {
  const job = (await store.claimNextJob('dead-worker', Date.now(), leaseMs))!
  const { server } = await executor.createOrAdopt(serverSpecFor((await store.getTenant(id))!, app.config))
  await store.transaction(async (tx) => {
    await tx.updateJob(job.id, { step: 'created' })
    await tx.updateTenant(id, { serverId: server.id, ipv4: server.ipv4 })
  })
  return { job, server }
}

t.test('a crashed worker’s job resumes after its last finished step', async (t) => {
  const executor = new FakeExecutor()
  const { app, store } = await buildTestApp(t, { executor, runJobs: false, env: { WEBHOOK_WAIT_MS: '0' } })
  const id = await paidTenant(app)
  const { job } = await diesAfterCreate(app, store, executor, id, 60_000)
  // Explicit claim times around the lease's end, so how long the steps took does not matter.
  t.equal(await store.claimNextJob('other', job.leaseUntil - 1, 60_000), undefined, 'not claimable while the lease holds')
  const reclaimed = await store.claimNextJob(app.jobs.owner, job.leaseUntil, 60_000)
  t.equal(reclaimed?.id, job.id, 'claimable once the lease has lapsed')
  t.equal(reclaimed?.step, 'created', 'with the step the dead worker committed')
  const before = executor.calls.create
  await app.jobs.runJob(reclaimed!)
  t.equal((await store.getTenant(id))?.infra, 'ready')
  t.equal(executor.calls.create, before, 'the create step was not run again')
  t.equal(executor.servers.size, 1)
  const done = await store.getJob(job.id)
  t.equal(done?.status, 'done')
  t.not(done?.leaseOwner, 'dead-worker')
})

t.test('a server deleted behind the job is forgotten: the next attempt makes a new one', async (t) => {
  const executor = new FakeExecutor()
  const { app, store } = await buildTestApp(t, { executor, runJobs: false, env: { WEBHOOK_WAIT_MS: '0' } })
  const id = await paidTenant(app)
  const { job, server } = await diesAfterCreate(app, store, executor, id, 1)
  executor.servers.delete(server.id) // someone deleted it in the provider's console
  await new Promise((resolve) => setTimeout(resolve, 5))
  const runner = new JobRunner({ store, executor, config: app.config, log: pino({ level: 'silent' }), backoffMs: () => 0, pollIntervalMs: 1 })
  t.teardown(() => runner.stop())
  runner.start()
  await until(async () => (await store.getTenant(id))?.infra === 'ready', 'ready')
  const now = (await store.getTenant(id))!
  t.not(now.serverId, server.id, 'a new server')
  t.ok(executor.servers.has(now.serverId!))
  const actions = (await store.listAudit({ tenant: id })).map((e) => e.action)
  t.ok(actions.includes('server.vanished'), 'the loss is audited')
  t.equal((await store.getJob(job.id))?.attempts, 2, "the dead worker's attempt and the one that found the server gone, not all of them")
})

t.test('a server found switched off is booted once the grace has passed, and the boot is audited', async (t) => {
  const executor = new FakeExecutor()
  const { app, store } = await buildTestApp(t, { executor, runJobs: false, env: { WEBHOOK_WAIT_MS: '0' }, jobs: { bootGraceMs: 50 } })
  const id = await paidTenant(app)
  const { job, server } = await diesAfterCreate(app, store, executor, id, 1)
  executor.servers.get(server.id)!.status = 'offline' // switched off in the provider's console
  await new Promise((resolve) => setTimeout(resolve, 5))
  const reclaimed = (await store.claimNextJob(app.jobs.owner, Date.now(), 60_000))!
  t.equal(reclaimed.id, job.id)
  const started = Date.now()
  await app.jobs.runJob(reclaimed)
  t.ok(Date.now() - started >= 50, 'not before the grace')
  t.equal((await store.getTenant(id))?.infra, 'ready')
  t.equal(executor.calls.boot, 1, 'one boot')
  t.equal(await executor.bootServer(server.id), false, 'the fake declines to boot a running server, as Linode does')
  t.ok(executor.calls.get >= 2, 'polled while it was off')
  t.equal(executor.servers.size, 1, 'the same server, not a new one')
  const entries = await store.listAudit({ tenant: id })
  t.same(entries.map((e) => e.action).slice(-5), ['server.boot', 'server.running', 'dns.record', 'health.ok', 'provision.ready'])
  t.same(entries.find((e) => e.action === 'server.boot')?.detail, { job: job.id, server: server.id, status: 'offline' })
  t.match(await verifyStoredChain(store, app.config.auditSecret), { ok: true, entries: entries.length, lastSeq: entries.length })
})

t.test('a server that comes up by itself within the grace is not booted; a declined boot is asked again', async (t) => {
  const executor = new FakeExecutor()
  executor.newServerStatus = 'offline'
  const { app, store } = await buildTestApp(t, { executor, runJobs: false, env: { WEBHOOK_WAIT_MS: '0' }, jobs: { bootGraceMs: 60_000 } })
  const first = await paidTenant(app, 'sub_first')
  const job = (await store.claimNextJob(app.jobs.owner, Date.now(), 60_000))!
  const run = app.jobs.runJob(job)
  await until(async () => executor.calls.get >= 3, 'polls of the server while it is off')
  const serverId = (await store.getTenant(first))!.serverId!
  executor.servers.get(serverId)!.status = 'running' // Linode's own boot got going
  await run
  t.equal((await store.getTenant(first))?.infra, 'ready')
  t.equal(executor.calls.boot, 0, 'never booted: the grace had not passed')

  // No grace: Linode declines the first boot (busy), the next one starts it.
  const { app: app2, store: store2 } = await buildTestApp(t, { executor, runJobs: false, env: { WEBHOOK_WAIT_MS: '0' }, jobs: { bootGraceMs: 0 } })
  const second = await paidTenant(app2, 'sub_second')
  const answers = [false, true]
  executor.bootServer = async (id) => {
    executor.calls.boot++
    const started = answers.shift()!
    if (started) executor.servers.get(id)!.status = 'running'
    return started
  }
  await app2.jobs.runJob((await store2.claimNextJob(app2.jobs.owner, Date.now(), 60_000))!)
  t.equal((await store2.getTenant(second))?.infra, 'ready')
  t.equal(executor.calls.boot, 2, 'asked again after the decline')
  t.equal((await store2.listAudit({ tenant: second })).filter((e) => e.action === 'server.boot').length, 1, 'only the boot that started is audited')
})

t.test('a job whose workers keep dying is counted at each reclaim and fails when the attempts run out', async (t) => {
  const executor = new FakeExecutor()
  const { app, store } = await buildTestApp(t, { executor, runJobs: false, env: { WEBHOOK_WAIT_MS: '0', PROVISION_MAX_ATTEMPTS: '2' } })
  const id = await paidTenant(app)
  // Two workers in turn take the job and die mid-attempt (their leases lapse unreleased).
  for (const dead of ['dead-1', 'dead-2']) {
    t.ok(await store.claimNextJob(dead, Date.now(), 1), `${dead} claims`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  const job = (await store.claimNextJob(app.jobs.owner, Date.now(), 60_000))!
  t.equal(job.attempts, 2, 'each lapsed lease counted one attempt')
  await app.jobs.runJob(job)
  t.equal(executor.calls.create, 0, 'no third try')
  t.match(await store.getJob(job.id), { status: 'failed', attempts: 2, leaseOwner: null, lastError: /2 attempts ended without a result/ })
  t.match(await store.getTenant(id), { infra: 'failed', error: 'Provisioning failed after 2 attempts; our team has the details and can retry it.' })
  t.ok((await store.listAudit({ tenant: id })).some((e) => e.action === 'provision.failed'), 'audited')
})

t.test('cancellation tears down after the grace period; twice is harmless', async (t) => {
  const executor = new FakeExecutor()
  const { app, store } = await buildTestApp(t, { executor, env: { DEPROVISION_GRACE_HOURS: '0' } })
  const id = await paidTenant(app, 'sub_cancel')
  t.equal(executor.servers.size, 1)
  t.equal(executor.records.size, 1)
  await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: 'sub_cancel', tenantId: id, status: 'canceled' })))
  await until(async () => (await store.getTenant(id))?.infra === 'deprovisioned', 'deprovisioned')
  t.equal(executor.servers.size, 0, 'server destroyed')
  t.equal(executor.records.size, 0, 'DNS record removed')
  const tenant = await store.getTenant(id)
  t.equal(tenant?.serverId, null)
  t.equal(tenant?.dnsRecordId, null)
  // A second cancellation (a redelivery under a new id) schedules nothing more.
  await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: 'sub_cancel', tenantId: id, status: 'canceled' })))
  // The webhook commits any job it schedules before it answers, so the store tells at once.
  t.equal((await store.listJobs({ tenant: id })).filter((j) => j.kind === 'deprovision').length, 1, 'one teardown job, not a second')
  t.equal(executor.calls.destroy, 1, 'one deletion')
  const actions = (await store.listAudit({ tenant: id })).map((e) => e.action)
  t.same(actions.slice(-4), ['teardown.scheduled', 'dns.removed', 'server.destroyed', 'teardown.done'])
})

t.test('a tenant canceled before its job runs is never provisioned', async (t) => {
  const executor = new FakeExecutor()
  const { app, store } = await buildTestApp(t, { executor, runJobs: false, env: { WEBHOOK_WAIT_MS: '0' } })
  const id = await paidTenant(app, 'sub_early')
  await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: 'sub_early', tenantId: id, status: 'canceled' })))
  app.jobs.start()
  await until(async () => (await store.listJobs({ tenant: id })).every((j) => j.status !== 'queued' && j.status !== 'running' || j.kind === 'deprovision'), 'provision job settled')
  t.equal(executor.calls.create, 0)
  t.equal((await store.listJobs({ tenant: id })).find((j) => j.kind === 'provision')?.status, 'canceled')
})

t.test('a new paid subscription before teardown reactivates the tenant and keeps its server', async (t) => {
  const executor = new FakeExecutor()
  const { app, store } = await buildTestApp(t, { executor, env: { DEPROVISION_GRACE_HOURS: '1' } })
  const id = await paidTenant(app, 'sub_first')
  await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: 'sub_first', tenantId: id, status: 'canceled' })))
  t.equal((await app.inject(`/tenants/${id}/status`)).json().state, 'canceled')
  const late = await deliver(app, makeEvent('invoice.paid', { ...invoiceFor('sub_first') }))
  t.equal(late.json().status, 'ignored_terminal', 'the canceled subscription stays canceled')
  const back = await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'solo', subscription: 'sub_second' })))
  t.same(back.json(), { status: 'ok', type: 'checkout.session.completed', tenant_id: id, tenant_state: 'active' })
  const s = (await app.inject(`/tenants/${id}/status`)).json()
  t.match(s, { state: 'active', subscription_id: 'sub_second', plan: 'solo', error: null, canceled_at: null })
  t.equal(executor.calls.create, 1, 'the same server, no new one')
  t.equal(executor.servers.size, 1)
  const teardown = (await store.listJobs({ tenant: id })).find((j) => j.kind === 'deprovision')
  t.equal(teardown?.status, 'canceled', 'the scheduled teardown is called off')
  const old = await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: 'sub_first', tenantId: id, status: 'canceled' })))
  t.equal(old.json().status, 'ignored_terminal', 'the ended subscription can no longer cancel the tenant')
  t.equal((await app.inject(`/tenants/${id}/status`)).json().state, 'active')
})

t.test('reactivation after teardown provisions a new server', async (t) => {
  const executor = new FakeExecutor()
  const { app, store } = await buildTestApp(t, { executor, env: { DEPROVISION_GRACE_HOURS: '0' } })
  const id = await paidTenant(app, 'sub_gone')
  await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: 'sub_gone', tenantId: id, status: 'canceled' })))
  await until(async () => (await store.getTenant(id))?.infra === 'deprovisioned', 'deprovisioned')
  const back = await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'pro', subscription: 'sub_new' })))
  t.equal(back.json().tenant_state, 'active')
  t.equal(executor.calls.create, 2)
  t.equal(executor.servers.size, 1)
})

t.test('an error that is not an ExecutorError (a socket hiccup, a store blip) fails the attempt, not the job', async (t) => {
  const { store, runner, job, id, executor } = await directRunner(t, { maxAttempts: 3 })
  executor.failNext('create', 1, new Error('socket hang up'))
  await runOnce(store, runner)
  t.match(await store.getJob(job.id), { status: 'queued', attempts: 1, lastError: 'socket hang up' }, 'queued again after the backoff')
  t.equal((await store.getTenant(id))?.infra, 'provisioning', 'the tenant is not failed')
})

t.test('the default lease outlasts an attempt: no second worker takes a job whose attempt may still run', async (t) => {
  const { store, runner } = await directRunner(t, { capS: 300 })
  const now = Date.now()
  t.ok(await store.claimNextJob(runner.owner, now, runner.leaseMs))
  t.ok(runner.leaseMs > 300_000, `lease ${runner.leaseMs} ms outlasts the 300 s cap`)
  t.equal(await store.claimNextJob('other-worker', now + 300_000, runner.leaseMs), undefined, 'nobody else takes it while the attempt may run')
})

t.test("every time a job, its tenant, its audit and its events keep is the store's clock, not this host's", async (t) => {
  // The database's clock an hour ahead of this host's (PostgreSQL measures it: syncClock).
  const AHEAD = 3_600_000
  const { inner, store } = storeWithOverrides(t)
  const clock = (): number => Date.now() + AHEAD
  store.now = clock
  store.transaction = (fn) => inner.transaction((tx) => fn(Object.assign(Object.create(tx) as typeof tx, { now: clock })))
  const executor = new FakeExecutor()
  executor.failNext('dns', 1)
  const { app } = await buildTestApp(t, { store, executor, env: { PROVISION_MAX_ATTEMPTS: '3' } })
  const from = Date.now() + AHEAD - 60_000
  const id = await paidTenant(app, 'sub_store_clock')
  await until(async () => (await store.getTenant(id))?.infra === 'ready', 'ready by the store clock')
  const [job] = await store.listJobs({ tenant: id })
  t.ok(job!.runAfter >= from, `the retry's due time is the store's (${job!.runAfter - Date.now()} ms from this host's now)`)
  t.ok(job!.stepAt >= from, "the step time is the store's")
  t.ok(Date.parse(job!.createdAt) >= from, "the job's creation is the store's")
  const tenant = await store.getTenant(id)
  for (const at of [tenant!.createdAt, tenant!.paidAt!, tenant!.readyAt!]) t.ok(Date.parse(at) >= from, `tenant time ${at}`)
  for (const e of await store.listAudit({ tenant: id })) t.ok(Date.parse(e.at) >= from, `${e.action} at ${e.at}`)
  for (const e of await store.listEvents({ tenant: id })) t.ok(Date.parse(e.received) >= from, `${e.type} received ${e.received}`)
})

t.test('LINODE_PLAN, when set, is the server type provisioning buys for every plan', async (t) => {
  const { app, store } = await buildTestApp(t, { env: { LINODE_PLAN: 'g6-dedicated-4' } })
  const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Typed CTF' } })).json().tenant_id
  t.equal(serverSpecFor((await store.getTenant(id))!, app.config).serverType, 'g6-dedicated-4')
})

t.test("the CTF's first administrator takes the buyer's address only where CTFd can store it (128 characters)", async (t) => {
  const { app, store } = await buildTestApp(t)
  const spec = async (email: string): Promise<{ adminEmail: string, fqdn: string }> => {
    const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Mail CTF', email } })).json().tenant_id
    return serverSpecFor((await store.getTenant(id))!, app.config)
  }
  const fits = `${'a'.repeat(128 - '@example.org'.length)}@example.org`
  t.equal((await spec(fits)).adminEmail, fits, '128 characters: the buyer\'s')
  const long = await spec(`${'a'.repeat(129 - '@example.org'.length)}@example.org`)
  t.equal(long.adminEmail, `admin@${long.fqdn}`, '129: a made-up one, or CTFd\'s setup would fail and the server never come up')
})
