import { readFileSync } from 'node:fs'
import t from 'tap'
import fc from 'fast-check'
import { buildTestApp, storeWithOverrides, TEST_WEBHOOK_SECRET } from '../helpers/build-app.ts'
import { checkoutSession, deliver, invoice, makeEvent, subscription } from '../helpers/stripe-events.ts'
import { computeSignature, signPayload } from '../../api/billing/signature.ts'
import { SqliteStore } from '../../api/store/sqlite.ts'
import { StoreError, type Store, type StoreOps } from '../../api/store/store.ts'
import { ExecutorError } from '../../api/provisioning/executor.ts'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import { serverSpecFor } from '../../api/provisioning/provision.ts'
import type { FastifyInstance } from 'fastify'

async function pendingTenant (app: FastifyInstance, plan = 'standard', name = 'Acme CTF'): Promise<string> {
  const r = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan, name, email: 'ops@acme.test' } })
  return r.json().tenant_id
}

async function status (app: FastifyInstance, id: string) {
  return (await app.inject(`/tenants/${id}/status`)).json()
}

t.test('signature failures: 400 invalid_signature with the reason, nothing stored', async (t) => {
  const { app, store } = await buildTestApp(t)
  const event = makeEvent('invoice.paid', invoice({ subscription: 'sub_x' }))
  const body = JSON.stringify(event)
  const now = Math.floor(Date.now() / 1000)
  const cases: Array<[string, string | null, string]> = [
    ['missing header', null, 'no_header'],
    ['garbled header', 'garbage', 'malformed'],
    ['no v1', `t=${now}`, 'malformed'],
    ['non-numeric t', `t=soon,v1=${computeSignature('whsec_test_secret_for_ctfhive_tests', now, body)}`, 'malformed'],
    ['stale', `t=${now - 3600},v1=${computeSignature('whsec_test_secret_for_ctfhive_tests', now - 3600, body)}`, 'stale'],
    ['wrong secret', `t=${now},v1=${computeSignature('whsec_wrong', now, body)}`, 'no_match']
  ]
  for (const [name, header, reason] of cases) {
    const r = await deliver(app, body, { header })
    t.equal(r.statusCode, 400, name)
    t.same(r.json(), { error: 'invalid_signature', message: r.json().message, reason }, `${name}: body`)
  }
  t.equal((await store.listEvents({})).length, 0, 'no event recorded')
})

t.test('no webhook secret configured: every delivery is rejected', async (t) => {
  const { app } = await buildTestApp(t, { env: { STRIPE_WEBHOOK_SECRET: '' } })
  const r = await deliver(app, makeEvent('invoice.paid', invoice({ subscription: 'sub_x' })))
  t.equal(r.statusCode, 400)
  t.equal(r.json().reason, 'no_secret')
})

t.test('bodies that are not events: 400 invalid_event, nothing stored', async (t) => {
  const { app, store } = await buildTestApp(t)
  for (const body of ['{not json', '[]', '{"id":"evt_1"}', JSON.stringify({ id: 'evt_1', type: 'x', created: 'yesterday', data: { object: {} } }), '{"id":"evt_1","type":"invoice.paid","created":1e20,"data":{"object":{}}}', JSON.stringify({ id: 'evt_1', type: 'x', created: 1, data: { object: [] } })]) {
    const r = await deliver(app, body)
    t.equal(r.statusCode, 400, body)
    t.equal(r.json().error, 'invalid_event', body)
  }
  t.equal((await store.listEvents({})).length, 0)
})

t.test('a body over 1 MiB is a 413; one of 1 MiB is read', async (t) => {
  const { app } = await buildTestApp(t)
  const big = JSON.stringify({ ...makeEvent('invoice.paid', invoice({ subscription: 's' })), pad: 'x'.repeat(1024 * 1024) })
  const r = await deliver(app, big)
  t.equal(r.statusCode, 413)
  t.equal(r.json().error, 'payload_too_large')
  // The edge, in bytes: 1 MiB is read and verified, one byte more is not.
  const sized = (bytes: number): string => {
    const event = makeEvent('charge.refunded', { id: 'ch_1' })
    const pad = bytes - JSON.stringify({ ...event, pad: '' }).length
    return JSON.stringify({ ...event, pad: 'x'.repeat(pad) })
  }
  t.same([Buffer.byteLength(sized(1_048_576)), Buffer.byteLength(sized(1_048_577))], [1_048_576, 1_048_577])
  const limit = await deliver(app, sized(1_048_576))
  t.equal(limit.statusCode, 200, 'exactly 1 MiB is read')
  t.same(limit.json(), { status: 'ignored', type: 'charge.refunded' })
  const over = await deliver(app, sized(1_048_577))
  t.equal(over.statusCode, 413, 'one byte more is not')
  t.equal(over.json().error, 'payload_too_large')
})

t.test('any content type is verified the same way', async (t) => {
  const { app } = await buildTestApp(t)
  // Unparseable ones too: Fastify would answer those 415 before the signature was looked at.
  for (const contentType of ['text/plain', 'application/json; charset=utf-8', '', 'foo', ';', 'a/b/c', 'application/x-www-form-urlencoded']) {
    const r = await deliver(app, makeEvent('charge.refunded', { id: 'ch_1' }), { contentType })
    t.equal(r.statusCode, 200, JSON.stringify(contentType))
    t.same(r.json(), { status: 'ignored', type: 'charge.refunded' })
    const unsigned = await app.inject({ method: 'POST', url: '/billing/webhook', headers: { 'content-type': contentType }, payload: '{}' })
    t.match(unsigned.json(), { error: 'invalid_signature' }, 'and unsigned, it is the signature that fails')
  }
})

