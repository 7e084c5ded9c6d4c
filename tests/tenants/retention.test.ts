import t from 'tap'
import { buildTestApp } from '../helpers/build-app.ts'
import { checkoutSession, deliver, makeEvent } from '../helpers/stripe-events.ts'
import { makeEventRecord, makeTenant } from '../store/contract.ts'
import { verifyStoredChain } from '../../api/provisioning/audit.ts'
import { isAbandonedOrder, Retention } from '../../api/tenants/retention.ts'
import type { Store } from '../../api/store/store.ts'

const TOKEN = 'admin-token-for-retention-tests-0123456789'
const ENV = { ADMIN_TOKEN: TOKEN }
const DAY = 24 * 60 * 60 * 1000
const daysAgo = (store: Store, n: number): string => new Date(store.now() - n * DAY).toISOString()

t.test('isAbandonedOrder: never paid, no server, and no payment can still reach it', async (t) => {
  const before = '2026-06-01T00:00:00.000Z'
  const old = { createdAt: '2026-05-01T00:00:00.000Z' }
  t.ok(isAbandonedOrder(makeTenant({ ...old, billing: 'canceled' }), before), 'its checkout expired or failed')
  t.ok(isAbandonedOrder(makeTenant({ ...old, billing: 'pending' }), before), 'left at checkout, no expiry event came')
  t.notOk(isAbandonedOrder(makeTenant({ ...old, billing: 'pending', subscriptionId: 'sub_1' }), before), 'a subscription may still be paid by a slow method')
  t.notOk(isAbandonedOrder(makeTenant({ ...old, billing: 'canceled', paidAt: '2026-05-02T00:00:00.000Z' }), before), 'paid once: a customer, not an order')
  t.notOk(isAbandonedOrder(makeTenant({ ...old, billing: 'canceled', infra: 'deprovisioned' }), before), 'had a server')
  t.notOk(isAbandonedOrder(makeTenant({ ...old, billing: 'past_due' }), before), 'past due: billed')
  t.notOk(isAbandonedOrder(makeTenant({ billing: 'canceled', createdAt: before }), before), 'made at the cut-off: kept')
})

