// A Payment Link's subscription: Stripe sends its subscription and invoice events before the
// checkout.session.completed that adopts it, and none of them names a tenant of ours. Those
// answered `unmatched` wait in the store and are applied when the tenant takes the subscription on.
import t, { type Test } from 'tap'
import fc from 'fast-check'
import { buildTestApp } from '../helpers/build-app.ts'
import { checkoutSession, deliver, invoice, makeEvent, subscription } from '../helpers/stripe-events.ts'
import type { FastifyInstance } from 'fastify'
import type { Store } from '../../api/store/store.ts'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import { AWAITING_PLAN } from '../../api/provisioning/provision.ts'
import { until } from '../helpers/until.ts'

/** A Payment Link purchase of Pro, in Stripe's usual order, that is later canceled. */
function paymentLink (sub: string, base: number) {
  return {
    created: makeEvent('customer.subscription.created', subscription({ id: sub, status: 'incomplete', lookupKey: 'ctfhive_pro_monthly' }), { created: base }),
    paid: makeEvent('invoice.paid', invoice({ subscription: sub }), { created: base + 1 }),
    active: makeEvent('customer.subscription.updated', subscription({ id: sub, status: 'active', lookupKey: 'ctfhive_pro_monthly' }), { created: base + 2 }),
    // No plan and no name in the link's metadata: only the subscription says Pro.
    completed: makeEvent('checkout.session.completed', checkoutSession({ subscription: sub, created: base + 3 }), { created: base + 3 }),
    deleted: makeEvent('customer.subscription.deleted', subscription({ id: sub, status: 'canceled', lookupKey: 'ctfhive_pro_monthly' }), { created: base + 4 })
  }
}

async function tenantOf (store: Store, sub: string) {
  const id = await store.findTenantIdBySubscription(sub)
  return id === undefined ? undefined : store.getTenant(id)
}

async function deliverAll (t: Test, app: FastifyInstance, events: unknown[]): Promise<string[]> {
  const answers: string[] = []
  for (const e of events) {
    const r = await deliver(app, e)
    t.equal(r.statusCode, 200, r.body)
    answers.push(r.json().status)
  }
  return answers
}

t.test('events that came before the adopting checkout are applied when it comes', async (t) => {
  const { app, store } = await buildTestApp(t)
  const e = paymentLink('sub_link_pro', 1_900_000_000)
  t.same(await deliverAll(t, app, [e.created, e.paid, e.active]), ['unmatched', 'unmatched', 'unmatched'], 'no tenant holds the subscription yet')
  t.equal((await store.getEvent(e.paid.id))?.unmatchedSubscription, 'sub_link_pro', 'each waits, under its subscription')
  t.same(await deliverAll(t, app, [e.completed]), ['ok'])
  const tenant = await tenantOf(store, 'sub_link_pro')
  t.match(tenant, { plan: 'pro', billing: 'paid', infra: 'ready' }, 'the tier the subscription says, not the default')
  // The payment is older than the checkout that already made the tenant paid: stale, as it
  // would be delivered after it.
  const outcomes = { [e.created.id]: 'ok', [e.paid.id]: 'stale', [e.active.id]: 'ok' }
  for (const held of [e.created, e.paid, e.active]) {
    t.match(await store.getEvent(held.id), { outcome: outcomes[held.id], tenant: tenant!.id, unmatchedSubscription: null }, `${held.type} is applied and settled`)
  }
  t.same((await store.listEvents({ tenant: tenant!.id })).map((r) => r.id), [e.created.id, e.paid.id, e.active.id, e.completed.id], "in the tenant's events, in Stripe's order")
  t.same(await deliverAll(t, app, [e.paid]), ['duplicate'], 'a redelivery of a held event adds nothing')
  t.same(await store.listUnmatchedEvents('sub_link_pro'), [], 'nothing waits any more')
})

t.test('a cancellation delivered before the adopting checkout still tears the server down', async (t) => {
  const { app, store } = await buildTestApp(t, { env: { DEPROVISION_GRACE_HOURS: '0' } })
  const e = paymentLink('sub_link_gone', 1_900_001_000)
  t.same(await deliverAll(t, app, [e.deleted, e.created]), ['unmatched', 'unmatched'])
  const completed = await deliver(app, e.completed)
  t.match(completed.json(), { status: 'ok', tenant_state: 'canceled' }, 'the adopting event answers with the state the held ones left')
  const tenant = await tenantOf(store, 'sub_link_gone')
  t.equal(tenant?.billing, 'canceled', 'canceled, as in the order the events were made')
  const jobs = await store.listJobs({ tenant: tenant!.id })
  t.ok(jobs.some((j) => j.kind === 'deprovision'), 'its teardown is scheduled')
  const audit = await store.listAudit({ tenant: tenant!.id })
  t.ok(audit.some((a) => a.action === 'teardown.scheduled' && a.detail.source === `event ${e.deleted.id}, held until its subscription had a tenant`), 'by the held event, as the audit says')
})