t.test('checkout completed provisions the pending tenant; redelivery is a duplicate', async (t) => {
  const { app, store, executor } = await buildTestApp(t)
  const id = await pendingTenant(app)
  const event = makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'standard', subscription: 'sub_a' }))
  const r = await deliver(app, event)
  t.same(r.json(), { status: 'ok', type: 'checkout.session.completed', tenant_id: id, tenant_state: 'active' })
  const dup = await deliver(app, event)
  t.same(dup.json(), { status: 'duplicate' })
  t.equal(executor.calls.create, 1, 'one server')
  t.equal((await store.listEvents({ tenant: id })).length, 1)
  const s = await status(app, id)
  t.equal(s.subscription_id, 'sub_a')
  t.equal(s.state, 'active')
  t.equal((await store.listTenants()).length, 1, 'no duplicate tenant')
})

t.test('two copies at the same moment: one effect', async (t) => {
  const { app, store, executor } = await buildTestApp(t)
  const id = await pendingTenant(app)
  const event = makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'standard' }))
  const replies = await Promise.all([deliver(app, event), deliver(app, event), deliver(app, event)])
  const statuses = replies.map((r) => r.json().status).sort()
  t.same(statuses, ['duplicate', 'duplicate', 'ok'])
  t.equal(executor.calls.create, 1)
  t.equal((await store.listJobs({ tenant: id })).length, 1, 'one provisioning job')
})

t.test('checkout completed for an unknown tenant creates one', async (t) => {
  const { app, store } = await buildTestApp(t)
  const named = await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ plan: 'pro', name: 'Night CTF', email: 'a@b.test', tenantId: null })))
  t.equal(named.json().status, 'ok')
  const tenant = await store.getTenant(named.json().tenant_id)
  t.equal(tenant?.name, 'Night CTF')
  t.equal(tenant?.email, 'a@b.test')
  t.equal(tenant?.plan, 'pro')
  const session = checkoutSession({ tenantId: null, subscription: 'sub_other' })
  const anon = await deliver(app, makeEvent('checkout.session.completed', session))
  t.equal((await store.getTenant(anon.json().tenant_id))?.name, `Checkout …${session.id.slice(-6)}`, 'name falls back to the end of the session id')
  t.equal((await store.getTenant(anon.json().tenant_id))?.plan, 'standard', 'plan falls back to standard')
})

t.test('a tenant begun without an email takes the one Checkout collected; one given at checkout stays', async (t) => {
  const { app, store, config } = await buildTestApp(t)
  const bare = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'NoMail CTF' } })).json().tenant_id
  t.equal((await store.getTenant(bare))?.email, '')
  const collected = { ...checkoutSession({ tenantId: bare, plan: 'solo', subscription: 'sub_nomail' }), customer_details: { email: 'buyer@example.org' } }
  t.equal((await deliver(app, makeEvent('checkout.session.completed', collected))).json().tenant_state, 'active')
  t.equal((await store.getTenant(bare))?.email, 'buyer@example.org', 'the address Checkout asked for')
  t.equal(serverSpecFor((await store.getTenant(bare))!, config).adminEmail, 'buyer@example.org', "the CTF's first administrator has it")

  const given = await pendingTenant(app, 'solo', 'Mail CTF')
  await deliver(app, makeEvent('checkout.session.completed', { ...checkoutSession({ tenantId: given, plan: 'solo', subscription: 'sub_mail' }), customer_details: { email: 'someone-else@example.org' } }))
  t.equal((await store.getTenant(given))?.email, 'ops@acme.test', 'the address given at checkout stays')
})

t.test('correlation: invoice metadata in both API shapes, then the durable subscription index', async (t) => {
  const { app } = await buildTestApp(t)
  const a = await pendingTenant(app)
  // basil shape with the subscription's metadata, arriving before anything else
  const r1 = await deliver(app, makeEvent('invoice.paid', invoice({ subscription: 'sub_basil', tenantId: a, shape: 'basil' })))
  t.same(r1.json(), { status: 'ok', type: 'invoice.paid', tenant_id: a, tenant_state: 'active' })
  // later: no metadata at all, only the subscription id (legacy shape)
  // A second later: a failure in the same second as a payment does not outrank it.
  const later = { created: Math.floor(Date.now() / 1000) + 1 }
  const r2 = await deliver(app, makeEvent('invoice.payment_failed', invoice({ subscription: 'sub_basil', shape: 'legacy' }), later))
  t.equal(r2.json().tenant_id, a)
  t.equal(r2.json().tenant_state, 'past_due')
  const b = await pendingTenant(app)
  const r3 = await deliver(app, makeEvent('invoice.paid', invoice({ subscription: 'sub_legacy', tenantId: b, shape: 'legacy' })))
  t.equal(r3.json().tenant_id, b)
  const r4 = await deliver(app, makeEvent('invoice.payment_failed', invoice({ subscription: 'sub_legacy', shape: 'basil' }), later))
  t.equal(r4.json().tenant_id, b, 'basil-shaped subscription id resolves through the index')
  const none = await deliver(app, makeEvent('invoice.paid', invoice({ subscription: 'sub_nobody' })))
  t.same(none.json(), { status: 'unmatched', type: 'invoice.paid' })
})

