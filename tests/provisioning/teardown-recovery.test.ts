// Teardown and reactivation when something went wrong first: a create whose answer was lost
// (no id kept), a provision job skipped by a cancel, a teardown waiting to retry after it had
// removed the DNS record, and a teardown that cannot succeed without the operator. Jobs run
// one claim at a time here, so each case walks the exact order of events.
import t, { type Test } from 'tap'
import { buildTestApp } from '../helpers/build-app.ts'
import { runAll, runOne } from '../helpers/job-runner.ts'
import { checkoutSession, deliver, makeEvent, subscription } from '../helpers/stripe-events.ts'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import { ExecutorError, type CreateResult, type ServerInfo, type ServerSpec } from '../../api/provisioning/executor.ts'
import { verifyStoredChain } from '../../api/provisioning/audit.ts'
import type { Store } from '../../api/store/store.ts'

const TOKEN = 'admin-token-for-teardown-tests-0123456789'

const paid = (id: string, sub: string) => makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'pro', subscription: sub }))
const cancel = (id: string, sub: string) => makeEvent('customer.subscription.deleted', subscription({ id: sub, tenantId: id, status: 'canceled', plan: 'pro' }))

/** The create happens, its answer does not arrive (a reset connection, a restart mid-call). */
class LostAnswers extends FakeExecutor {
  loseCreate = 0
  loseDns = 0
  override async createOrAdopt (spec: ServerSpec, signal?: AbortSignal): Promise<CreateResult> {
    const made = await super.createOrAdopt(spec, signal)
    if (this.loseCreate-- > 0) throw new ExecutorError('socket hang up', { retryable: true })
    return made
  }

  override async ensureDnsRecord (spec: ServerSpec, ipv4: string, signal?: AbortSignal): Promise<string> {
    const id = await super.ensureDnsRecord(spec, ipv4, signal)
    if (this.loseDns-- > 0) throw new ExecutorError('socket hang up', { retryable: true })
    return id
  }

  loseRemove = 0
  /** Runs after a removal whose answer is then lost (a shutdown's lease release, say). */
  afterRemove: () => Promise<void> = async () => {}
  override async removeDnsRecord (spec: ServerSpec, id: string, signal?: AbortSignal): Promise<void> {
    await super.removeDnsRecord(spec, id, signal)
    if (this.loseRemove-- > 0) {
      await this.afterRemove()
      throw new ExecutorError('socket hang up', { retryable: true })
    }
  }
}

/** Linode refusing the tag search for servers, as it answers a token it does not take (being rotated, say). */
class RefusedServerSearch extends LostAnswers {
  refuseServerSearch = 0
  override async findServers (spec: ServerSpec, signal?: AbortSignal): Promise<ServerInfo[]> {
    if (this.refuseServerSearch-- > 0) throw new ExecutorError('Linode API 401: Invalid Token (GET /linode/instances)', { retryable: false })
    return super.findServers(spec, signal)
  }
}

async function setup (t: Parameters<typeof buildTestApp>[0], executor: FakeExecutor, env: Record<string, string> = {}, logLines?: Array<Record<string, unknown>>) {
  const built = await buildTestApp(t, {
    executor,
    logLines,
    runJobs: false,
    env: { DEPROVISION_GRACE_HOURS: '0', WEBHOOK_WAIT_MS: '0', ADMIN_TOKEN: TOKEN, ...env }
  })
  const id: string = (await built.app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'pro', name: 'Recovery CTF' } })).json().tenant_id
  return { ...built, id }
}

/** A tenant paid for (subscription `sub_a`) whose server is up, on the fake executor. */
async function liveTenant (t: Test, logLines?: Array<Record<string, unknown>>) {
  const executor = new FakeExecutor()
  const built = await setup(t, executor, {}, logLines)
  await deliver(built.app, paid(built.id, 'sub_a'))
  await runAll(built.app, built.store)
  const live = (await built.store.getTenant(built.id))!
  t.equal(live.infra, 'ready', 'the tenant is live')
  return { ...built, executor, live }
}

