import t from 'tap'
import { intentForEvent, isStripeEvent, otherModeThanKey, planOfSubscription, storablePayload, stripeKeyMode, SUPPORTED_EVENTS, type StripeEvent, type SupportedEvent } from '../../api/billing/events.ts'
import { checkoutSession, invoice, makeEvent, subscription } from '../helpers/stripe-events.ts'

const TENANT = '0123456789abcdef0123456789abcdef'
const noPrices = (): undefined => undefined
const intent = (type: SupportedEvent, object: Record<string, any>, priceToPlan: (id: string) => string | undefined = noPrices) =>
  intentForEvent(makeEvent(type, object) as unknown as StripeEvent & { type: SupportedEvent }, priceToPlan)

t.test('every supported type has an intent', async (t) => {
  for (const type of SUPPORTED_EVENTS) {
    const object = type.startsWith('checkout') ? checkoutSession({ tenantId: TENANT }) : type.startsWith('invoice') ? invoice({ subscription: 'sub_1', tenantId: TENANT }) : subscription({ tenantId: TENANT, status: 'active' })
    t.equal(intent(type, object).tenantId, TENANT, type)
  }
})

t.test('checkout: who the new tenant is when nobody knew it', async (t) => {
  const named = intent('checkout.session.completed', checkoutSession({ tenantId: TENANT, name: 'Spring CTF', email: 'a@b.test', plan: 'pro' }))
  t.same(named.create, { name: 'Spring CTF', email: 'a@b.test', plan: 'pro' })
  const session = { ...checkoutSession({ tenantId: TENANT }), id: '', customer_email: null, customer_details: { email: 'details@b.test' }, metadata: { tenant_id: TENANT } }
  t.same(intent('checkout.session.completed', session).create, { name: 'ctfhive-event', email: 'details@b.test', plan: 'standard' }, 'no name, no plan: defaults; email from customer_details')
  const byMetadata = { ...session, customer_details: null, metadata: { email: 'meta@b.test', plan: 'enterprise' } }
  const i = intent('checkout.session.completed', byMetadata)
  t.equal(i.create?.email, 'meta@b.test', 'email from metadata last')
  t.equal(i.create?.plan, 'standard', 'a contact-only plan is not a checkout plan')
  t.equal(i.change.plan, undefined, 'and is not applied')
  t.equal(intent('checkout.session.completed', { ...checkoutSession({}), client_reference_id: 'not-a-tenant-id', metadata: {} }).tenantId, undefined, 'ids that are not ours are ignored')
  t.equal(intent('checkout.session.completed', { ...checkoutSession({}), client_reference_id: TENANT, metadata: {} }).tenantId, undefined, 'client_reference_id alone names no tenant (a Payment Link URL can set it)')
  t.equal(intent('checkout.session.completed', checkoutSession({ tenantId: TENANT, name: ' evil\u0000\u0000ctf\n' })).create?.name, 'evil ctf', 'control characters become a space (PostgreSQL refuses NUL)')
  t.equal(intent('checkout.session.completed', { ...checkoutSession({ tenantId: TENANT, name: '\u0000' }), id: '' }).create?.name, 'ctfhive-event', 'nothing left: the default')
  t.equal(intent('checkout.session.completed', checkoutSession({ tenantId: TENANT, name: 'ok\u202eevil' })).create?.name, 'ok evil', 'a bidirectional override becomes a space too')
  t.equal(intent('checkout.session.completed', { ...checkoutSession({ tenantId: TENANT, name: '\u200b' }), id: 'cs_test_abcdef123456' }).create?.name, 'Checkout …123456', 'an invisible name is no name')
  t.equal(intent('checkout.session.completed', { ...checkoutSession({ tenantId: TENANT }), id: 'cs_live_a1SecretPartOfTheSessionId42' }).create?.name, 'Checkout …onId42', 'no name: the end of the session id, never all of it')
})