t.test('the seed lifecycle: provision → renew → fail → recover → plan change → cancel', async (t) => {
  const { app, store } = await buildTestApp(t, { env: { STRIPE_PRICE_PRO: 'price_pro_1' } })
  const id = await pendingTenant(app, 'standard')
  let at = 1_800_000_000
  const send = async (type: string, object: Record<string, unknown>) => (await deliver(app, makeEvent(type, object, { created: at++ }))).json()
  t.equal((await status(app, id)).state, 'provisioning', 'pending after checkout')
  t.equal((await send('customer.subscription.created', subscription({ id: 'sub_life', tenantId: id, status: 'incomplete' }))).tenant_state, 'provisioning', 'incomplete: no change')
  t.equal((await send('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'standard', subscription: 'sub_life' }))).tenant_state, 'active', 'provisioned')
  t.equal((await send('invoice.paid', invoice({ subscription: 'sub_life' }))).tenant_state, 'active', 'renewed')
  t.equal((await send('invoice.payment_failed', invoice({ subscription: 'sub_life' }))).tenant_state, 'past_due', 'renewal failed')
  t.equal((await send('customer.subscription.updated', subscription({ id: 'sub_life', tenantId: id, status: 'past_due' }))).tenant_state, 'past_due')
  t.equal((await send('invoice.payment_succeeded', invoice({ subscription: 'sub_life' }))).tenant_state, 'active', 'recovered')
  const change = await send('customer.subscription.updated', subscription({ id: 'sub_life', tenantId: id, status: 'active', lookupKey: null, priceId: 'price_pro_1' }))
  t.equal(change.tenant_state, 'active')
  t.equal((await status(app, id)).plan, 'pro', 'plan follows the price id through STRIPE_PRICE_PRO')
  await send('customer.subscription.updated', subscription({ id: 'sub_life', tenantId: id, status: 'active', lookupKey: 'ctfhive_solo_monthly' }))
  t.equal((await status(app, id)).plan, 'solo', 'plan follows the lookup key')
  t.equal((await send('customer.subscription.deleted', subscription({ id: 'sub_life', tenantId: id, status: 'canceled' }))).tenant_state, 'canceled')
  const late = await send('invoice.paid', invoice({ subscription: 'sub_life' }))
  t.same(late, { status: 'ignored_terminal', type: 'invoice.paid', tenant_id: id, tenant_state: 'canceled' })
  const final = await status(app, id)
  t.equal(final.state, 'canceled')
  t.equal(final.error, 'The subscription was canceled.')
  const jobs = await store.listJobs({ tenant: id })
  const [resizes, others] = [jobs.filter((j) => j.kind === 'resize'), jobs.filter((j) => j.kind !== 'resize')]
  t.same(others.map((j) => [j.kind, j.status]), [['provision', 'done'], ['deprovision', 'queued']], 'teardown waits for the grace period')
  t.ok(others[1]!.runAfter > Date.now() + 71 * 3_600_000, 'after DEPROVISION_GRACE_HOURS')
  // The plan changes resized the server (the runner may not have reached the last one before
  // the cancellation, which calls it off).
  t.ok(resizes.length >= 1, `the plan changes queued resizes: ${resizes.length}`)
  t.same(resizes.filter((j) => j.status !== 'done' && j.status !== 'canceled'), [], 'none left to run after the cancellation')
})

t.test('stale events change nothing', async (t) => {
  const { app } = await buildTestApp(t)
  const id = await pendingTenant(app)
  await deliver(app, makeEvent('invoice.paid', invoice({ subscription: 'sub_s', tenantId: id }), { created: 2000 }))
  await deliver(app, makeEvent('invoice.payment_failed', invoice({ subscription: 'sub_s' }), { created: 3000 }))
  const r = await deliver(app, makeEvent('invoice.payment_succeeded', invoice({ subscription: 'sub_s' }), { created: 2500 }))
  t.same(r.json(), { status: 'stale', type: 'invoice.payment_succeeded', tenant_id: id, tenant_state: 'past_due' })
})

t.test('async payment and expiry events', async (t) => {
  const { app } = await buildTestApp(t)
  const a = await pendingTenant(app)
  const unpaid = await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: a, plan: 'standard', paymentStatus: 'unpaid', subscription: 'sub_async' })))
  t.equal(unpaid.json().tenant_state, 'provisioning', 'unpaid completion waits')
  t.equal((await status(app, a)).infra, 'none', 'no server before payment')
  const ok = await deliver(app, makeEvent('checkout.session.async_payment_succeeded', checkoutSession({ tenantId: a, plan: 'standard', subscription: 'sub_async' })))
  t.equal(ok.json().tenant_state, 'active')

  const b = await pendingTenant(app)
  const failed = await deliver(app, makeEvent('checkout.session.async_payment_failed', checkoutSession({ tenantId: b, paymentStatus: 'unpaid' })))
  t.equal(failed.json().tenant_state, 'canceled')
  t.equal((await status(app, b)).error, 'The payment for the checkout failed.')

  const c = await pendingTenant(app)
  const expired = await deliver(app, makeEvent('checkout.session.expired', checkoutSession({ tenantId: c, status: 'expired', paymentStatus: 'unpaid', subscription: null })))
  t.equal(expired.json().tenant_state, 'canceled')
  const paidExpired = await deliver(app, makeEvent('checkout.session.expired', checkoutSession({ tenantId: a, status: 'expired', paymentStatus: 'unpaid', subscription: null })))
  t.equal(paidExpired.json().tenant_state, 'active', 'an expiry never cancels a paying tenant')
  const unknown = await deliver(app, makeEvent('checkout.session.expired', checkoutSession({ tenantId: null, subscription: null })))
  t.same(unknown.json(), { status: 'unmatched', type: 'checkout.session.expired' }, 'expiry never creates a tenant')
})