/** The runner's timers are unref'd: keep the process up while a test awaits a gate. */
function keepAlive (t: Test): void {
  const timer = setInterval(() => {}, 1000)
  t.teardown(() => clearInterval(timer))
}

async function actions (store: Store, id: string): Promise<string[]> {
  return (await store.listAudit({ tenant: id })).map((e) => e.action)
}

t.test('a server whose create answer was lost is found by its tag and destroyed', async (t) => {
  const executor = new LostAnswers()
  executor.loseCreate = 1
  const { app, store, config, id } = await setup(t, executor)
  await deliver(app, paid(id, 'sub_a'))
  t.ok(await runOne(app, store), 'the first provision attempt')
  t.equal(executor.servers.size, 1, 'Linode made the server')
  t.match(await store.getTenant(id), { infra: 'provisioning', serverId: null }, 'but no id was kept')

  await deliver(app, cancel(id, 'sub_a'))
  await runAll(app, store)
  t.equal(executor.servers.size, 0, 'no server left billing')
  t.match(await store.getTenant(id), { billing: 'canceled', infra: 'deprovisioned', serverId: null })
  const destroyed = (await store.listAudit({ tenant: id })).find((e) => e.action === 'server.destroyed')
  t.same(destroyed?.detail.servers, ['1'], 'the audit names the server it found')
  t.same((await store.listJobs({ tenant: id })).map((j) => `${j.kind}:${j.status}`), ['provision:canceled', 'deprovision:done'])
  t.match(await verifyStoredChain(store, config.auditSecret), { ok: true, entries: (await store.listAudit({})).length, lastSeq: (await store.listAudit({})).length })
})

t.test('a DNS record whose create answer was lost is found by name and removed', async (t) => {
  const executor = new LostAnswers()
  executor.loseDns = 1
  const { app, store, id } = await setup(t, executor)
  await deliver(app, paid(id, 'sub_a'))
  t.ok(await runOne(app, store))
  t.equal(executor.records.size, 1, 'the record exists')
  t.match(await store.getTenant(id), { infra: 'provisioning', dnsRecordId: null }, 'but no id was kept')

  await deliver(app, cancel(id, 'sub_a'))
  await runAll(app, store)
  t.equal(executor.records.size, 0, 'no record left pointing at an address Linode gives to others')
  t.equal(executor.servers.size, 0)
  t.same((await store.listAudit({ tenant: id })).find((e) => e.action === 'dns.removed')?.detail.records, [`rec-1-${(await store.getTenant(id))!.slug}`])
})

t.test('paying again after a cancel skipped the provision job provisions the tenant', async (t) => {
  const executor = new FakeExecutor()
  // The grace period keeps the teardown out of the way: only the provision job is due.
  const { app, store, id } = await setup(t, executor, { DEPROVISION_GRACE_HOURS: '72' })
  await deliver(app, paid(id, 'sub_a'))
  await deliver(app, cancel(id, 'sub_a'))
  t.ok(await runOne(app, store), 'the provision job runs after the cancel')
  t.equal(executor.calls.create, 0, 'and is skipped')
  t.match(await store.getTenant(id), { billing: 'canceled', infra: 'none' }, 'no server is coming')

  const back = await deliver(app, paid(id, 'sub_b'))
  t.equal(back.json().tenant_state, 'provisioning')
  t.ok(await runOne(app, store), 'a new provision job')
  t.match(await store.getTenant(id), { billing: 'paid', infra: 'ready', subscriptionId: 'sub_b' })
  t.equal(executor.servers.size, 1)
  t.same((await store.listJobs({ tenant: id })).map((j) => `${j.kind}:${j.status}`), ['provision:canceled', 'deprovision:canceled', 'provision:done'])
  t.notOk(await runOne(app, store), 'nothing else to do')
})