t.test('checkout: what counts as paid', async (t) => {
  t.equal(intent('checkout.session.completed', checkoutSession({ tenantId: TENANT, paymentStatus: 'paid' })).change.billing, 'paid')
  t.equal(intent('checkout.session.completed', checkoutSession({ tenantId: TENANT, paymentStatus: 'no_payment_required' })).change.billing, 'paid', 'a 100 % coupon or a trial')
  const setup = intent('checkout.session.completed', { ...checkoutSession({ paymentStatus: 'no_payment_required', subscription: null }), mode: 'setup' })
  t.equal(setup.change.billing, undefined, 'a setup-mode session (saving a card) pays for nothing')
  t.equal(setup.create, undefined, 'nor becomes a tenant')
  t.equal(intent('checkout.session.completed', checkoutSession({ tenantId: TENANT, paymentStatus: 'unpaid' })).change.billing, undefined, 'a delayed payment method: not yet')
  const later = intent('checkout.session.async_payment_succeeded', checkoutSession({ tenantId: TENANT, paymentStatus: 'paid', plan: 'solo' }))
  t.equal(later.change.billing, 'paid')
  t.same(later.create, { name: later.create?.name, email: later.create?.email, plan: 'solo' }, 'it may create the tenant too')
  // A one-off session made elsewhere (no tenant id, no subscription) with a delayed payment:
  // only the event that proves the payment adopts it, so one tenant comes of it.
  const oneOff = { ...checkoutSession({ tenantId: null, subscription: null, paymentStatus: 'unpaid' }), mode: 'payment' }
  t.equal(intent('checkout.session.completed', oneOff).create, undefined, 'its unpaid completion adopts nothing')
  t.type(intent('checkout.session.completed', { ...oneOff, payment_status: 'paid' }).create, 'object', 'a paid one is adopted')
  t.type(intent('checkout.session.async_payment_succeeded', { ...oneOff, payment_status: 'paid' }).create, 'object', 'and so is its payment')
  t.type(intent('checkout.session.completed', { ...oneOff, subscription: 'sub_found_again' }).create, 'object', 'an unpaid one a later event finds again by its subscription')
  t.type(intent('checkout.session.completed', checkoutSession({ tenantId: TENANT, subscription: null, paymentStatus: 'unpaid' })).create, 'object', 'or by our tenant id')
  for (const type of ['checkout.session.async_payment_failed', 'checkout.session.expired'] as const) {
    const i = intent(type, checkoutSession({ tenantId: TENANT, paymentStatus: 'unpaid' }))
    t.equal(i.change.billing, 'canceled', type)
    t.equal(i.change.onlyIfNeverPaid, true, `${type}: only if never paid`)
    t.type(i.change.reason, 'string')
    t.equal(i.create, undefined, `${type} never creates a tenant`)
  }
})

t.test('references given as ids or as expanded objects', async (t) => {
  const expanded = { ...checkoutSession({ tenantId: TENANT }), subscription: { id: 'sub_obj', object: 'subscription' }, customer: { id: 'cus_obj', object: 'customer' } }
  const i = intent('checkout.session.completed', expanded)
  t.equal(i.subscriptionId, 'sub_obj')
  t.equal(i.change.customerId, 'cus_obj')
  const inv = { ...invoice({ subscription: 'x', shape: 'legacy' }), subscription: { id: 'sub_inv' }, customer: { id: 'cus_inv' } }
  t.equal(intent('invoice.paid', inv).subscriptionId, 'sub_inv')
  t.equal(intent('invoice.paid', inv).change.customerId, 'cus_inv')
})

t.test('ids that are not Stripe-shaped are no ids (NUL, lone surrogates, too long, not strings)', async (t) => {
  for (const bad of ['sub_\u0000x', 'sub_\ud800', 'sub_ x', '', 'x'.repeat(256), 42, { id: 'sub_\u0000' }, { id: 7 }, ['sub_1']]) {
    const session = { ...checkoutSession({ tenantId: TENANT }), subscription: bad, customer: bad }
    const i = intent('checkout.session.completed', session)
    t.equal(i.subscriptionId, undefined, `subscription ${JSON.stringify(bad)}`)
    t.equal(i.change.customerId, undefined, `customer ${JSON.stringify(bad)}`)
  }
  t.equal(intent('checkout.session.completed', { ...checkoutSession({ tenantId: TENANT }), subscription: 'sub_' + 'x'.repeat(251) }).subscriptionId?.length, 255, '255 characters is still an id')
})