t.test('a one-off session made elsewhere, paid later by a delayed method, becomes one tenant in either order', async (t) => {
  for (const order of [[0, 1], [1, 0]]) {
    const { app, store } = await buildTestApp(t)
    const session = { ...checkoutSession({ tenantId: null, subscription: null, paymentStatus: 'unpaid', name: 'Bank CTF', plan: 'solo', id: 'cs_test_bank1' }), mode: 'payment' }
    const events = [
      makeEvent('checkout.session.completed', session, { created: 1000 }),
      makeEvent('checkout.session.async_payment_succeeded', { ...session, payment_status: 'paid' }, { created: 2000 })
    ]
    const answers = []
    for (const i of order) answers.push((await deliver(app, events[i]!)).json().status)
    const tenants = await store.listTenants()
    t.match(tenants, [{ name: 'Bank CTF', plan: 'solo', billing: 'paid', infra: 'ready' }], `order ${order.join(',')}: one tenant, paid`)
    t.equal(tenants.length, 1)
    t.same(answers.sort(), ['ok', 'unmatched'], 'the unpaid completion matched nothing')
  }
})

t.test('a payment after a failed async checkout wins in every order: the buyer who paid gets the server', async (t) => {
  const { app } = await buildTestApp(t)
  const ends: string[] = []
  for (const order of [[0, 1, 2], [0, 2, 1], [1, 0, 2], [2, 1, 0]]) {
    const id = await pendingTenant(app)
    const sub = `sub_async_${id}`
    const events = [
      makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'standard', paymentStatus: 'unpaid', subscription: sub }), { created: 1000 }),
      makeEvent('checkout.session.async_payment_failed', checkoutSession({ tenantId: id, paymentStatus: 'unpaid', subscription: sub }), { created: 1010 }),
      makeEvent('invoice.paid', invoice({ subscription: sub, tenantId: id }), { created: 1020 })
    ]
    for (const i of order) t.equal((await deliver(app, events[i]!)).statusCode, 200)
    const s = await status(app, id)
    ends.push(`${order.join(',')}: ${s.state} ${s.error ?? ''}`.trim())
  }
  t.same(ends, ['0,1,2: active', '0,2,1: active', '1,0,2: active', '2,1,0: active'])

  // The subscription deleted after the failure: final; a payment then changes nothing.
  const id = await pendingTenant(app)
  const sub = `sub_gone_${id}`
  await deliver(app, makeEvent('checkout.session.async_payment_failed', checkoutSession({ tenantId: id, paymentStatus: 'unpaid', subscription: sub }), { created: 1010 }))
  const failedAt = (await status(app, id)).canceled_at
  const gone = await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: sub, tenantId: id, status: 'canceled' }), { created: 1030 }))
  t.match(gone.json(), { status: 'ok', tenant_state: 'canceled' })
  t.match(await status(app, id), { state: 'canceled', canceled_at: failedAt })
  t.match((await deliver(app, makeEvent('invoice.paid', invoice({ subscription: sub, tenantId: id }), { created: 1040 }))).json(), { status: 'ignored_terminal', tenant_state: 'canceled' })
})

t.test('the webhook waits only briefly for slow provisioning', async (t) => {
  const slow = new FakeExecutor()
  slow.unhealthyChecks = 1_000_000
  const { app } = await buildTestApp(t, { executor: slow, env: { WEBHOOK_WAIT_MS: '100' }, jobs: { pollIntervalMs: 20 } })
  const id = await pendingTenant(app)
  const r = await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'standard' })))
  t.equal(r.statusCode, 200)
  t.equal(r.json().tenant_state, 'provisioning')
  t.equal((await status(app, id)).infra, 'provisioning')
})

t.test('a failed first payment, then the subscription expiring: canceled with the checkout\'s reason in every order', async (t) => {
  const { app } = await buildTestApp(t)
  const orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]]
  const ends: string[] = []
  for (const order of orders) {
    const id = await pendingTenant(app, 'solo')
    const sub = `sub_expired_${id}`
    const session = checkoutSession({ tenantId: id, plan: 'solo', paymentStatus: 'unpaid', subscription: sub })
    // Stripe's sequence for a delayed payment method that fails: about 23 hours later the
    // subscription whose first invoice was never paid becomes incomplete_expired.
    const events = [
      makeEvent('checkout.session.completed', session, { created: 1000 }),
      makeEvent('checkout.session.async_payment_failed', session, { created: 4600 }),
      makeEvent('customer.subscription.updated', subscription({ id: sub, tenantId: id, status: 'incomplete_expired', lookupKey: 'ctfhive_solo_monthly' }), { created: 87400 })
    ]
    for (const i of order) t.equal((await deliver(app, events[i]!)).statusCode, 200)
    const s = await status(app, id)
    ends.push(`${order.join(',')}: ${s.state} ${s.error}`)
  }
  t.same(ends, orders.map((o) => `${o.join(',')}: canceled The payment for the checkout failed.`))
})