t.test('paying again while a teardown waits to retry after removing DNS restores the tenant', async (t) => {
  const { app, store, id, executor, live } = await liveTenant(t)

  executor.failNext('destroy')
  await deliver(app, cancel(id, 'sub_a'))
  t.ok(await runOne(app, store), 'the teardown removes DNS, then its destroy call fails')
  t.match((await store.listJobs({ tenant: id })).at(-1), { kind: 'deprovision', status: 'queued', step: 'dns_removed' })
  t.equal(executor.records.size, 0)

  const back = await deliver(app, paid(id, 'sub_b'))
  t.equal(back.json().tenant_state, 'provisioning', 'not "active": its address is gone')
  await runAll(app, store)
  const tenant = (await store.getTenant(id))!
  t.match(tenant, { billing: 'paid', infra: 'ready', serverId: live.serverId }, 'the same server, adopted')
  t.equal(executor.records.get(tenant.dnsRecordId!)?.target, live.ipv4, 'and its address restored')
  const after = await actions(store, id)
  t.same(after.slice(after.indexOf('teardown.scheduled')), [
    'teardown.scheduled', 'dns.removed', 'deprovision.attempt_failed', 'tenant.reactivated', 'provision.queued',
    'server.adopted', 'server.running', 'dns.record', 'health.ok', 'provision.ready'
  ])
})

// A removal is applied but the attempt ends before it records `dns_removed`: the job says
// `dns_removing`, so paying again provisions the tenant rather than calling it active with no
// address (once, both the tenant service and the skipped teardown looked for a finished step).
for (const how of ['a lost answer', 'a shutdown'] as const) {
  t.test(`paying again after a teardown removed DNS but ended before its step, by ${how}, restores the tenant`, async (t) => {
    const executor = new LostAnswers()
    const { app, store, id } = await setup(t, executor)
    await deliver(app, paid(id, 'sub_a'))
    await runAll(app, store)
    const live = (await store.getTenant(id))!
    t.equal(executor.records.size, 1)

    executor.loseRemove = 1
    // A shutdown gives the lease up mid-call: the job stays `running` for another process to reclaim.
    if (how === 'a shutdown') executor.afterRemove = async () => { await store.releaseLeases(app.jobs.owner) }
    await deliver(app, cancel(id, 'sub_a'))
    t.ok(await runOne(app, store), 'the teardown removes the record; its answer is lost')
    t.equal(executor.records.size, 0, 'gone at the provider')
    t.match((await store.listJobs({ tenant: id })).at(-1), { kind: 'deprovision', status: how === 'a shutdown' ? 'running' : 'queued', step: 'dns_removing' })

    const back = await deliver(app, paid(id, 'sub_b'))
    // A `running` teardown is left to queue the provisioning itself (a provision job beside it
    // would race its sweep): the attempt that reclaims it skips it and does. Not "active" meanwhile.
    t.equal(back.json().tenant_state, 'provisioning')
    if (how === 'a shutdown') t.same((await store.listJobs({ tenant: id })).filter((j) => j.kind === 'provision').map((j) => j.status), ['done'], 'nothing queued beside a running teardown')
    if (how === 'a shutdown') {
      t.ok(await runOne(app, store), 'the reclaimed teardown')
      t.match(await store.getTenant(id), { infra: 'provisioning' }, 'not "active": its address may be gone')
    }
    await runAll(app, store)
    const tenant = (await store.getTenant(id))!
    t.match(tenant, { billing: 'paid', infra: 'ready', serverId: live.serverId }, 'the same server, adopted')
    t.equal(executor.records.get(tenant.dnsRecordId!)?.target, live.ipv4, 'and its address restored')
    t.same((await store.listJobs({ tenant: id })).map((j) => `${j.kind}:${j.status}`), ['provision:done', 'deprovision:canceled', 'provision:done'])
    t.equal((await app.inject({ url: `/tenants/${id}/status` })).json().state, 'active')
  })
}