t.test('a tenant id in metadata is one of ours only as a whole: 32 lowercase hex digits', async (t) => {
  t.equal(intent('checkout.session.completed', checkoutSession({ tenantId: TENANT })).tenantId, TENANT)
  // We write the ids, in lowercase: another spelling is someone else's.
  for (const bad of [TENANT + '0', TENANT + 'x', TENANT.slice(1), TENANT.toUpperCase()]) {
    t.equal(intent('checkout.session.completed', checkoutSession({ tenantId: bad })).tenantId, undefined, `checkout: ${bad}`)
    t.equal(intent('customer.subscription.updated', subscription({ tenantId: bad, status: 'active' })).tenantId, undefined, `subscription: ${bad}`)
    t.equal(intent('invoice.paid', invoice({ subscription: 'sub_1', tenantId: bad })).tenantId, undefined, `invoice: ${bad}`)
  }
})

t.test('an invoice names its tenant in its subscription details, or else in its own metadata', async (t) => {
  for (const shape of ['basil', 'legacy'] as const) {
    const own = { ...invoice({ subscription: 'sub_1', shape }), metadata: { tenant_id: TENANT } }
    t.equal(intent('invoice.paid', own).tenantId, TENANT, `${shape}: its own metadata only`)
    t.equal(intent('invoice.payment_failed', own).tenantId, TENANT, `${shape}: a failed one too`)
    const both = { ...invoice({ subscription: 'sub_1', shape, tenantId: TENANT }), metadata: { tenant_id: 'f'.repeat(32) } }
    t.equal(intent('invoice.paid', both).tenantId, TENANT, `${shape}: the subscription's first`)
  }
})

t.test('the buyer\'s address: at most 254 characters, with an @ in it', async (t) => {
  const longest = `${'a'.repeat(64)}@${'b'.repeat(184)}.test`
  t.equal(longest.length, 254)
  for (const [email, kept] of [[longest, true], [`a${longest}`, false], ['no-at-sign', false]] as const) {
    const what = `${email.length} characters${email.includes('@') ? '' : ', no @'}`
    const checkout = intent('checkout.session.completed', { ...checkoutSession({ tenantId: TENANT }), customer_email: email })
    t.equal(checkout.email, kept ? email : undefined, `checkout: ${what}`)
    t.equal(checkout.create?.email, kept ? email : '', `checkout, the tenant it makes: ${what}`)
    t.equal(intent('invoice.paid', { ...invoice({ subscription: 'sub_1', tenantId: TENANT }), customer_email: email }).email, kept ? email : undefined, `invoice: ${what}`)
  }
})

t.test('an invoice carrying both shapes takes the subscription from the one its metadata came from', async (t) => {
  const both = { ...invoice({ subscription: 'sub_new', tenantId: TENANT, shape: 'basil' }), subscription: 'sub_old' }
  const i = intent('invoice.paid', both)
  t.equal(i.tenantId, TENANT)
  t.equal(i.subscriptionId, 'sub_new')
})

t.test('subscription statuses', async (t) => {
  const cases: Array<[string, string | undefined]> = [
    ['active', 'paid'], ['trialing', 'paid'], ['past_due', 'past_due'], ['unpaid', 'past_due'],
    ['canceled', 'canceled'], ['incomplete_expired', 'canceled'], ['incomplete', undefined], ['paused', 'past_due']
  ]
  for (const [status, billing] of cases) {
    t.equal(intent('customer.subscription.updated', subscription({ tenantId: TENANT, status })).change.billing, billing, status)
  }
  for (const odd of [{ toString: 1 }, ['active'], 1, null, true]) {
    t.equal(intent('customer.subscription.updated', { ...subscription({ tenantId: TENANT, status: 'active' }), status: odd }).change.billing, undefined, `status ${JSON.stringify(odd)} says nothing`)
  }
  const deleted = intent('customer.subscription.deleted', subscription({ tenantId: TENANT, status: 'active' }))
  t.equal(deleted.change.billing, 'canceled', 'deleted cancels whatever the status field says')
})