t.test('an event from the other Stripe mode than STRIPE_SECRET_KEY is ignored, not recorded, and logged', async (t) => {
  const live = 'sk_live_' + 'x'.repeat(24)
  for (const [key, livemode] of [[live, false], ['rk_live_' + 'x'.repeat(24), false], ['sk_test_' + 'x'.repeat(24), true], ['rk_test_' + 'x'.repeat(24), true]] as const) {
    const lines: Array<Record<string, unknown>> = []
    const { app, store, executor } = await buildTestApp(t, { env: { STRIPE_SECRET_KEY: key, STRIPE_API_BASE: 'http://127.0.0.1:9' }, logLines: lines })
    // A paid session made elsewhere (a Payment Link): applied, it would make a tenant and a server.
    const event = { ...makeEvent('checkout.session.completed', checkoutSession({ tenantId: null, plan: 'standard', subscription: 'sub_mode' })), livemode }
    const r = await deliver(app, event)
    t.equal(r.statusCode, 200, `${key.slice(0, 8)}, livemode ${livemode}`)
    t.same(r.json(), { status: 'ignored', type: 'checkout.session.completed', reason: 'livemode' })
    t.same(await store.listTenants(), [], 'no tenant made')
    t.equal(executor.calls.create, 0, 'no server made')
    t.same(await store.listEvents({}), [], 'not recorded, as an unsupported type is not')
    t.equal(lines.filter((l) => l.level === 40 && l.event === event.id).length, 1, 'one warning for the event')
    const again = await deliver(app, event)
    t.same(again.json(), r.json(), 'a redelivery gets the same answer')
  }
})

t.test('an event of the key\'s own mode, or without a key or a boolean livemode, applies as before', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['sk_live_' + 'x'.repeat(24), true],
    ['sk_test_' + 'x'.repeat(24), false],
    ['sk_live_' + 'x'.repeat(24), undefined],
    ['sk_live_' + 'x'.repeat(24), 'false'],
    ['', true],
    ['', false]
  ]
  for (const [key, livemode] of cases) {
    const env: Record<string, string> = key === '' ? {} : { STRIPE_SECRET_KEY: key, STRIPE_API_BASE: 'http://127.0.0.1:9' }
    const { app, store } = await buildTestApp(t, { env })
    const { livemode: _mode, ...base } = makeEvent('checkout.session.completed', checkoutSession({ tenantId: null, plan: 'standard', subscription: 'sub_mode' }))
    const r = await deliver(app, livemode === undefined ? base : { ...base, livemode })
    t.match(r.json(), { status: 'ok', type: 'checkout.session.completed' }, `key ${key.slice(0, 8) || 'none'}, livemode ${JSON.stringify(livemode)}`)
    t.match(await store.listTenants(), [{ billing: 'paid', subscriptionId: 'sub_mode' }], 'the tenant it makes')
    t.equal((await store.listEvents({})).length, 1, 'recorded')
  }
})

t.test('poison events: odd ids and odd statuses are refused or ignored, never a 500', async (t) => {
  const { app, store } = await buildTestApp(t)
  const id = await pendingTenant(app)
  for (const eventId of ['evt_\u0000x', 'evt_\ud800', 'x'.repeat(256)]) {
    const r = await deliver(app, makeEvent('invoice.paid', invoice({ subscription: 'sub_p', tenantId: id }), { id: eventId }))
    t.equal(r.statusCode, 400, JSON.stringify(eventId))
    t.equal(r.json().error, 'invalid_event')
  }
  t.equal((await store.listEvents({})).length, 0, 'none of them recorded')
  const odd = await deliver(app, makeEvent('customer.subscription.updated', { ...subscription({ tenantId: id, status: 'active' }), status: { toString: 1 }, customer: 'cus_\u0000' }))
  t.equal(odd.statusCode, 200, 'a status that is no string says nothing; an id that is no id is none')
  t.match(await store.getTenant(id), { billing: 'pending', customerId: null })
})

t.test('with the production wait (2 s), the FakeExecutor is active by the time the webhook answers', async (t) => {
  const { app } = await buildTestApp(t, { env: { WEBHOOK_WAIT_MS: '2000' } })
  const id = await pendingTenant(app)
  const r = await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'standard' })))
  t.equal(r.statusCode, 200)
  t.equal(r.json().tenant_state, 'active', 'as in the seeds')
})

t.test('a provisioning failure is reported as failed', async (t) => {
  const executor = new FakeExecutor()
  executor.failNext('create', 1, new ExecutorError('quota exceeded', { retryable: false }))
  const { app, store } = await buildTestApp(t, { executor })
  const id = await pendingTenant(app)
  const r = await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'standard' })))
  t.equal(r.json().tenant_state, 'failed')
  t.match((await status(app, id)).error, /^Provisioning failed after 1 attempt;/, 'the public status says it failed')
  t.equal((await store.listJobs({ tenant: id }))[0]?.lastError, 'quota exceeded', 'the cause is kept for the operator')
})

/** A store whose transactions fail at `method` while armed. */
function failingStore (inner: Store, method: keyof StoreOps): Store & { armed: boolean } {
  const wrapper = Object.create(inner) as Store & { armed: boolean }
  wrapper.armed = true
  wrapper.transaction = (fn) => inner.transaction((tx) => fn(new Proxy(tx, {
    get (target, key) {
      const value = Reflect.get(target, key)
      if (key === method && wrapper.armed) return async () => { throw new StoreError('disk I/O error') }
      return typeof value === 'function' ? value.bind(target) : value
    }
  })))
  return wrapper
}