// Reactivated while the destroy call is in flight, and the call fails: the attempt ends the
// teardown and queues the provisioning then, not after a backoff (or never, after a failure
// no retry fixes), and the tenant is `provisioning` throughout, never `active` without its
// DNS record.
for (const retryable of [true, false]) {
  t.test(`paying again while the destroy call fails (${retryable ? 'retryable' : 'for good'}) restores the tenant at once`, async (t) => {
    const { app, store, id, executor, live } = await liveTenant(t)
    await deliver(app, cancel(id, 'sub_a'))
    const destroying = executor.holdNext('destroy')
    keepAlive(t)
    executor.failNext('destroy', 1, new ExecutorError('Linode API 503: Service Unavailable', { retryable }))
    const attempt = runOne(app, store)
    await destroying.reached
    t.equal(executor.records.size, 0, 'the DNS record is gone')

    const back = await deliver(app, paid(id, 'sub_b'))
    t.equal(back.json().tenant_state, 'provisioning', 'not "active" without its DNS record')
    t.match((await app.inject({ url: `/tenants/${id}/status` })).json(), { state: 'provisioning', infra: 'provisioning' })
    destroying.release()
    t.ok(await attempt, 'the teardown attempt')

    t.same((await store.listJobs({ tenant: id })).map((j) => `${j.kind}:${j.status}`), ['provision:done', 'deprovision:canceled', 'provision:queued'],
      'called off, and the provisioning queued by the same attempt')
    t.equal((await app.inject({ url: `/tenants/${id}/status` })).json().state, 'provisioning')
    await runAll(app, store)
    const tenant = (await store.getTenant(id))!
    t.match(tenant, { billing: 'paid', infra: 'ready', serverId: live.serverId }, 'the same server, adopted')
    t.equal(executor.servers.size, 1, 'one server')
    t.same([...executor.records.values()].map((r) => r.target), [live.ipv4], 'one DNS record, at it')
    t.equal((await app.inject({ url: `/tenants/${id}/status` })).json().state, 'active')
    const audit = await store.listAudit({ tenant: id })
    const trail = audit.map((e) => e.action)
    t.same(trail.slice(trail.indexOf('teardown.scheduled')), [
      'teardown.scheduled', 'dns.removed', 'tenant.reactivated', 'teardown.skipped', 'provision.queued',
      'server.adopted', 'server.running', 'dns.record', 'health.ok', 'provision.ready'
    ])
    t.match(audit.find((e) => e.action === 'teardown.skipped')?.detail, { reason: 'tenant is no longer canceled', step: 'dns_removed', failure: /503/ })
    t.match(audit.find((e) => e.action === 'provision.queued' && e.detail.source === 'teardown')?.detail, { reason: /failing/ })
  })
}

t.test('a failed teardown attempt of a tenant still canceled is retried as before', async (t) => {
  const { app, store, id, executor } = await liveTenant(t)
  await deliver(app, cancel(id, 'sub_a'))
  executor.failNext('destroy')
  t.ok(await runOne(app, store))
  t.match((await store.listJobs({ tenant: id })).at(-1), { kind: 'deprovision', status: 'queued', attempts: 1, step: 'dns_removed' })
  t.match(await store.getTenant(id), { billing: 'canceled', infra: 'ready' })
})

// A tenant whose server id was never kept (infra `provisioning`) would be provisioned at once
// by a reactivation: not while its teardown runs, whose tag sweep would destroy what the new
// job adopts. The teardown queues it when it sees the tenant paid.
t.test('paying again while a teardown of a half-provisioned tenant runs queues nothing beside it', async (t) => {
  const executor = new LostAnswers()
  executor.loseCreate = 1
  const { app, store, id } = await setup(t, executor)
  await deliver(app, paid(id, 'sub_a'))
  t.ok(await runOne(app, store), 'the first provision attempt')
  t.match(await store.getTenant(id), { infra: 'provisioning', serverId: null }, 'no id kept')
  await deliver(app, cancel(id, 'sub_a'))
  // No record was made: the teardown's DNS search is its first call.
  const searching = executor.holdNext('find')
  keepAlive(t)
  const all = runAll(app, store)
  await searching.reached
  t.match((await store.listJobs({ tenant: id })).find((j) => j.kind === 'deprovision'), { status: 'running', step: 'dns_removing' })

  const back = await deliver(app, paid(id, 'sub_b'))
  t.equal(back.json().tenant_state, 'provisioning')
  t.notOk((await store.listJobs({ tenant: id })).some((j) => j.kind === 'provision' && (j.status === 'queued' || j.status === 'running')), 'no provision job beside the teardown')
  searching.release()
  await all

  t.equal(executor.servers.size, 1, 'one server')
  const tenant = (await store.getTenant(id))!
  t.match(tenant, { billing: 'paid', infra: 'ready' })
  t.ok(executor.servers.has(tenant.serverId!), 'the server made first, adopted')
  t.same([...executor.records.values()].map((r) => r.target), [tenant.ipv4], 'one DNS record, at it')
  t.same((await store.listJobs({ tenant: id })).map((j) => `${j.kind}:${j.status}`).slice(-2), ['deprovision:canceled', 'provision:done'])
})