t.test('prune: old payloads blanked, abandoned orders removed with their events\' payloads, the rest kept; the chain records each removal', async (t) => {
  const { app, store, config } = await buildTestApp(t, { env: ENV })
  const retention = new Retention({ store, auditSecret: config.auditSecret })

  // A real order, left at checkout and then expired: old enough once its dates are moved back.
  const r = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Left CTF', email: 'left@example.test' } })
  t.equal(r.statusCode, 200, r.body)
  const left = r.json().tenant_id as string
  const expired = await deliver(app, makeEvent('checkout.session.expired', checkoutSession({ tenantId: left, plan: 'solo', name: 'Left CTF', paymentStatus: 'unpaid', status: 'expired' })))
  t.equal(expired.statusCode, 200, expired.body)
  t.equal((await store.getTenant(left))!.billing, 'canceled')
  const leftCreated = daysAgo(store, 40)
  await store.transaction(async (tx) => {
    const tn = (await tx.getTenant(left))!
    await tx.deleteTenant(left)
    await tx.insertTenant({ ...tn, createdAt: leftCreated })
  })
  const leftEvents = await store.listEvents({ tenant: left })
  t.equal(leftEvents.length, 1)

  const pendingOld = makeTenant({ createdAt: daysAgo(store, 40) })
  const pendingRecent = makeTenant({ createdAt: daysAgo(store, 3) })
  const awaitingDebit = makeTenant({ createdAt: daysAgo(store, 40), subscriptionId: 'sub_debit' })
  const customer = makeTenant({ createdAt: daysAgo(store, 400), billing: 'canceled', infra: 'deprovisioned', paidAt: daysAgo(store, 399) })
  for (const tn of [pendingOld, pendingRecent, awaitingDebit, customer]) await store.insertTenant(tn)
  const oldEvent = makeEventRecord({ received: daysAgo(store, 100), tenant: customer.id })
  const newEvent = makeEventRecord({ received: daysAgo(store, 10), tenant: customer.id })
  const waiting = makeEventRecord({ received: daysAgo(store, 100), outcome: 'unmatched', unmatchedSubscription: 'sub_waits' })
  for (const e of [oldEvent, newEvent, waiting]) await store.recordEvent(e)

  const dry = await retention.prune({ eventDays: 90, orderDays: 30, dryRun: true })
  t.same(dry.orders.tenant_ids.sort(), [left, pendingOld.id].sort(), 'the two abandoned orders')
  t.equal(dry.events.blanked, 1, 'one payload over 90 days old')
  t.equal((await store.getEvent(oldEvent.id))!.payload, oldEvent.payload, 'a dry run changes nothing')
  t.ok(await store.getTenant(left))

  const done = await retention.prune({ eventDays: 90, orderDays: 30, dryRun: false })
  t.same([done.dry_run, done.events.blanked, done.orders.tenant_ids.sort()], [false, dry.events.blanked, dry.orders.tenant_ids], 'what the dry run said')
  t.ok(Math.abs(Date.parse(done.events.received_before) - (store.now() - 90 * DAY)) < 60_000, 'the cut-off for events is 90 days back')
  t.ok(Math.abs(Date.parse(done.orders.created_before) - (store.now() - 30 * DAY)) < 60_000, 'for orders 30')
  for (const id of [left, pendingOld.id]) t.equal(await store.getTenant(id), undefined, `${id} removed`)
  for (const id of [pendingRecent.id, awaitingDebit.id, customer.id]) t.ok(await store.getTenant(id), `${id} kept`)
  t.equal((await store.getEvent(leftEvents[0]!.id))!.payload, '', "the removed order's event lost its payload, recent as it is")
  t.equal((await store.getEvent(oldEvent.id))!.payload, '')
  t.equal((await store.getEvent(newEvent.id))!.payload, newEvent.payload)
  t.equal((await store.getEvent(waiting.id))!.payload, waiting.payload, 'a waiting event keeps its payload')
  t.equal((await store.getTenantBySlug('left-ctf-' + left.slice(0, 6)))?.id, undefined, 'the address is free again')

  const removals = (await store.listAudit({})).filter((e) => e.action === 'tenant.removed')
  t.same(removals.map((e) => e.tenant).sort(), [left, pendingOld.id].sort())
  const entry = removals.find((e) => e.tenant === left)!
  t.same(entry.detail, { reason: 'order never paid', billing: 'canceled', created_at: leftCreated, payloads_blanked: 1 })
  t.notMatch(JSON.stringify(removals), /left@example|Left CTF/, 'no personal data in the chain')
  t.ok((await verifyStoredChain(store, config.auditSecret)).ok, 'the chain verifies')

  const again = await retention.prune({ eventDays: 90, orderDays: 30, dryRun: false })
  t.same([again.events.blanked, again.orders.removed], [0, 0], 'a second run finds nothing left to do')

  // The replay of a blanked event says why it cannot run, as a client error.
  const replay = await app.inject({ method: 'POST', url: `/admin/events/${oldEvent.id}/replay`, headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(replay.statusCode, 400, replay.body)
  t.match(replay.json(), { error: 'invalid_event', message: /removed by retention/ })
})

t.test('prune: an order paid between the listing and its removal is kept', async (t) => {
  const { store, config } = await buildTestApp(t)
  const tn = makeTenant({ createdAt: daysAgo(store, 40), billing: 'canceled' })
  await store.insertTenant(tn)
  const retention = new Retention({ store, auditSecret: config.auditSecret })
  const listTenants = store.listTenants.bind(store)
  // The payment lands right after the listing, before the removal's transaction reads the row.
  store.listTenants = async (filter) => {
    const page = await listTenants(filter)
    if (page.some((x) => x.id === tn.id)) await store.updateTenant(tn.id, { billing: 'paid', paidAt: new Date(store.now()).toISOString() })
    return page
  }
  const removed = await retention.pruneOrders(daysAgo(store, 30), false)
  t.same(removed, [], 'not removed')
  t.equal((await store.getTenant(tn.id))!.billing, 'paid')
})

t.test('prune: an order with a job still live is kept; batches walk past a page of orders', async (t) => {
  const { store, config } = await buildTestApp(t)
  const retention = new Retention({ store, auditSecret: config.auditSecret })
  const withJob = makeTenant({ createdAt: daysAgo(store, 40), billing: 'canceled' })
  await store.insertTenant(withJob)
  await store.enqueueJob({ kind: 'deprovision', tenant: withJob.id, runAfter: store.now() })
  const many = Array.from({ length: 510 }, (_, i) => makeTenant({ createdAt: daysAgo(store, 40 + i / 1000), billing: 'canceled' }))
  await store.transaction(async (tx) => { for (const tn of many) await tx.insertTenant(tn) })
  const removed = await retention.pruneOrders(daysAgo(store, 30), false)
  t.equal(removed.length, 510, 'every one of more than a page')
  t.ok(await store.getTenant(withJob.id), 'the one with a live job is kept')
})

t.test('prune: events walked in batches, more than one of them', async (t) => {
  const { store, config } = await buildTestApp(t)
  const retention = new Retention({ store, auditSecret: config.auditSecret })
  const events = Array.from({ length: 1203 }, (_, i) => makeEventRecord({ received: new Date(store.now() - 100 * DAY + (i % 7)).toISOString() }))
  await store.transaction(async (tx) => { for (const e of events) await tx.recordEvent(e) })
  t.equal(await retention.pruneEvents(daysAgo(store, 90), true), 1203, 'a dry run counts them all')
  t.equal(await retention.pruneEvents(daysAgo(store, 90), false), 1203)
  t.equal((await store.listPayloadsBefore(daysAgo(store, 90), undefined, 10)).length, 0)
})

t.test('erase: a former buyer forgotten once nothing of theirs runs; refused before; the chain records it once', async (t) => {
  const { store, config } = await buildTestApp(t)
  const retention = new Retention({ store, auditSecret: config.auditSecret })
  const gone = makeTenant({ billing: 'canceled', infra: 'deprovisioned', paidAt: '2026-01-02T00:00:00.000Z', email: 'jane@example.eu', name: 'Jane Doe CTF', adminEmail: 'jane@example.eu', customerId: 'cus_1' })
  const paying = makeTenant({ billing: 'paid', infra: 'ready', paidAt: '2026-01-02T00:00:00.000Z' })
  const tearingDown = makeTenant({ billing: 'canceled', infra: 'ready', paidAt: '2026-01-02T00:00:00.000Z' })
  const queued = makeTenant({ billing: 'canceled', infra: 'deprovisioned', paidAt: '2026-01-02T00:00:00.000Z' })
  for (const tn of [gone, paying, tearingDown, queued]) await store.insertTenant(tn)
  await store.enqueueJob({ kind: 'deprovision', tenant: queued.id, runAfter: store.now() })
  const event = makeEventRecord({ tenant: gone.id, payload: JSON.stringify({ email: 'jane@example.eu' }) })
  await store.recordEvent(event)

  for (const [tn, why] of [[paying, /a subscription \(billing paid\)/], [tearingDown, /a server \(infra ready\)/], [queued, /a job under way/]] as const) {
    await t.rejects(retention.erase(tn.id), { code: 'conflict', message: why }, tn.id)
    t.same(await store.getTenant(tn.id), tn, 'left as it was')
  }
  await t.rejects(retention.erase('f'.repeat(32)), { code: 'tenant_not_found' })

  t.same(await retention.erase(gone.id), { tenant_id: gone.id, payloads_blanked: 1 })
  const after = (await store.getTenant(gone.id))!
  t.match(after, { name: '(erased)', email: '', adminEmail: null, slug: gone.slug, customerId: 'cus_1', paidAt: gone.paidAt })
  t.equal((await store.getEvent(event.id))!.payload, '')
  t.same(await retention.erase(gone.id), { tenant_id: gone.id, payloads_blanked: 0 }, 'again: nothing more to do')
  const erased = (await store.listAudit({})).filter((e) => e.action === 'tenant.erased')
  t.same(erased.map((e) => [e.tenant, e.detail]), [[gone.id, { payloads_blanked: 1 }]], 'one entry, with no name or email')
  t.ok((await verifyStoredChain(store, config.auditSecret)).ok)
})