t.test('a store failure answers 500 and leaves nothing half-written; the retry succeeds', async (t) => {
  const inner = new SqliteStore({ path: ':memory:' })
  t.teardown(() => inner.close())
  const store = failingStore(inner, 'updateTenant')
  const { app } = await buildTestApp(t, { store })
  store.armed = false
  const id = await pendingTenant(app)
  store.armed = true
  const event = makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'standard', subscription: 'sub_fail' }))
  const r = await deliver(app, event)
  t.equal(r.statusCode, 500)
  t.equal(r.json().error, 'store_unavailable')
  t.notMatch(r.body, /disk I\/O/, 'no internals in the body')
  t.equal(await inner.getEvent(event.id), undefined, 'the event id was rolled back with its effect')
  t.equal(await inner.findTenantIdBySubscription('sub_fail'), undefined, 'no subscription link')
  t.equal((await inner.listJobs({ tenant: id })).length, 0, 'no job')
  store.armed = false
  const retry = await deliver(app, event)
  t.equal(retry.json().status, 'ok', 'Stripe’s retry is applied')
})

t.test('a store failing after the event committed: 200 with the committed state, and a warning', async (t) => {
  const { inner, store } = storeWithOverrides(t)
  const lines: Array<Record<string, unknown>> = []
  const { app } = await buildTestApp(t, { store, logLines: lines })
  const id = await pendingTenant(app)
  // The connection drops between the commit and the read-back after the provisioning wait.
  store.getTenant = async () => { throw new StoreError('connection terminated') }
  const event = makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'standard', subscription: 'sub_after' }))
  const r = await deliver(app, event)
  t.equal(r.statusCode, 200, 'not a 500 saying nothing was written')
  t.match(r.json(), { status: 'ok', tenant_id: id, tenant_state: 'provisioning' }, 'the state the transaction left')
  t.equal((await inner.getEvent(event.id))?.outcome, 'ok', 'the event is stored')
  t.ok(lines.some((l) => l.level === 40 && l.tenant === id && /could not read the tenant back/.test(String(l.msg))), 'a warning says so')
  t.notOk(lines.some((l) => /webhook could not be stored/.test(String(l.msg))))
})

t.test('a copy another process recorded while this one applied: duplicate, its effect rolled back', async (t) => {
  const { inner, store } = storeWithOverrides(t)
  // Plays the other process: its copy commits just before this one records the id.
  let race = false
  store.transaction = (fn) => inner.transaction((tx) => fn(new Proxy(tx, {
    get (target, key) {
      if (key === 'recordEvent' && race) return async () => false
      const value = Reflect.get(target, key)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })))
  const { app } = await buildTestApp(t, { store })
  const id = await pendingTenant(app)
  const before = await inner.getTenant(id)
  race = true
  const event = makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'standard', subscription: 'sub_race' }))
  const r = await deliver(app, event)
  t.equal(r.statusCode, 200)
  t.same(r.json(), { status: 'duplicate' })
  t.same(await inner.getTenant(id), before, 'the tenant is as it was')
  t.equal(await inner.findTenantIdBySubscription('sub_race'), undefined, 'no subscription link')
  t.equal((await inner.listJobs({ tenant: id })).length, 0, 'no provisioning job')
  race = false
  t.equal((await deliver(app, event)).json().status, 'ok', 'a real first delivery still applies')
  t.equal((await inner.getEvent(event.id))?.outcome, 'ok', 'recorded once, with its outcome')
})

/** Indexes 0…n-1 in any order, with up to three of them delivered a second time anywhere. */
function deliveryOrder (n: number): fc.Arbitrary<number[]> {
  const all = Array.from({ length: n }, (_, i) => i)
  return fc.tuple(fc.shuffledSubarray(all, { minLength: n }), fc.array(fc.tuple(fc.nat(n - 1), fc.nat()), { maxLength: 3 }))
    .map(([order, dups]) => {
      const out = [...order]
      for (const [i, at] of dups) out.splice(at % (out.length + 1), 0, i)
      return out
    })
}

t.test('property: any delivery order (with duplicates) ends in the same state', async (t) => {
  const { app, store } = await buildTestApp(t)
  let run = 0
  await fc.assert(fc.asyncProperty(deliveryOrder(8), async (order8) => {
    run++
    const id = await pendingTenant(app)
    const sub = `sub_prop_${run}`
    const base = 1_900_000_000 + run * 100
    const events = [
      makeEvent('customer.subscription.created', subscription({ id: sub, tenantId: id, status: 'incomplete' }), { created: base }),
      makeEvent('invoice.paid', invoice({ subscription: sub, tenantId: id }), { created: base + 1 }),
      makeEvent('customer.subscription.updated', subscription({ id: sub, tenantId: id, status: 'active', lookupKey: 'ctfhive_pro_monthly' }), { created: base + 2 }),
      makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'standard', subscription: sub }), { created: base + 3 }),
      makeEvent('invoice.payment_failed', invoice({ subscription: sub, tenantId: id }), { created: base + 4 }),
      makeEvent('customer.subscription.updated', subscription({ id: sub, tenantId: id, status: 'past_due', lookupKey: 'ctfhive_pro_monthly' }), { created: base + 5 }),
      makeEvent('invoice.paid', invoice({ subscription: sub, tenantId: id }), { created: base + 6 }),
      makeEvent('customer.subscription.updated', subscription({ id: sub, tenantId: id, status: 'active', lookupKey: 'ctfhive_solo_monthly' }), { created: base + 7 })
    ]
    for (const e of order8.map((i) => events[i]!)) {
      const r = await deliver(app, e)
      if (r.statusCode !== 200) return false
    }
    const s = await status(app, id)
    const recorded = await store.listEvents({ tenant: id })
    return s.state === 'active' && s.plan === 'solo' && s.subscription_id === sub && recorded.length === events.length
  }), { numRuns: 25 })
  t.pass('25 random delivery orders agree')
})