t.test('a held payment that starts the server is waited for like any other', async (t) => {
  const { app, store } = await buildTestApp(t)
  const sub = 'sub_link_slow_pay'
  const paid = makeEvent('invoice.paid', invoice({ subscription: sub }), { created: 1_900_003_000 })
  const created = makeEvent('customer.subscription.created', subscription({ id: sub, status: 'active', lookupKey: 'ctfhive_solo_monthly' }), { created: 1_900_003_000 })
  t.same(await deliverAll(t, app, [paid, created]), ['unmatched', 'unmatched'])
  // Completed with a delayed payment method: not paid by itself, the held invoice pays it.
  const completed = await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ subscription: sub, paymentStatus: 'unpaid' }), { created: 1_900_003_001 }))
  t.match(completed.json(), { status: 'ok', tenant_state: 'active' }, 'answered once the server is up')
  t.match(await tenantOf(store, sub), { billing: 'paid', infra: 'ready', plan: 'solo' })

  // Unpaid, with its cancellation held: no server to wait for, and the answer is the held state.
  const gone = makeEvent('customer.subscription.deleted', subscription({ id: 'sub_link_never', status: 'canceled' }), { created: 1_900_003_010 })
  t.same(await deliverAll(t, app, [gone]), ['unmatched'])
  const unpaid = await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ subscription: 'sub_link_never', paymentStatus: 'unpaid' }), { created: 1_900_003_005 }))
  t.match(unpaid.json(), { status: 'ok', tenant_state: 'canceled' })
})

t.test("a Payment Link's server waits for the event that states its plan: sized by the price, whatever order Stripe delivers in", async (t) => {
  const executor = new FakeExecutor()
  const { app, store } = await buildTestApp(t, { executor, jobs: { planPollMs: 20 } })
  const e = paymentLink('sub_link_plan_later', 1_900_004_000)
  // The checkout first: it names no plan, and no held event has said one yet.
  const completed = await deliver(app, e.completed)
  t.match(completed.json(), { status: 'ok', tenant_state: 'provisioning' }, 'paid, and the server not made yet')
  const tenant = await tenantOf(store, 'sub_link_plan_later')
  t.match(tenant, { plan: 'standard', planAt: 0, infra: 'provisioning' }, 'the default plan, stated by nobody')
  t.equal(executor.calls.create, 0, 'no server is sized by a guess')
  t.match(await store.listJobs({ tenant: tenant!.id }), [{ kind: 'provision', status: 'queued', attempts: 0, lastError: AWAITING_PLAN }], 'the job says why it waits, and counts no attempt')
  t.same(await deliverAll(t, app, [e.created, e.paid, e.active]), ['ok', 'stale', 'ok'])
  await until(async () => (await store.getTenant(tenant!.id))?.infra === 'ready', 'ready once the plan is known')
  t.equal(executor.calls.create, 1)
  t.equal((await store.listAudit({ tenant: tenant!.id })).find((a) => a.action === 'server.created')?.detail.type, 'g6-standard-4', "the Pro plan's server")
  const actions = (await store.listAudit({ tenant: tenant!.id })).map((a) => a.action)
  t.equal(actions.filter((a) => a === 'provision.awaiting_plan').length, 1, 'the wait is audited once, however often the job looked')
  t.notOk(actions.includes('provision.plan_assumed'))
})