t.test('a teardown keeps trying through failures past the provisioning attempt cap', async (t) => {
  const logLines: Array<Record<string, unknown>> = []
  const { app, store, config, id, executor } = await liveTenant(t, logLines)
  executor.failNext('destroy', config.provisionMaxAttempts + 2)
  await deliver(app, cancel(id, 'sub_a'))
  await runAll(app, store)
  t.equal(executor.servers.size, 0, 'destroyed in the end')
  t.match((await store.listJobs({ tenant: id })).at(-1), { kind: 'deprovision', status: 'done', attempts: config.provisionMaxAttempts + 2 })
  t.equal((await store.getTenant(id))?.infra, 'deprovisioned')
  const stuck = logLines.filter((l) => /teardown still failing/.test(String(l.msg)))
  t.same(stuck.map((l) => [l.level, l.attempts]), [[50, config.provisionMaxAttempts], [50, config.provisionMaxAttempts + 1], [50, config.provisionMaxAttempts + 2]],
    'past the cap, every failed attempt is an error line')
})

t.test('a teardown stopped by an error no retry fixes waits for the operator, who retries it', async (t) => {
  const logLines: Array<Record<string, unknown>> = []
  const { app, store, id, executor } = await liveTenant(t, logLines)
  const auth = { authorization: `Bearer ${TOKEN}` }
  const early = await app.inject({ method: 'POST', url: `/admin/tenants/${id}/retry`, headers: auth })
  t.equal(early.statusCode, 409, 'an active tenant has nothing to retry')

  executor.failNext('destroy', 1, new ExecutorError('Linode 401: invalid token', { retryable: false }))
  await deliver(app, cancel(id, 'sub_a'))
  await runAll(app, store)
  t.match((await store.listJobs({ tenant: id })).at(-1), { kind: 'deprovision', status: 'failed', step: 'dns_removed', lastError: /invalid token/ })
  t.match(await store.getTenant(id), { billing: 'canceled', infra: 'ready' })
  t.equal(executor.servers.size, 1, 'the server still runs')
  t.notOk(await runOne(app, store), 'and nothing will stop it by itself')
  t.ok(logLines.some((l) => l.level === 50 && /teardown failed: the server is still running/.test(String(l.msg)) && l.tenant === id), 'an error line for the operator')

  const retried = await app.inject({ method: 'POST', url: `/admin/tenants/${id}/retry`, headers: auth })
  t.equal(retried.statusCode, 200)
  t.equal(retried.json().state, 'canceled')
  await runAll(app, store)
  t.equal(executor.servers.size, 0, 'torn down once retried')
  t.match(await store.getTenant(id), { billing: 'canceled', infra: 'deprovisioned' })
  t.same((await store.listJobs({ tenant: id })).map((j) => `${j.kind}:${j.status}`), ['provision:done', 'deprovision:failed', 'deprovision:done'])
  const trail = await actions(store, id)
  t.same(trail.slice(trail.indexOf('deprovision.failed')), ['deprovision.failed', 'teardown.retry_requested', 'dns.removed', 'server.destroyed', 'teardown.done'])

  const again = await app.inject({ method: 'POST', url: `/admin/tenants/${id}/retry`, headers: auth })
  t.equal(again.statusCode, 409, 'a finished teardown is not retried')
  t.match(again.json(), { error: 'conflict', message: /canceled and has no failed teardown/ })
})