t.test('the plan follows the price: lookup key, then the STRIPE_PRICE_* reverse map', async (t) => {
  const prices = (id: string): string | undefined => (id === 'price_pro_1' ? 'pro' : undefined)
  t.equal(planOfSubscription(subscription({ status: 'active', lookupKey: 'ctfhive_solo_monthly' }), prices), 'solo')
  t.equal(planOfSubscription(subscription({ status: 'active', lookupKey: null, priceId: 'price_pro_1' }), prices), 'pro')
  t.equal(planOfSubscription(subscription({ status: 'active', lookupKey: 'someone_else', priceId: 'price_other' }), prices), undefined, 'an unknown price changes no plan')
  t.equal(planOfSubscription({ items: { data: [] } }, prices), undefined, 'no items')
  // The service warns of those, naming the prices (a price made by hand, say).
  t.same(intent('customer.subscription.updated', subscription({ tenantId: TENANT, status: 'active', lookupKey: 'someone_else', priceId: 'price_other' })).foreignPrices, ['price_other'])
  t.equal(intent('customer.subscription.updated', subscription({ tenantId: TENANT, status: 'active', lookupKey: 'ctfhive_solo_monthly' })).foreignPrices, undefined, 'none when a price is ours')
  t.equal(intent('customer.subscription.updated', { ...subscription({ tenantId: TENANT, status: 'active' }), items: { data: [] } }).foreignPrices, undefined, 'none when there are no prices')
})

t.test('a subscription of several items: the plan is the first item whose price is ours', async (t) => {
  const prices = (id: string): string | undefined => (id === 'price_pro_1' ? 'pro' : undefined)
  const base = subscription({ status: 'active', lookupKey: 'ctfhive_pro_monthly' })
  const planItem = base.items.data[0]
  const addOn = { ...planItem, id: 'si_addon', price: { ...planItem.price, id: 'price_addon_seats', lookup_key: null } }
  const withItems = (data: unknown[]): Record<string, any> => ({ ...base, items: { ...base.items, data } })
  t.equal(planOfSubscription(withItems([addOn, planItem]), prices), 'pro', 'an add-on first')
  t.equal(planOfSubscription(withItems([planItem, addOn]), prices), 'pro', 'an add-on second')
  const byId = { ...planItem, price: { ...planItem.price, id: 'price_pro_1', lookup_key: null } }
  t.equal(planOfSubscription(withItems([addOn, byId]), prices), 'pro', 'an add-on first, the plan by the reverse map')
  t.equal(planOfSubscription(withItems([addOn]), prices), undefined, 'an add-on only changes no plan')
  t.equal(planOfSubscription(withItems([null, 'si_1', 7, [planItem], { price: null }, planItem]), prices), 'pro', 'items that are not objects are passed over')
  t.equal(planOfSubscription({ ...withItems([addOn]), plan: { id: 'price_pro_1', lookup_key: null } }, prices), 'pro', 'none of ours: the legacy `plan`')
  t.equal(planOfSubscription({ ...base, items: { data: 'nope' } }, prices), undefined, 'items.data not a list')
})

t.test('the mode of a Stripe key, and events from the other one', async (t) => {
  for (const [key, mode] of [['sk_live_abc', 'live'], ['rk_live_abc', 'live'], ['sk_test_abc', 'test'], ['rk_test_abc', 'test'], ['', undefined], ['pk_live_abc', undefined], ['sk_abc', undefined], ['xsk_live_abc', undefined]] as const) {
    t.equal(stripeKeyMode(key), mode, JSON.stringify(key))
  }
  const event = (livemode: unknown): StripeEvent => ({ ...makeEvent('invoice.paid', {}), livemode })
  t.ok(otherModeThanKey(event(false), 'live'), 'a test event, a live key')
  t.ok(otherModeThanKey(event(true), 'test'), 'a live event, a test key')
  t.notOk(otherModeThanKey(event(true), 'live'))
  t.notOk(otherModeThanKey(event(false), 'test'))
  for (const odd of [undefined, null, 'false', 0, 1]) t.notOk(otherModeThanKey(event(odd), 'live'), `livemode ${JSON.stringify(odd)} says nothing`)
  t.notOk(otherModeThanKey(event(false), undefined), 'no key: any mode applies')
})