t.test('property: two subscriptions at once (the checkout\'s ends, one made by hand replaces it) agree in any delivery order', async (t) => {
  const { app, store } = await buildTestApp(t)
  let run = 0
  await fc.assert(fc.asyncProperty(deliveryOrder(7), async (order7) => {
    run++
    const id = await pendingTenant(app)
    const [a, b] = [`sub_a_${run}`, `sub_b_${run}`]
    const base = 1_950_000_000 + run * 100
    const events = [
      makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'standard', subscription: a }), { created: base }),
      makeEvent('invoice.paid', invoice({ subscription: a, tenantId: id }), { created: base + 1 }),
      makeEvent('customer.subscription.created', subscription({ id: b, tenantId: id, status: 'active', lookupKey: 'ctfhive_pro_monthly' }), { created: base + 2 }),
      makeEvent('invoice.paid', invoice({ subscription: b, tenantId: id }), { created: base + 3 }),
      makeEvent('customer.subscription.deleted', subscription({ id: a, tenantId: id, status: 'canceled' }), { created: base + 4 }),
      makeEvent('invoice.payment_failed', invoice({ subscription: b, tenantId: id }), { created: base + 5 }),
      makeEvent('invoice.paid', invoice({ subscription: b, tenantId: id }), { created: base + 6 })
    ]
    for (const e of order7.map((i) => events[i]!)) {
      if ((await deliver(app, e)).statusCode !== 200) return false
    }
    const s = await status(app, id)
    const teardowns = (await store.listJobs({ tenant: id })).filter((j) => j.kind === 'deprovision' && j.status === 'queued')
    return s.state === 'active' && s.billing === 'paid' && s.plan === 'pro' && s.subscription_id === b && s.canceled_at === null &&
      teardowns.length === 0 && (await store.listEvents({ tenant: id })).length === events.length
  }), { numRuns: 25 })
  t.pass('25 random delivery orders agree: active on the second subscription, no teardown pending')
})

t.test('secret rotation: an event signed with any configured secret is accepted, another is not', async (t) => {
  const { app, store } = await buildTestApp(t, { env: { STRIPE_WEBHOOK_SECRET: 'whsec_old, whsec_new' } })
  // A supported event is recorded (as unmatched here), so "nothing stored" can be seen.
  const signed = async (secret: string) => {
    const event = makeEvent('invoice.paid', invoice({ subscription: 'sub_rotation' }))
    return { event, r: await deliver(app, event, { secret }) }
  }
  for (const secret of ['whsec_old', 'whsec_new']) {
    const { event, r } = await signed(secret)
    t.equal(r.statusCode, 200, `signed with ${secret}`)
    t.same(r.json(), { status: 'unmatched', type: 'invoice.paid' }, `${secret}: handled`)
    t.ok(await store.getEvent(event.id), `${secret}: recorded`)
  }
  const { event: foreign, r: rejected } = await signed('whsec_third')
  t.equal(rejected.statusCode, 400)
  t.same(rejected.json(), { error: 'invalid_signature', message: 'no signature matches the payload', reason: 'no_match' })
  t.equal(await store.getEvent(foreign.id), undefined, 'the unverified event is not recorded')
  t.equal((await store.listEvents({})).length, 2, 'only the two verified events')
})

t.test('a header with several v1 signatures passes when a later one matches', async (t) => {
  const { app, store } = await buildTestApp(t, { env: { STRIPE_WEBHOOK_SECRET: 'whsec_old,whsec_new' } })
  const event = makeEvent('invoice.paid', invoice({ subscription: 'sub_two_sigs' }))
  const body = JSON.stringify(event)
  const now = Math.floor(Date.now() / 1000)
  // Stripe signs with every secret of the endpoint during its own rotation: the first is unknown here.
  const header = `t=${now},v1=${computeSignature('whsec_retired', now, body)},v1=${computeSignature('whsec_new', now, body)}`
  const r = await deliver(app, body, { header })
  t.equal(r.statusCode, 200, r.body)
  t.same(r.json(), { status: 'unmatched', type: 'invoice.paid' })
  t.ok(await store.getEvent(event.id), 'recorded')
  const other = JSON.stringify(makeEvent('invoice.paid', invoice({ subscription: 'sub_two_sigs' })))
  const noneMatch = `t=${now},v1=${computeSignature('whsec_retired', now, other)},v1=${computeSignature('whsec_other', now, other)}`
  const rejected = await deliver(app, other, { header: noneMatch })
  t.equal(rejected.statusCode, 400, 'no v1 matches: rejected')
  t.equal(rejected.json().reason, 'no_match')
})

