import * as crypto from 'node:crypto'
import t from 'tap'
import { buildTestApp } from '../helpers/build-app.ts'
import { checkoutSession, deliver, invoice, makeEvent, subscription } from '../helpers/stripe-events.ts'
import { slugFor } from '../../api/tenants/service.ts'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import { ExecutorError } from '../../api/provisioning/executor.ts'

t.test('slugFor: a readable DNS label ending in a piece of the tenant id', async (t) => {
  const id = '0123456789abcdef0123456789abcdef'
  t.equal(slugFor('Acme CTF 2026!', id), 'acme-ctf-2026-012345')
  t.equal(slugFor('Ünïcödé Ñight', id), 'unicode-night-012345', 'accents folded')
  // Letters NFKD leaves whole, spelt as their languages spell them in ASCII, not dropped.
  for (const [name, slug] of [
    ['Straße CTF', 'strasse-ctf'], ['Kırıkkale Siber', 'kirikkale-siber'], ['Işık CTF', 'isik-ctf'], ['Łódź Hackathon', 'lodz-hackathon'],
    ['Øresund CTF', 'oresund-ctf'], ['Ærø Sec', 'aero-sec'], ['Þór CTF', 'thor-ctf'], ['Đà Nẵng CTF', 'da-nang-ctf'], ['Œuvre', 'oeuvre']
  ] as Array<[string, string]>) t.equal(slugFor(name, id), `${slug}-012345`, name)
  t.equal(slugFor('Ka\u0cc6\u0cd5 CTF', id), 'ka-ctf-012345', 'any combining mark goes, not only U+0300–036F')
  t.equal(slugFor('', id), 'ctf-012345', 'no name')
  t.equal(slugFor('2026 finals', id), 'ctf-2026-finals-012345', 'a letter first')
  t.equal(slugFor('Acme', id, 32), `acme-${id}`, 'the whole id on request')
  t.equal(slugFor(`${'a'.repeat(39)} b`, id), `${'a'.repeat(39)}-012345`, 'cut at 40 just past a word: no hyphen left before the suffix\'s')
  for (const n of [6, 10, 16, 32]) {
    const slug = slugFor('x'.repeat(200), id, n)
    t.ok(slug.length <= 63, `at most 63 characters with a ${n}-character suffix (${slug.length})`)
    t.match(slug, /^[a-z][a-z0-9-]*[a-z0-9]$/)
    t.ok(slug.endsWith(`-${id.slice(0, n)}`))
  }
})

t.test('tenants of the same name whose ids share a prefix get distinct slugs', async (t) => {
  const { app, store } = await buildTestApp(t)
  // Tenants created from Checkout sessions nobody knew about take the session's tenant id.
  const ids = ['abcdef0000000000000000000000000a', 'abcdef0000000000000000000000000b', 'abcdef0000000000000000000000000c']
  const slugs: string[] = []
  for (const [i, id] of ids.entries()) {
    const r = await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'solo', name: 'Spring CTF', subscription: `sub_slug_${i}` })))
    t.equal(r.statusCode, 200, `delivery ${i}: ${r.body}`)
    t.equal(r.json().status, 'ok')
    slugs.push((await store.getTenant(id))!.slug)
  }
  t.same(slugs, ['spring-ctf-abcdef', 'spring-ctf-abcdef0000', 'spring-ctf-abcdef0000000000'], 'the shortest free suffix each time')
})

t.test('checkout: a slug already taken is never a 500', async (t) => {
  // Tenant ids come from randomBytes(16): fixed here, so each checkout's slug candidates are
  // known and the earlier tenants hold exactly the candidates the later ones try first.
  const ids = [
    'abcdef00000000000000000000000001', // takes spring-ctf-abcdef
    'abcdef0123ffffffffffffffffffffff', // spring-ctf-abcdef taken: takes spring-ctf-abcdef0123
    'abcdef0123456789aaaaaaaaaaaaaaaa' // both taken: spring-ctf-abcdef0123456789
  ]
  const queue = [...ids]
  const { buildTestApp: buildWithIds } = await t.mockImport<typeof import('../helpers/build-app.ts')>('../helpers/build-app.ts', {
    'node:crypto': t.createMock(crypto, {
      randomBytes: ((size: number, ...rest: unknown[]) => size === 16 && rest.length === 0 && queue.length > 0
        ? Buffer.from(queue.shift()!, 'hex')
        : (crypto.randomBytes as (...a: unknown[]) => unknown)(size, ...rest)) as typeof crypto.randomBytes
    })
  })
  const { app, store } = await buildWithIds(t)
  const slugs: string[] = []
  for (const [i, id] of ids.entries()) {
    const r = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Spring CTF', email: `o${i}@x.test` } })
    t.equal(r.statusCode, 200, `checkout ${i}: ${r.body}`)
    t.equal(r.json().tenant_id, id, `checkout ${i} got the planned id`)
    slugs.push((await store.getTenant(id))!.slug)
  }
  t.same(slugs, ['spring-ctf-abcdef', 'spring-ctf-abcdef0123', 'spring-ctf-abcdef0123456789'], 'each skips the slugs already held')
  t.equal((await store.listTenants()).length, 3, 'three tenants')
})