t.test('isStripeEvent', async (t) => {
  t.ok(isStripeEvent(makeEvent('invoice.paid', {})))
  t.notOk(isStripeEvent({ ...makeEvent('invoice.paid', {}), created: 2 ** 60 }), 'a created past what an integer column holds exactly')
  t.notOk(isStripeEvent({ ...makeEvent('invoice.paid', {}), created: -1 }))
  t.notOk(isStripeEvent({ ...makeEvent('invoice.paid', {}), id: 'x'.repeat(256) }))
  for (const id of ['evt_\u0000', 'evt_\ud800', 'evt_\udfff', 'evt x', 'évt_1', '']) t.notOk(isStripeEvent({ ...makeEvent('invoice.paid', {}), id }), JSON.stringify(id))
})

t.test('storablePayload: the customer\'s identity beyond the email is not kept; a body without it is kept as received', async (t) => {
  const session = makeEvent('checkout.session.completed', {
    ...checkoutSession({ tenantId: 'a'.repeat(32), plan: 'solo', name: 'Jane CTF', email: 'jane@example.eu' }),
    customer_details: { email: 'jane@example.eu', name: 'Jane Doe', phone: '+49 30 1234567', address: { line1: 'Musterstrasse 1', city: 'Berlin', country: 'DE' }, tax_exempt: 'none', tax_ids: [{ type: 'eu_vat', value: 'DE123456789' }], business_name: null, individual_name: null },
    shipping_details: { name: 'Jane Doe', address: { line1: 'Musterstrasse 1' } },
    collected_information: { shipping_details: { name: 'Jane Doe' } },
    custom_fields: [{ key: 'team', text: { value: 'Jane\'s team' } }]
  }) as unknown as StripeEvent
  const body = JSON.stringify(session)
  const stored = storablePayload(session, body)
  t.notMatch(stored, /Jane Doe|\+49|Musterstrasse|DE123456789|Jane's team/, 'name, phone, address, tax id, custom fields gone')
  const back = JSON.parse(stored)
  t.same(back.data.object.customer_details, { email: 'jane@example.eu' }, 'the email the rules read is kept')
  t.same({ ...back, data: { object: { ...back.data.object, customer_details: undefined, shipping_details: undefined, collected_information: undefined, custom_fields: undefined } } },
    { ...session, data: { object: { ...session.data.object, customer_details: undefined, shipping_details: undefined, collected_information: undefined, custom_fields: undefined } } }, 'the rest as it was')
  t.same(intentForEvent(back, () => undefined), intentForEvent(session as unknown as StripeEvent & { type: SupportedEvent }, () => undefined), 'the rules read the same from it')

  const inv = makeEvent('invoice.paid', { ...invoice({ subscription: 'sub_1' }), customer_name: 'Jane Doe', customer_phone: '+49 30 1', customer_address: { line1: 'Musterstrasse 1' }, customer_tax_ids: [{ value: 'DE123456789' }], customer_shipping: { name: 'Jane Doe' } }) as unknown as StripeEvent
  const invStored = JSON.parse(storablePayload(inv, JSON.stringify(inv)))
  t.same([invStored.data.object.customer_name, invStored.data.object.customer_phone, invStored.data.object.customer_address, invStored.data.object.customer_tax_ids, invStored.data.object.customer_shipping], [null, null, null, null, null])
  t.equal(invStored.data.object.customer_email, inv.data.object.customer_email)

  const plain = makeEvent('customer.subscription.updated', subscription({ status: 'active' })) as unknown as StripeEvent
  const plainBody = `${JSON.stringify(plain, null, 1)}\n`
  t.equal(storablePayload(plain, plainBody), plainBody, 'nothing to remove: the body byte for byte')
  const nothingExtra = makeEvent('checkout.session.expired', { ...checkoutSession({}), customer_details: { email: 'a@b.test', name: null, phone: null, tax_exempt: 'none', tax_ids: [], address: { line1: null, city: null } }, custom_fields: [], collected_information: null }) as unknown as StripeEvent
  const nothingBody = JSON.stringify(nothingExtra)
  t.equal(storablePayload(nothingExtra, nothingBody), nothingBody, 'details holding only an email (and nulls, empty lists, an empty address) are kept as they are')
})