t.test('canceled while its first server waits for the plan: no server is coming, and the teardown still sweeps', async (t) => {
  const executor = new FakeExecutor()
  const { app, store } = await buildTestApp(t, { executor, jobs: { planPollMs: 20 } })
  const e = paymentLink('sub_link_gone_early', 1_900_006_000)
  await deliver(app, e.completed)
  const tenant = await tenantOf(store, 'sub_link_gone_early')
  t.match(await store.listJobs({ tenant: tenant!.id }), [{ kind: 'provision', status: 'queued', lastError: AWAITING_PLAN }])
  const gone = makeEvent('customer.subscription.deleted', subscription({ id: 'sub_link_gone_early', status: 'canceled' }), { created: 1_900_006_030 })
  t.same(await deliverAll(t, app, [gone]), ['ok'])
  await until(async () => (await store.listJobs({ tenant: tenant!.id })).some((j) => j.kind === 'provision' && j.status === 'canceled'), 'the waiting job looks again')
  t.match(await store.getTenant(tenant!.id), { billing: 'canceled', infra: 'none', serverId: null }, 'no server is said to be coming')
  t.match((await app.inject(`/tenants/${tenant!.id}/status`)).json(), { state: 'canceled', infra: 'none' })
  t.equal(executor.calls.create, 0)
  t.match((await store.listJobs({ tenant: tenant!.id })).filter((j) => j.kind === 'deprovision'), [{ status: 'queued' }], 'the teardown stays, for a server an attempt cut off may have left')
})

t.test('when no event states the plan in time, the server is sized by the plan the tenant has, and the audit says so', async (t) => {
  const executor = new FakeExecutor()
  const { app, store } = await buildTestApp(t, { executor, jobs: { planPollMs: 20, planWaitMs: 200 } })
  const e = paymentLink('sub_link_plan_never', 1_900_005_000)
  await deliver(app, e.completed)
  const tenant = await tenantOf(store, 'sub_link_plan_never')
  await until(async () => (await store.getTenant(tenant!.id))?.infra === 'ready', 'ready after the wait')
  t.equal((await store.listAudit({ tenant: tenant!.id })).find((a) => a.action === 'server.created')?.detail.type, 'g6-standard-2', "the default (Standard) plan's server")
  const actions = (await store.listAudit({ tenant: tenant!.id })).map((a) => a.action)
  t.ok(actions.indexOf('provision.awaiting_plan') < actions.indexOf('provision.plan_assumed'), 'waited, then assumed')
  t.match((await store.listAudit({ tenant: tenant!.id })).find((a) => a.action === 'provision.plan_assumed')?.detail, { plan: 'standard', subscription: 'sub_link_plan_never' })
})

t.test('unmatched events of other subscriptions, and events that are not ours, keep waiting', async (t) => {
  const { app, store } = await buildTestApp(t)
  const mine = paymentLink('sub_link_mine', 1_900_002_000)
  const other = makeEvent('invoice.paid', invoice({ subscription: 'sub_someone_else' }), { created: 1_900_002_001 })
  await deliverAll(t, app, [other, mine.paid, mine.completed])
  t.match(await store.getEvent(other.id), { outcome: 'unmatched', tenant: null, unmatchedSubscription: 'sub_someone_else' })
  const ignored = makeEvent('charge.refunded', { id: 'ch_1', object: 'charge' })
  t.same(await deliverAll(t, app, [ignored]), ['ignored'])
  t.equal(await store.getEvent(ignored.id), undefined, 'an unsupported type is not stored at all')
})

/** Indexes 0…n-1 in any order. */
const anyOrder = (n: number) => fc.shuffledSubarray(Array.from({ length: n }, (_, i) => i), { minLength: n })

t.test('property: an adopted subscription ends the same in every delivery order', async (t) => {
  const { app, store } = await buildTestApp(t)
  let run = 0
  await fc.assert(fc.asyncProperty(anyOrder(5), fc.boolean(), async (order, canceled) => {
    run++
    const sub = `sub_prop_link_${run}`
    const e = paymentLink(sub, 1_910_000_000 + run * 100)
    const events = [e.created, e.paid, e.active, e.completed, ...(canceled ? [e.deleted] : [])]
    for (const i of order.filter((i) => i < events.length)) {
      if ((await deliver(app, events[i])).statusCode !== 200) return false
    }
    const tenant = await tenantOf(store, sub)
    if (tenant === undefined) return false
    const teardown = (await store.listJobs({ tenant: tenant.id })).some((j) => j.kind === 'deprovision')
    const settled = await Promise.all(events.map(async (ev) => (await store.getEvent(ev.id))?.tenant === tenant.id))
    return tenant.plan === 'pro' && tenant.billing === (canceled ? 'canceled' : 'paid') && teardown === canceled &&
      settled.every(Boolean) && (await store.countTenants()) === run
  }), { numRuns: 30 })
  t.pass('30 random delivery orders agree')
})