t.test('STRIPE_WEBHOOK_TOLERANCE_S sets how old a signature may be', async (t) => {
  // Read at each delivery: building the apps may take seconds on a loaded machine.
  const now = (): number => Math.floor(Date.now() / 1000)
  const event = () => makeEvent('invoice.paid', invoice({ subscription: 'sub_tolerance' }))

  const strict = await buildTestApp(t, { env: { STRIPE_WEBHOOK_TOLERANCE_S: '10' } })
  const old = event()
  const stale = await deliver(strict.app, old, { timestamp: now() - 60 })
  t.equal(stale.statusCode, 400, 'a minute old, tolerance 10 s')
  t.same(stale.json(), { error: 'invalid_signature', message: 'the signature timestamp is outside the tolerance window', reason: 'stale' })
  t.equal(await strict.store.getEvent(old.id), undefined, 'the stale delivery is not recorded')
  const recent = await deliver(strict.app, event(), { timestamp: now() - 5 })
  t.equal(recent.statusCode, 200, 'five seconds old, tolerance 10 s')
  t.equal(recent.json().status, 'unmatched')

  const lenient = await buildTestApp(t)
  t.equal(lenient.config.stripe.webhookToleranceS, 300, 'the default')
  const minute = await deliver(lenient.app, event(), { timestamp: now() - 60 })
  t.equal(minute.statusCode, 200, 'a minute old, default tolerance')
  t.equal(minute.json().status, 'unmatched')
})

t.test('the signature covers the raw bytes, not the parsed JSON', async (t) => {
  const { app } = await buildTestApp(t)
  // Stripe's own example event, pretty-printed: the bytes differ from any re-serialization.
  const raw = readFileSync(new URL('../fixtures/stripe/event.json', import.meta.url))
  const compact = Buffer.from(JSON.stringify(JSON.parse(raw.toString('utf8'))))
  t.not(raw.toString('utf8'), compact.toString('utf8'), 'the fixture is not in compact form')
  const header = signPayload(TEST_WEBHOOK_SECRET, raw)
  const post = (payload: Buffer) => app.inject({ method: 'POST', url: '/billing/webhook', headers: { 'content-type': 'application/json', 'stripe-signature': header }, payload })

  const exact = await post(raw)
  t.equal(exact.statusCode, 200, 'the bytes as signed')
  t.same(exact.json(), { status: 'ignored', type: 'plan.created' }, 'verified and parsed')
  const reserialized = await post(compact)
  t.equal(reserialized.statusCode, 400, 'the same JSON in other bytes')
  t.same(reserialized.json(), { error: 'invalid_signature', message: 'no signature matches the payload', reason: 'no_match' })
})

/** A store whose transactions fail at `method` with a plain Error (a bug, not the database). */
function buggyStore (inner: Store, method: keyof StoreOps, error: Error): Store {
  const wrapper = Object.create(inner) as Store
  wrapper.transaction = (fn) => inner.transaction((tx) => fn(new Proxy(tx, {
    get (target, key) {
      if (key === method) return async () => { throw error }
      const value = Reflect.get(target, key)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })))
  return wrapper
}

t.test('a failure that is not the store\'s answers 500 with a generic message and no internals', async (t) => {
  const inner = new SqliteStore({ path: ':memory:' })
  t.teardown(() => inner.close())
  const bug = new TypeError("Cannot read properties of undefined (reading 'secret_internal_detail')")
  const { app } = await buildTestApp(t, { store: buggyStore(inner, 'recordEvent', bug) })
  const event = makeEvent('invoice.paid', invoice({ subscription: 'sub_bug' }))
  const r = await deliver(app, event)
  t.equal(r.statusCode, 500)
  t.same(r.json(), { error: 'store_unavailable', message: 'The event could not be processed; Stripe will retry.' }, 'exactly the code and the generic message')
  t.notMatch(r.body, /secret_internal_detail|TypeError|Cannot read|stack|\.ts:\d+/, 'nothing of the thrown error')
  t.equal(await inner.getEvent(event.id), undefined, 'nothing recorded')
})

t.test('a stored event keeps the buyer\'s email but not their name, phone, postal address or tax id; its replay still applies', async (t) => {
  const { app, store } = await buildTestApp(t, { env: { ADMIN_TOKEN: 'admin-token-for-webhook-tests-0123456789' } })
  const tenantId = 'b'.repeat(32)
  const event = makeEvent('checkout.session.completed', {
    ...checkoutSession({ tenantId, plan: 'solo', name: 'Privacy CTF', email: 'jane@example.eu', subscription: 'sub_privacy' }),
    customer_details: { email: 'jane@example.eu', name: 'Jane Doe', phone: '+49 30 1234567', address: { line1: 'Musterstrasse 1', city: 'Berlin', country: 'DE' }, tax_exempt: 'none', tax_ids: [{ type: 'eu_vat', value: 'DE123456789' }] }
  })
  const r = await deliver(app, event)
  t.equal(r.statusCode, 200, r.body)
  t.equal((await store.getTenant(tenantId))!.email, 'jane@example.eu')
  const stored = (await store.getEvent(event.id))!.payload
  t.notMatch(stored, /Jane Doe|\+49|Musterstrasse|DE123456789/)
  t.match(stored, /jane@example\.eu/)
  const replay = await app.inject({ method: 'POST', url: `/admin/events/${event.id}/replay`, headers: { authorization: 'Bearer admin-token-for-webhook-tests-0123456789' } })
  t.equal(replay.statusCode, 200, replay.body)
  t.match(replay.json(), { result: { status: 'ok', tenant_id: tenantId } })
})