t.test('a tenant an older release wrote (no billing facts) gets them from its columns at its next event', async (t) => {
  const { app, store } = await buildTestApp(t)
  const id = 'abcdef0000000000000000000000feed'
  const base = 1_960_000_000
  t.equal((await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'standard', subscription: 'sub_old' }), { created: base }))).json().status, 'ok')
  // As a release before migration 007 leaves it (and as one still running after it writes).
  await store.updateTenant(id, { billingState: null })
  const canceled = await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: 'sub_old', tenantId: id, status: 'canceled' }), { created: base + 1 }))
  t.equal(canceled.json().tenant_state, 'canceled')
  const rebuilt = (await store.getTenant(id))!
  t.same(rebuilt.billingState?.subscriptions.sub_old, { status: 'paid', statusAt: base, plan: 'standard', planAt: base + 1, ended: true, endedAt: base + 1, endReason: 'The subscription was canceled.', paid: true }, 'rebuilt from the columns, then the event (which restates the plan) added')
  t.equal((await deliver(app, makeEvent('invoice.paid', invoice({ subscription: 'sub_old', tenantId: id }), { created: base + 2 }))).json().status, 'ignored_terminal', 'the ended subscription stays ended')

  // An older release brought it back after the facts were written (paid again): its columns win.
  await store.updateTenant(id, { billing: 'paid', billingAt: base + 3, canceledAt: null })
  const renewed = await deliver(app, makeEvent('customer.subscription.updated', subscription({ id: 'sub_old', tenantId: id, status: 'past_due' }), { created: base + 4 }))
  t.match(renewed.json(), { status: 'ok', tenant_state: 'past_due' }, 'the facts that disagree with the columns are rebuilt from them')
})

t.test('a checkout that expires cancels a tenant that never had a server: no teardown is scheduled', async (t) => {
  const { app, store } = await buildTestApp(t)
  const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'standard', name: 'Expired CTF' } })).json().tenant_id
  const r = await deliver(app, makeEvent('checkout.session.expired', checkoutSession({ tenantId: id, paymentStatus: 'unpaid', status: 'expired' })))
  t.match(r.json(), { status: 'ok', tenant_state: 'canceled' })
  t.same(await store.listJobs({ tenant: id }), [], 'no teardown job')
  t.notOk((await store.listAudit({ tenant: id })).some((e) => e.action === 'teardown.scheduled'), 'and none in the audit')
})

t.test('the service itself refuses to retry a canceled tenant\'s provisioning, and keeps a tenant paid meanwhile', async (t) => {
  // The admin route checks first; these are the checks under the tenant's lock, for a
  // cancel or a payment that lands between the two.
  const executor = new FakeExecutor()
  executor.failNext('create', 1, new ExecutorError('the region is out of capacity', { retryable: false }))
  const { app, store } = await buildTestApp(t, { executor })
  const checkout = async (name: string): Promise<string> => (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'standard', name } })).json().tenant_id
  const failed = await checkout('Failed CTF')
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ plan: 'standard', tenantId: failed, subscription: 'sub_retry_canceled' })))
  await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: 'sub_retry_canceled', tenantId: failed, status: 'canceled' })))
  t.match(await store.getTenant(failed), { billing: 'canceled', infra: 'failed' })
  t.equal(await app.tenants.retryProvisioning(failed), false, 'nothing to retry')
  t.match(await store.getTenant(failed), { infra: 'failed' }, 'no new provisioning')
  t.notOk((await store.listAudit({ tenant: failed })).some((e) => e.action === 'provision.retry_requested'))

  const paid = await checkout('Paid CTF')
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ plan: 'standard', tenantId: paid, subscription: 'sub_paid_meanwhile' })))
  await app.tenants.removePendingTenant(paid, 'stripe checkout failed')
  t.match(await store.getTenant(paid), { billing: 'paid' }, 'a Stripe failure reported late does not remove a paid tenant')
})