t.test('a DNS search that cannot succeed does not keep the teardown from what it knows', async (t) => {
  const { app, store, id, executor } = await liveTenant(t)
  // The DNS search refused for good (a token without the Domains scope), then the server search
  // failing once for a reason a retry fixes.
  executor.failNext('find', 1, new ExecutorError('Linode API 403: Unauthorized (GET /domains)', { retryable: false }))
  executor.failNext('find', 1)
  await deliver(app, cancel(id, 'sub_a'))
  await runAll(app, store)
  t.equal(executor.servers.size, 0, 'the server is destroyed')
  t.equal(executor.records.size, 0, 'the kept record is removed')
  t.match((await store.listJobs({ tenant: id })).at(-1), { kind: 'deprovision', status: 'done', attempts: 1 })
  const audit = await store.listAudit({ tenant: id })
  t.match(audit.find((e) => e.action === 'dns.removed')?.detail, { records: [/^rec-/], lookup_failed: /403/ }, 'the audit says the search failed')
  t.match(audit.find((e) => e.action === 'deprovision.attempt_failed')?.detail, { step: 'dns_removed', reason: /fake find failure/ }, 'the server search was retried, not skipped')
})

// Only the tag search shows no server is left, so a refused one cannot end the teardown `done`:
// the job fails for the operator, as a refused destroy does, and the server is not forgotten.
t.test('a refused server search with no id kept fails the teardown for the operator, who retries it', async (t) => {
  const logLines: Array<Record<string, unknown>> = []
  const executor = new LostAnswers()
  executor.loseCreate = 1
  const { app, store, id } = await setup(t, executor, {}, logLines)
  await deliver(app, paid(id, 'sub_a'))
  t.ok(await runOne(app, store), 'the first provision attempt')
  t.equal(executor.servers.size, 1, 'Linode made the server')
  t.match(await store.getTenant(id), { serverId: null }, 'but no id was kept')

  await deliver(app, cancel(id, 'sub_a'))
  // Both searches refused, the DNS one first: a token rejected while it is being rotated.
  executor.failNext('find', 2, new ExecutorError('Linode API 401: Invalid Token (GET /linode/instances)', { retryable: false }))
  await runAll(app, store)
  t.same((await store.listJobs({ tenant: id })).map((j) => `${j.kind}:${j.status}`), ['provision:canceled', 'deprovision:failed'], 'not done')
  t.match((await store.listJobs({ tenant: id })).at(-1), { step: 'dns_removed', lastError: /401/ })
  const tenant = (await store.getTenant(id))!
  t.equal(tenant.billing, 'canceled')
  t.equal(tenant.infra, 'provisioning', 'left as the cut-off provisioning had it, not deprovisioned')
  t.equal(executor.servers.size, 1, 'the server is still there, and known to be')
  t.notOk(await runOne(app, store), 'nothing retries it by itself')
  t.ok(logLines.some((l) => l.level === 50 && /teardown failed: the server is still running/.test(String(l.msg)) && l.tenant === id), 'an error line for the operator')
  const audit = await store.listAudit({ tenant: id })
  t.match(audit.find((e) => e.action === 'dns.removed')?.detail, { records: [], lookup_failed: /401/ }, 'the DNS search may still fail for good')
  t.notOk(audit.some((e) => e.action === 'server.destroyed' || e.action === 'teardown.done'), 'nothing says it was torn down')

  const retried = await app.inject({ method: 'POST', url: `/admin/tenants/${id}/retry`, headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(retried.statusCode, 200, 'the operator retries once the token works')
  await runAll(app, store)
  t.equal(executor.servers.size, 0, 'no server left billing')
  t.match(await store.getTenant(id), { billing: 'canceled', infra: 'deprovisioned' })
  t.same((await store.listJobs({ tenant: id })).map((j) => `${j.kind}:${j.status}`), ['provision:canceled', 'deprovision:failed', 'deprovision:done'])
  t.same((await store.listAudit({ tenant: id })).find((e) => e.action === 'server.destroyed')?.detail.servers, ['1'], 'found by its tag')
})

// A kept id proves nothing about other servers carrying the tag, so the search must succeed
// even then; it runs before any destroy, which leaves the tenant as a refused destroy does.
t.test('a refused server search fails the teardown even when the server id was kept', async (t) => {
  const executor = new RefusedServerSearch()
  const { app, store, id } = await setup(t, executor)
  await deliver(app, paid(id, 'sub_a'))
  await runAll(app, store)
  const live = (await store.getTenant(id))!
  t.equal(live.infra, 'ready', 'the tenant is live')

  executor.refuseServerSearch = 1
  await deliver(app, cancel(id, 'sub_a'))
  await runAll(app, store)
  t.match((await store.listJobs({ tenant: id })).at(-1), { kind: 'deprovision', status: 'failed', step: 'dns_removed', lastError: /401/ })
  t.match(await store.getTenant(id), { billing: 'canceled', infra: 'ready', serverId: live.serverId })
  t.equal(executor.records.size, 0, 'the DNS record is removed')
  t.ok(executor.servers.has(live.serverId!), 'the kept server is left for the retry')

  const retried = await app.inject({ method: 'POST', url: `/admin/tenants/${id}/retry`, headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(retried.statusCode, 200)
  await runAll(app, store)
  t.equal(executor.servers.size, 0)
  t.match(await store.getTenant(id), { billing: 'canceled', infra: 'deprovisioned', serverId: null })
  t.same((await store.listJobs({ tenant: id })).map((j) => `${j.kind}:${j.status}`), ['provision:done', 'deprovision:failed', 'deprovision:done'])
})

// An operator's retry of the failed teardown is a fresh job at its first step: paying again
// before it ran must still provision, as the failed one had removed the record.
for (const retried of [false, true]) {
  t.test(`paying again after a teardown failed for good halfway${retried ? ', and the operator retried it before the retry ran,' : ''} provisions the tenant`, async (t) => {
    const { app, store, id, executor, live } = await liveTenant(t)
    executor.failNext('destroy', 1, new ExecutorError('Linode API 401: invalid token', { retryable: false }))
    await deliver(app, cancel(id, 'sub_a'))
    await runAll(app, store)
    t.match((await store.listJobs({ tenant: id })).at(-1), { kind: 'deprovision', status: 'failed', step: 'dns_removed' })
    t.equal(executor.records.size, 0, 'its record is gone')
    if (retried) {
      const retry = await app.inject({ method: 'POST', url: `/admin/tenants/${id}/retry`, headers: { authorization: `Bearer ${TOKEN}` } })
      t.equal(retry.statusCode, 200, 'the retry is queued')
    }

    const back = await deliver(app, paid(id, 'sub_b'))
    t.equal(back.json().tenant_state, 'provisioning', 'not "active" without an address')
    await runAll(app, store)
    const tenant = (await store.getTenant(id))!
    t.match(tenant, { billing: 'paid', infra: 'ready', serverId: live.serverId })
    t.equal(executor.records.get(tenant.dnsRecordId!)?.target, live.ipv4, 'the address is restored')
    t.same((await store.listJobs({ tenant: id })).map((j) => `${j.kind}:${j.status}`),
      ['provision:done', 'deprovision:failed', ...(retried ? ['deprovision:canceled'] : []), 'provision:done'])
  })
}


// A failed teardown counts only until the tenant's next provisioning makes it whole again:
// paying again after a later cancellation (whose teardown had not run) needs no new server.
t.test('a teardown that failed before the last provisioning does not make a later revival provision again', async (t) => {
  const { app, store, id, executor, live } = await liveTenant(t)
  executor.failNext('destroy', 1, new ExecutorError('Linode API 401: invalid token', { retryable: false }))
  await deliver(app, cancel(id, 'sub_a'))
  await runAll(app, store)
  await deliver(app, paid(id, 'sub_b'))
  await runAll(app, store)
  t.match(await store.getTenant(id), { billing: 'paid', infra: 'ready', serverId: live.serverId }, 'provisioned again after the failed teardown')

  await deliver(app, cancel(id, 'sub_b'))
  const back = await deliver(app, paid(id, 'sub_c'))
  t.equal(back.json().tenant_state, 'active', 'its server and address are whole: active at once')
  t.same((await store.listJobs({ tenant: id })).map((j) => `${j.kind}:${j.status}`),
    ['provision:done', 'deprovision:failed', 'provision:done', 'deprovision:canceled', 'resize:queued'], 'no third provisioning: the kept server\'s size is looked at, as for any revival')
})
