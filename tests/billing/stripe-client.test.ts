// The Stripe client on the wire, against a local fake Stripe: encoding, headers, retries,
// idempotency across retries, errors, paging and backoff. The last part checks the fake itself
// behaves like Stripe where our code depends on it.
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { inspect } from 'node:util'
import t from 'tap'
import type { Test } from 'tap'
import fc from 'fast-check'
import Stripe from 'stripe'
import { Agent, request as undiciRequest } from 'undici'
import { StripeClient, StripeError, encodeForm } from '../../api/billing/stripe-client.ts'
import type { StripeClientOptions } from '../../api/billing/stripe-client.ts'
import { decodeForm, startFakeStripe } from '../helpers/fake-stripe.ts'
import type { FakeStripe, FakeStripeOptions } from '../helpers/fake-stripe.ts'

const KEY = 'sk_test_51CtfHiveClientTestKey0123456789'
const VERSION = '2025-09-30.clover'
const CHECKOUT = 'POST /v1/checkout/sessions'

async function setup (t: Test, opts: Partial<StripeClientOptions> = {}, fakeOpts: FakeStripeOptions = {}) {
  const fake = await startFakeStripe(t, fakeOpts)
  const agent = new Agent({ keepAliveTimeout: 1000 })
  t.teardown(() => agent.destroy())
  const delays: number[] = []
  const client = new StripeClient({
    apiKey: KEY,
    apiVersion: VERSION,
    baseUrl: fake.url,
    dispatcher: agent,
    sleep: async (ms) => { delays.push(ms) },
    ...opts
  })
  return { fake, client, delays, agent }
}

function seedPrice (fake: FakeStripe, extra: Record<string, unknown> = {}) {
  return fake.addPrice({ currency: 'usd', unit_amount: 900, recurring: { interval: 'month' }, lookup_key: 'solo_monthly', ...extra })
}

function checkoutParams (price: string) {
  return {
    mode: 'subscription',
    line_items: [{ price, quantity: 1 }],
    client_reference_id: 'a'.repeat(32),
    metadata: { plan: 'solo', tenant_id: 'a'.repeat(32) },
    subscription_data: { metadata: { tenant_id: 'a'.repeat(32) } },
    success_url: 'https://ctfhive.test/billing/success?session_id={CHECKOUT_SESSION_ID}',
    cancel_url: 'https://ctfhive.test/pricing'
  }
}

async function rejection (p: Promise<unknown>): Promise<StripeError> {
  try {
    await p
  } catch (err) {
    if (err instanceof StripeError) return err
    throw err
  }
  throw new Error('expected a StripeError')
}

const stripeBody = (type: string, message: string, extra: Record<string, unknown> = {}) => ({ error: { type, message, ...extra } })

t.test('encodeForm', async (t) => {
  t.equal(encodeForm({}), '')
  t.equal(encodeForm({ a: 'x', b: 1, c: 1.5, d: true, e: false, f: null, g: undefined, h: -0 }), 'a=x&b=1&c=1.5&d=true&e=false&f=&h=0')
  t.equal(encodeForm({ a: { b: { c: 'v' } } }), 'a[b][c]=v')
  t.equal(encodeForm({ name: 'a\ud800b', flag: '🚩' }), 'name=a%EF%BF%BDb&flag=%F0%9F%9A%A9', 'a lone surrogate is sent as U+FFFD, not thrown on; a pair is one character')
  t.equal(encodeForm({ line_items: [{ price: 'price_1', quantity: 2 }, { price: 'price_2', quantity: 1 }] }),
    'line_items[0][price]=price_1&line_items[0][quantity]=2&line_items[1][price]=price_2&line_items[1][quantity]=1')
  t.equal(encodeForm({ expand: ['subscription', 'line_items'] }), 'expand[0]=subscription&expand[1]=line_items')
  t.equal(encodeForm({ a: [[1, 2], [3]] }), 'a[0][0]=1&a[0][1]=2&a[1][0]=3')
  t.equal(encodeForm({ a: ['x', undefined, 'z'] }), 'a[0]=x&a[2]=z', 'undefined items keep the other indices')
  t.equal(encodeForm({ empty: [], none: {}, x: 'y' }), 'x=y', 'empty arrays and objects send nothing')
  t.equal(encodeForm({ metadata: { name: null } }), 'metadata[name]=', 'null unsets a nested key')
  t.equal(encodeForm({ at: new Date('2026-01-02T03:04:05.999Z') }), 'at=1767323045')
  t.equal(encodeForm({ s: "a b+c/d?e=f&g!'()*~-_.#%" }), 's=a%20b%2Bc%2Fd%3Fe%3Df%26g%21%27%28%29%2A~-_.%23%25')
  t.equal(encodeForm({ s: 'é€😀\n' }), 's=%C3%A9%E2%82%AC%F0%9F%98%80%0A')
  t.equal(encodeForm({ 'meta data': { 'ké y&': 'v' } }), 'meta%20data[k%C3%A9%20y%26]=v', 'keys are escaped, brackets kept readable')
  t.equal(encodeForm({ n: 10n }), 'n=10')
})

// Properties throw from inside the predicate so fast-check shrinks to the smallest failure.
// Keys without brackets and values that are strings survive the trip through the fake's decoder.
const safeKey = fc.tuple(fc.constantFrom(...'abcz_é'), fc.string({ maxLength: 6, unit: fc.constantFrom(...'ab_-. é€😀&=+%/?#!\'()*~0') })).map(([a, b]) => a + b)
const tree = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, fc.string({ unit: 'grapheme', maxLength: 8 }), tie('object'), tie('array')),
  object: fc.dictionary(safeKey, tie('value'), { minKeys: 1, maxKeys: 4, noNullPrototype: true }),
  array: fc.array(tie('value'), { minLength: 1, maxLength: 3 })
}))

t.test('decodeForm inverts encodeForm (property)', async (t) => {
  fc.assert(fc.property(tree.object as fc.Arbitrary<Record<string, unknown>>, (params) => {
    assert.deepStrictEqual(decodeForm(encodeForm(params)), params)
  }), { numRuns: 300 })
  t.pass('300 random parameter trees survived the round trip')
})

t.test('the body is byte for byte what stripe-node sends (property)', async (t) => {
  const { fake, client } = await setup(t, { maxRetries: 0 })
  const url = new URL(fake.url)
  const sdk = new Stripe(KEY, { host: url.hostname, port: Number(url.port), protocol: 'http', maxNetworkRetries: 0 })
  const scalar = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 8 }), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(), fc.constant(null), fc.constant(undefined), fc.date({ noInvalidDate: true }))
  const any = fc.letrec((tie) => ({
    value: fc.oneof({ depthSize: 'small' }, scalar, tie('object'), tie('array')),
    object: fc.dictionary(safeKey, tie('value'), { maxKeys: 4, noNullPrototype: true }),
    array: fc.array(tie('value'), { maxLength: 3 })
  }))
  await fc.assert(fc.asyncProperty(any.object as fc.Arbitrary<Record<string, unknown>>, async (params) => {
    await sdk.rawRequest('POST', '/v1/echo', params).catch(() => {})
    await client.request('POST', '/v1/echo', params).catch(() => {})
    const [theirs, ours] = fake.requests.slice(-2)
    assert.equal(ours?.path, '/v1/echo')
    assert.equal(theirs?.path, '/v1/echo')
    assert.equal(ours?.body, theirs?.body)
  }), { numRuns: 60 })
  t.equal(fake.requests.length, 120)
})

t.test('a checkout session on the wire: exact body, headers, parsed form', async (t) => {
  const { fake, client } = await setup(t)
  const price = seedPrice(fake)
  const params = {
    ...checkoutParams(price.id),
    metadata: { plan: 'solo', tenant_id: 'abc', name: 'Café & "Hack" 1+1=2' },
    customer_email: 'buyer@example.com',
    allow_promotion_codes: false,
    locale: null,
    billing_address_collection: undefined,
    expand: ['line_items']
  }
  const session = await client.createCheckoutSession(params, 'ctfhive-checkout-abc')
  const [req] = fake.requests
  t.equal(fake.requests.length, 1)
  t.equal(req?.method, 'POST')
  t.equal(req?.path, '/v1/checkout/sessions')
  t.equal(req?.body, 'mode=subscription' +
    `&line_items[0][price]=${price.id}&line_items[0][quantity]=1` +
    `&client_reference_id=${'a'.repeat(32)}` +
    '&metadata[plan]=solo&metadata[tenant_id]=abc&metadata[name]=Caf%C3%A9%20%26%20%22Hack%22%201%2B1%3D2' +
    `&subscription_data[metadata][tenant_id]=${'a'.repeat(32)}` +
    '&success_url=https%3A%2F%2Fctfhive.test%2Fbilling%2Fsuccess%3Fsession_id%3D%7BCHECKOUT_SESSION_ID%7D' +
    '&cancel_url=https%3A%2F%2Fctfhive.test%2Fpricing' +
    '&customer_email=buyer%40example.com&allow_promotion_codes=false&locale=&expand[0]=line_items')
  t.equal(req?.headers.authorization, `Bearer ${KEY}`)
  t.equal(req?.headers['stripe-version'], VERSION)
  t.equal(req?.headers['content-type'], 'application/x-www-form-urlencoded')
  t.equal(req?.headers['idempotency-key'], 'ctfhive-checkout-abc')
  t.equal(req?.headers.accept, 'application/json')
  t.strictSame(req?.form.metadata, params.metadata)
  t.strictSame(req?.form.line_items, [{ price: price.id, quantity: '1' }])
  t.match(session, {
    id: /^cs_test_\w+$/,
    object: 'checkout.session',
    url: `https://checkout.stripe.com/c/pay/${session.id}`,
    mode: 'subscription',
    client_reference_id: 'a'.repeat(32),
    metadata: params.metadata,
    customer_email: 'buyer@example.com',
    payment_status: 'unpaid',
    status: 'open',
    subscription: null,
    locale: null,
    line_items: { object: 'list', data: [{ price: { id: price.id }, quantity: 1 }] }
  })
  t.equal(fake.state.checkoutSessions.size, 1)
})

t.test('GET sends params in the query string, with no body and no idempotency key', async (t) => {
  const { fake, client } = await setup(t)
  const price = seedPrice(fake)
  const created = await client.createCheckoutSession(checkoutParams(price.id), 'k1')
  const got = await client.retrieveCheckoutSession(created.id)
  t.strictSame(got, created)
  const list = await client.request('GET', '/v1/prices', { lookup_keys: ['solo_monthly', 'team plan'], active: true, expand: ['data.product'] })
  const req = fake.requests.at(-1)
  t.equal(req?.rawQuery, 'lookup_keys[0]=solo_monthly&lookup_keys[1]=team%20plan&active=true&expand[0]=data.product')
  t.equal(req?.body, '')
  t.equal(req?.headers['idempotency-key'], undefined)
  t.equal(req?.headers['content-type'], undefined)
  t.equal(req?.headers.authorization, `Bearer ${KEY}`)
  t.equal(req?.headers['stripe-version'], VERSION)
  t.match(list.data, [{ id: price.id, product: { object: 'product' } }])
  await client.request('GET', '/v1/prices?active=true', { limit: 1 })
  t.equal(fake.requests.at(-1)?.rawQuery, 'active=true&limit=1', 'params join an existing query string')
  await client.request('GET', '/v1/prices')
  t.equal(fake.requests.at(-1)?.rawQuery, '', 'no params, no query string')
})

t.test('DELETE sends no idempotency key', async (t) => {
  const { fake, client } = await setup(t)
  const we = await client.request('POST', '/v1/webhook_endpoints', { url: 'https://ctfhive.test/billing/webhook', enabled_events: ['checkout.session.completed'] })
  const deleted = await client.request('DELETE', `/v1/webhook_endpoints/${we.id}`)
  t.strictSame(deleted, { id: we.id, object: 'webhook_endpoint', deleted: true })
  t.equal(fake.requests.at(-1)?.headers['idempotency-key'], undefined)
  t.equal(fake.state.webhookEndpoints.size, 0)
})

t.test('every POST gets a fresh generated idempotency key unless the caller gives one', async (t) => {
  const { fake, client } = await setup(t)
  await client.request('POST', '/v1/products', { name: 'A' })
  await client.request('POST', '/v1/products', { name: 'B' })
  const [a, b] = fake.requests.map((r) => r.headers['idempotency-key'])
  t.match(a, /^ctfhive-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  t.match(b, /^ctfhive-/)
  t.not(a, b)
  await t.rejects(client.request('POST', '/v1/products', { name: 'C' }, { idempotencyKey: 'bad\nkey' }), TypeError)
  await t.rejects(client.request('POST', '/v1/products', { name: 'C' }, { idempotencyKey: 'k'.repeat(256) }), TypeError)
  await t.rejects(client.request('POST', '/v1/products', { name: 'C' }, { idempotencyKey: '' }), TypeError)
  t.equal(fake.requests.length, 2, 'an invalid key never reaches the wire')
})

t.test('retried statuses: 5xx and 409 retry with the same key and body', async (t) => {
  for (const status of [500, 502, 503, 409]) {
    await t.test(`HTTP ${status}`, async (t) => {
      const { fake, client, delays } = await setup(t)
      const price = seedPrice(fake)
      fake.queueReply(CHECKOUT, { status, body: stripeBody('api_error', 'try again') })
      const session = await client.createCheckoutSession(checkoutParams(price.id), 'key-1')
      const reqs = fake.requestsTo(CHECKOUT)
      t.equal(reqs.length, 2)
      t.equal(reqs[0]?.headers['idempotency-key'], 'key-1')
      t.equal(reqs[1]?.headers['idempotency-key'], 'key-1')
      t.equal(reqs[1]?.body, reqs[0]?.body)
      t.equal(delays.length, 1)
      t.equal(fake.state.checkoutSessions.size, 1)
      t.ok(fake.state.checkoutSessions.has(session.id))
    })
  }
  await t.test('a generated key is also kept across retries', async (t) => {
    const { fake, client } = await setup(t)
    fake.queueReply('POST /v1/products', { status: 503, body: stripeBody('api_error', 'busy') })
    await client.request('POST', '/v1/products', { name: 'A' })
    const [a, b] = fake.requests.map((r) => r.headers['idempotency-key'])
    t.match(a, /^ctfhive-/)
    t.equal(a, b)
  })
  await t.test('GET is retried too', async (t) => {
    const { fake, client } = await setup(t)
    const prod = fake.addProduct({ name: 'A' })
    fake.queueReply('GET /v1/products/*', { status: 500, body: stripeBody('api_error', 'oops') })
    const got = await client.request('GET', `/v1/products/${prod.id}`)
    t.equal(got.id, prod.id)
    t.equal(fake.requests.length, 2)
  })
})

t.test('statuses that are not retried', async (t) => {
  const cases: Array<[number, string, Record<string, string>]> = [
    [400, 'invalid_request_error', {}],
    [402, 'card_error', {}],
    [404, 'invalid_request_error', {}],
    [429, 'invalid_request_error', {}],
    [500, 'api_error', { 'stripe-should-retry': 'false' }],
    [503, 'api_error', { 'stripe-should-retry': 'false' }],
    [409, 'idempotency_error', { 'stripe-should-retry': 'false' }]
  ]
  for (const [status, type, headers] of cases) {
    await t.test(`HTTP ${status} ${JSON.stringify(headers)}`, async (t) => {
      const { fake, client, delays } = await setup(t)
      fake.queueReply('POST /v1/products', { status, body: stripeBody(type, 'nope'), headers })
      const err = await rejection(client.request('POST', '/v1/products', { name: 'A' }))
      t.equal(err.statusCode, status)
      t.equal(err.type, type)
      t.equal(err.retryable, false)
      t.equal(fake.requests.length, 1)
      t.strictSame(delays, [])
      t.equal(fake.state.products.size, 0)
    })
  }
})

t.test('Stripe-Should-Retry: true makes any status retried, 429 included', async (t) => {
  for (const status of [400, 429]) {
    await t.test(`HTTP ${status}`, async (t) => {
      const { fake, client, delays } = await setup(t)
      fake.queueReply('POST /v1/products', { status, body: stripeBody('invalid_request_error', 'lock timeout'), headers: { 'stripe-should-retry': 'true' } })
      const prod = await client.request('POST', '/v1/products', { name: 'A' })
      t.equal(prod.name, 'A')
      t.equal(fake.requests.length, 2)
      t.equal(delays.length, 1)
    })
  }
})

t.test('retries stop after maxRetries and the last error is thrown', async (t) => {
  await t.test('default: 2 retries', async (t) => {
    const { fake, client, delays } = await setup(t)
    fake.queueReply('POST /v1/products', { status: 500, body: stripeBody('api_error', 'still broken') }, { times: 3 })
    const err = await rejection(client.request('POST', '/v1/products', { name: 'A' }))
    t.match(err, { statusCode: 500, type: 'api_error', message: 'still broken', retryable: true })
    t.equal(fake.requests.length, 3)
    t.equal(delays.length, 2)
    t.equal(new Set(fake.requests.map((r) => r.headers['idempotency-key'])).size, 1)
  })
  await t.test('maxRetries 0', async (t) => {
    const { fake, client, delays } = await setup(t, { maxRetries: 0 })
    fake.queueReply('POST /v1/products', { status: 500, body: stripeBody('api_error', 'broken') })
    t.match(await rejection(client.request('POST', '/v1/products', { name: 'A' })), { statusCode: 500, retryable: true })
    t.equal(fake.requests.length, 1)
    t.strictSame(delays, [])
  })
})

t.test('a reply lost after Stripe created the session is retried into a replay', async (t) => {
  const { fake, client } = await setup(t)
  const price = seedPrice(fake)
  fake.dropConnection(CHECKOUT)
  const session = await client.createCheckoutSession(checkoutParams(price.id), 'ctfhive-checkout-lost')
  const reqs = fake.requestsTo(CHECKOUT)
  t.equal(reqs.length, 2)
  t.equal(reqs[0]?.status, null, 'the first reply never left')
  t.equal(reqs[1]?.replayed, true, 'the retry was answered from the saved response')
  t.equal(reqs[0]?.headers['idempotency-key'], 'ctfhive-checkout-lost')
  t.equal(reqs[1]?.headers['idempotency-key'], 'ctfhive-checkout-lost')
  t.equal(fake.state.checkoutSessions.size, 1, 'exactly one session exists')
  t.equal([...fake.state.checkoutSessions.keys()][0], session.id)
})

t.test('a request lost before Stripe saw it is simply sent again', async (t) => {
  const { fake, client } = await setup(t)
  const price = seedPrice(fake)
  fake.dropConnection(CHECKOUT, { afterEffect: false })
  const session = await client.createCheckoutSession(checkoutParams(price.id), 'k')
  const reqs = fake.requestsTo(CHECKOUT)
  t.equal(reqs.length, 2)
  t.equal(reqs[1]?.replayed, false)
  t.equal(fake.state.checkoutSessions.size, 1)
  t.ok(fake.state.checkoutSessions.has(session.id))
})

t.test('a lost reply with retries off is an api_connection_error (the session exists anyway)', async (t) => {
  const { fake, client } = await setup(t, { maxRetries: 0 })
  const price = seedPrice(fake)
  fake.dropConnection(CHECKOUT)
  const err = await rejection(client.createCheckoutSession(checkoutParams(price.id), 'k'))
  t.match(err, { type: 'api_connection_error', statusCode: null, retryable: true, code: null, requestId: null, message: /^Could not reach Stripe: / })
  t.ok(err.cause, 'the network error is kept as the cause')
  t.equal(fake.state.checkoutSessions.size, 1)
})

t.test('timeouts are retried, then reported as api_connection_error', async (t) => {
  await t.test('every attempt times out', async (t) => {
    // The fake shares this process: a timeout long enough that a stalled machine still lets
    // every attempt reach it before the client gives up, far below the 30 s the fake holds.
    const { fake, client, delays } = await setup(t, { timeoutMs: 1000 })
    const price = seedPrice(fake)
    fake.delayReply(CHECKOUT, 30_000, { times: 3 })
    const err = await rejection(client.createCheckoutSession(checkoutParams(price.id), 'slow-key'))
    t.match(err, { name: 'StripeError', type: 'api_connection_error', statusCode: null, retryable: true, message: 'Request to Stripe timed out after 1000 ms' })
    const reqs = fake.requestsTo(CHECKOUT)
    t.equal(reqs.length, 3)
    t.ok(reqs.every((r) => r.headers['idempotency-key'] === 'slow-key'))
    t.equal(delays.length, 2)
    t.equal(fake.state.checkoutSessions.size, 1, 'the slow attempts were all one request to Stripe')
  })
  await t.test('a slow first reply, then the replay', async (t) => {
    const { fake, client } = await setup(t, { timeoutMs: 1000 })
    const price = seedPrice(fake)
    fake.delayReply(CHECKOUT, 30_000)
    const session = await client.createCheckoutSession(checkoutParams(price.id), 'k')
    t.equal(fake.requestsTo(CHECKOUT)[1]?.replayed, true)
    t.equal(fake.state.checkoutSessions.size, 1)
    t.ok(fake.state.checkoutSessions.has(session.id))
  })
})

t.test('a key still in use at Stripe (an attempt timed out while Stripe worked on it) is asked again without spending a retry, for up to one more timeout', async (t) => {
  const inUse = { status: 409, body: { error: { type: 'idempotency_error', code: 'idempotency_key_in_use', message: 'There is currently another in-progress request using this Stripe-Idempotency-Key.' } } }
  await t.test('the replay comes', async (t) => {
    // The waits (0.5–1, 1–2, 2–4 s) stay within the 10 s the app gives an attempt.
    const { fake, client, delays } = await setup(t, { timeoutMs: 10_000, maxRetries: 1 })
    const price = seedPrice(fake)
    fake.dropConnection(CHECKOUT, { afterEffect: true })
    fake.queueReply(CHECKOUT, inUse, { times: 3 })
    const session = await client.createCheckoutSession(checkoutParams(price.id), 'busy-key')
    const reqs = fake.requestsTo(CHECKOUT)
    t.equal(reqs.length, 5, 'the attempt whose answer was lost, three answered "in use", the replay')
    t.ok(reqs.every((r) => r.headers['idempotency-key'] === 'busy-key'))
    t.equal(reqs[4]?.replayed, true)
    t.ok(fake.state.checkoutSessions.has(session.id))
    t.equal(fake.state.checkoutSessions.size, 1)
    t.equal(delays.length, 4)
  })
  await t.test('bounded: past one more timeout of waiting, "in use" is an error like any', async (t) => {
    const { fake, client, delays } = await setup(t, { timeoutMs: 1000, maxRetries: 1 })
    const price = seedPrice(fake)
    fake.queueReply(CHECKOUT, inUse, { times: 100 })
    t.match(await rejection(client.createCheckoutSession(checkoutParams(price.id), 'stuck-key')), { statusCode: 409, code: 'idempotency_key_in_use' })
    const waited = delays.slice(0, -1).reduce((a, b) => a + b, 0)
    t.ok(waited >= 1000 && delays.length < 10, `waited ${delays.join(' + ')} ms in all`)
  })
})

t.test('connection refused is retried, then api_connection_error', async (t) => {
  const dead = await startFakeStripe()
  await dead.close()
  const delays: number[] = []
  const client = new StripeClient({ apiKey: KEY, apiVersion: VERSION, baseUrl: dead.url, sleep: async (ms) => { delays.push(ms) } })
  const err = await rejection(client.request('GET', '/v1/prices'))
  t.match(err, { type: 'api_connection_error', statusCode: null, retryable: true, message: /^Could not reach Stripe: / })
  t.notMatch(err.message, KEY)
  t.equal(delays.length, 2)
})

t.test('Stripe error bodies map to StripeError fields', async (t) => {
  const { fake, client } = await setup(t)
  fake.queueReply('POST /v1/products', {
    status: 402,
    body: stripeBody('card_error', 'Your card was declined.', { code: 'card_declined', param: 'card', decline_code: 'generic_decline', doc_url: 'https://stripe.com/docs/error-codes/card-declined' }),
    headers: { 'request-id': 'req_abc123' }
  })
  const err = await rejection(client.request('POST', '/v1/products', { name: 'A' }))
  t.ok(err instanceof Error)
  t.equal(err.name, 'StripeError')
  t.equal(err.message, 'Your card was declined.')
  t.equal(err.statusCode, 402)
  t.equal(err.type, 'card_error')
  t.equal(err.code, 'card_declined')
  t.equal(err.param, 'card')
  t.equal(err.requestId, 'req_abc123')
  t.equal(err.retryable, false)

  const missing = await rejection(client.retrieveCheckoutSession('cs_test_missing'))
  t.match(missing, { statusCode: 404, type: 'invalid_request_error', code: 'resource_missing', param: 'id', requestId: /^req_\w+$/, retryable: false, message: "No such checkout.session: 'cs_test_missing'" })

  const badPrice = await rejection(client.createCheckoutSession(checkoutParams('price_nope'), 'k'))
  t.match(badPrice, { statusCode: 400, code: 'resource_missing', param: 'line_items[0][price]', message: "No such price: 'price_nope'" })

  fake.queueReply('GET /v1/prices', { status: 400, body: { error: { message: 7, type: 3, code: 4, param: 5 } }, headers: { 'request-id': ['req_first', 'req_second'] } })
  const odd = await rejection(client.request('GET', '/v1/prices'))
  t.match(odd, { message: 'Stripe returned HTTP 400', type: 'api_error', code: null, param: null, requestId: 'req_first' })
})

t.test('error bodies that are not Stripe-shaped still make readable errors', async (t) => {
  const { fake, client } = await setup(t)
  fake.queueReply('GET /v1/prices', { status: 502, body: '<html>\n  <body>Bad gateway</body>\n</html>', headers: { 'stripe-should-retry': 'false' } })
  t.match(await rejection(client.request('GET', '/v1/prices')), { statusCode: 502, type: 'api_error', retryable: false, message: 'Stripe returned HTTP 502: <html> <body>Bad gateway</body> </html>' })
  fake.queueReply('GET /v1/prices', { status: 400, body: '' })
  t.match(await rejection(client.request('GET', '/v1/prices')), { message: 'Stripe returned HTTP 400: (empty body)' })
  fake.queueReply('GET /v1/prices', { status: 400, body: 'x'.repeat(500) })
  t.equal((await rejection(client.request('GET', '/v1/prices'))).message, `Stripe returned HTTP 400: ${'x'.repeat(200)}…`)
  fake.queueReply('GET /v1/prices', { status: 400, body: { message: 'no error key' } })
  t.match(await rejection(client.request('GET', '/v1/prices')), { type: 'api_error', message: 'Stripe returned HTTP 400: {"message":"no error key"}' })
  fake.queueReply('GET /v1/prices', { status: 400, body: { error: 'flat' } })
  t.match(await rejection(client.request('GET', '/v1/prices')), { message: 'Stripe returned HTTP 400: {"error":"flat"}' })
  fake.queueReply('GET /v1/prices', { status: 200, body: 'OK', headers: { 'request-id': 'req_ok' } })
  t.match(await rejection(client.request('GET', '/v1/prices')), { statusCode: 200, type: 'api_error', retryable: false, requestId: 'req_ok', message: 'Stripe returned HTTP 200 with a body that is not JSON: OK' })
  t.equal(fake.requests.length, 6, 'none of these was retried')
})

t.test('a 2xx whose body is not a JSON object is an unexpected_response, not retried', async (t) => {
  const { fake, client } = await setup(t)
  // `null` used to come back as the value, and the caller died reading `.id` of it.
  for (const [body, what] of [['null', 'not a JSON object: null'], ['[]', 'not a JSON object: []'], ['5', 'not a JSON object: 5'], ['"ok"', 'not a JSON object: "ok"'], ['<html>proxy</html>', 'not JSON: <html>proxy</html>']] as Array<[string, string]>) {
    fake.queueReply('POST /v1/products', { status: 200, body, headers: { 'request-id': 'req_odd' } })
    t.match(await rejection(client.request('POST', '/v1/products', { name: 'A' })), {
      name: 'StripeError', statusCode: 200, type: 'api_error', code: 'unexpected_response', retryable: false, requestId: 'req_odd', message: `Stripe returned HTTP 200 with a body that is ${what}`
    }, body)
  }
  t.equal(fake.requests.length, 5, 'none was retried')
  t.equal(fake.state.products.size, 0)
  t.equal((await client.request('POST', '/v1/products', { name: 'B' })).name, 'B', 'an object is the value, as before')
})

// Headers at once, then a body that never ends by itself: it stops only at `limit` bytes,
// left open, so a client that reads it all waits for its timeout. Tells whether the client
// closed the connection before that.
async function startEndlessBody (t: Test, status: number, limit: number) {
  const seen = { requests: 0, written: 0, closedEarly: [] as Promise<boolean>[] }
  const server = createServer((_req, res) => {
    seen.requests++
    res.writeHead(status, { 'content-type': 'application/json', 'request-id': 'req_big' })
    const chunk = Buffer.alloc(64 * 1024, 0x20)
    res.write('{"a":"')
    const pump = (): void => {
      while (seen.written < limit) {
        seen.written += chunk.length
        if (!res.write(chunk)) return void res.once('drain', pump)
      }
    }
    pump()
    seen.closedEarly.push(new Promise((resolve) => res.on('close', () => resolve(!res.writableFinished))))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

t.test('a body past 4 MiB is cut off: the request is aborted and fails as response_too_large', async (t) => {
  const limit = 64 * 1024 * 1024
  await t.test('a 2xx is not retried, like any 2xx that is not a JSON object', async (t) => {
    const { url, seen } = await startEndlessBody(t, 200, limit)
    // Without the cap the client reads to `limit` and then times out instead.
    const { client } = await setup(t, { baseUrl: url, timeoutMs: 10_000 })
    t.match(await rejection(client.request('GET', '/v1/checkout/sessions/cs_1')), {
      name: 'StripeError', statusCode: 200, type: 'api_error', code: 'response_too_large', retryable: false, requestId: 'req_big', message: 'Stripe returned HTTP 200 with a body over 4 MiB'
    })
    t.equal(seen.requests, 1, 'not retried')
    t.equal(await seen.closedEarly[0], true, 'the connection was closed before the server finished')
    t.ok(seen.written < limit, `the server stopped after ${seen.written} bytes, far short of ${limit}`)
  })
  await t.test('a 5xx follows the usual retry rules', async (t) => {
    const { url, seen } = await startEndlessBody(t, 503, limit)
    const { client, delays } = await setup(t, { baseUrl: url, timeoutMs: 10_000, maxRetries: 1 })
    t.match(await rejection(client.request('POST', '/v1/products', { name: 'A' })), {
      statusCode: 503, type: 'api_error', code: 'response_too_large', retryable: true, message: 'Stripe returned HTTP 503 with a body over 4 MiB'
    })
    t.equal(seen.requests, 2, 'retried once, as a 503 is')
    t.equal(delays.length, 1)
    t.same(await Promise.all(seen.closedEarly), [true, true], 'each connection was closed early')
  })
  await t.test('a body of exactly 4 MiB is still read', async (t) => {
    const { fake, client } = await setup(t)
    const body = JSON.stringify({ id: 'prod_big', object: 'product', pad: '' })
    fake.queueReply('GET /v1/products/prod_big', { status: 200, body: body.replace('""', `"${'x'.repeat(4 * 1024 * 1024 - body.length)}"`) })
    t.equal((await client.request('GET', '/v1/products/prod_big')).id, 'prod_big')
  })
})

t.test('onRetry is told each error and wait before the next attempt', async (t) => {
  const seen: Array<[string, number]> = []
  const { fake, client, delays } = await setup(t, { onRetry: (err, ms) => { seen.push([err.message, ms]) } })
  fake.queueReply('GET /v1/prices', { status: 500, body: stripeBody('api_error', 'busy') }, { times: 2 })
  await client.request('GET', '/v1/prices')
  t.same(seen.map(([m]) => m), ['busy', 'busy'])
  t.same(seen.map(([, ms]) => ms), delays, 'the wait the client then sleeps')
  fake.queueReply('GET /v1/prices', { status: 400, body: stripeBody('invalid_request_error', 'no') })
  await rejection(client.request('GET', '/v1/prices'))
  t.equal(seen.length, 2, 'not for an error that is not retried')
})

t.test('the API key never appears in an error message', async (t) => {
  const { fake, client } = await setup(t)
  fake.queueReply('GET /v1/prices', { status: 401, body: stripeBody('invalid_request_error', `Invalid API Key provided: ${KEY}`) })
  const echoed = await rejection(client.request('GET', '/v1/prices'))
  fake.queueReply('GET /v1/prices', { status: 400, body: `bad key ${KEY} and again ${KEY}` })
  const raw = await rejection(client.request('GET', '/v1/prices'))
  // A proxy's page echoing the request, where the 200-character cut falls inside the key.
  fake.queueReply('GET /v1/prices', { status: 403, body: `<html>${'x'.repeat(156)} Authorization: Bearer ${KEY}</html>` })
  const cut = await rejection(client.request('GET', '/v1/prices'))
  fake.queueReply('GET /v1/prices', { status: 200, body: `${'x'.repeat(184)} ${KEY}` })
  const cutOk = await rejection(client.request('GET', '/v1/prices'))
  for (const [what, err] of [['cut', cut], ['cut, on a 2xx', cutOk]] as const) {
    t.notMatch(err.message, KEY.slice(0, 12), `${what}: no part of the key before the cut`)
    t.match(err.message, /\[redacted\]/, `${what}: masked before it was cut`)
  }
  for (const err of [echoed, raw]) {
    t.notMatch(err.message, KEY)
    t.notMatch(String(err.stack), KEY)
    t.notMatch(inspect(err), KEY)
    t.notMatch(JSON.stringify(err), KEY)
    t.match(err.message, '[redacted]')
  }
  t.notMatch(inspect(client, { depth: 10, showHidden: true }), KEY)
  t.notMatch(JSON.stringify(client), KEY)

  const { client: wrong } = await setup(t, {}, { apiKeys: ['sk_test_someoneelse'] })
  const denied = await rejection(wrong.request('GET', '/v1/prices'))
  t.match(denied, { statusCode: 401, type: 'invalid_request_error', code: 'api_key_invalid', message: /^Invalid API Key provided: sk_test_\*+6789$/ })
  t.notMatch(denied.message, KEY)
})

t.test('backoff follows stripe-node within its bounds', async (t) => {
  await t.test('bounds with real jitter', async (t) => {
    const { fake, client, delays } = await setup(t, { maxRetries: 7 })
    fake.queueReply('GET /v1/prices', { status: 500, body: stripeBody('api_error', 'x') }, { times: 8 })
    await t.rejects(client.request('GET', '/v1/prices'))
    t.equal(delays.length, 7)
    delays.forEach((ms, i) => {
      const base = Math.min(0.5 * 2 ** i, 5) * 1000
      t.ok(ms >= Math.max(500, base / 2) && ms <= base, `retry ${i + 1}: ${ms} ms in [${Math.max(500, base / 2)}, ${base}]`)
    })
  })
  for (const [random, expected] of [[0, [500, 500, 1000, 2000, 2500, 2500]], [1, [500, 1000, 2000, 4000, 5000, 5000]]] as const) {
    await t.test(`jitter at its ${random === 0 ? 'lowest' : 'highest'}`, async (t) => {
      t.capture(Math, 'random', () => random)
      const { fake, client, delays } = await setup(t, { maxRetries: 6 })
      fake.queueReply('GET /v1/prices', { status: 503, body: stripeBody('api_error', 'x') }, { times: 7 })
      await t.rejects(client.request('GET', '/v1/prices'))
      t.strictSame(delays, expected)
    })
  }
  await t.test('Retry-After is honoured up to 5 s', async (t) => {
    t.capture(Math, 'random', () => 0)
    const { fake, client, delays } = await setup(t, { maxRetries: 6 })
    // An HTTP date has whole seconds: 4-5 s ahead now, under the 5 s cap, above the 2 s backoff.
    const inSeconds = new Date((Math.floor(Date.now() / 1000) + 5) * 1000).toUTCString()
    for (const retryAfter of ['3', '60', '0', inSeconds, 'soon', 'Thu, 01 Jan 1970 00:00:00 GMT']) {
      fake.queueReply('GET /v1/prices', { status: 429, body: stripeBody('rate_limit_error', 'slow down'), headers: { 'stripe-should-retry': 'true', 'retry-after': retryAfter } })
    }
    await client.request('GET', '/v1/prices')
    t.equal(delays[0], 3000)
    t.equal(delays[1], 5000, 'capped')
    t.equal(delays[2], 1000, 'never below the backoff')
    t.ok((delays[3] as number) > 2000 && (delays[3] as number) <= 5000, `an HTTP date: ${delays[3]}`)
    t.equal(delays[4], 2500, 'an unreadable value is ignored')
    t.equal(delays[5], 2500, 'a date in the past is ignored')
  })
  await t.test('the default sleep really waits and then retries', async (t) => {
    const fake = await startFakeStripe(t)
    const client = new StripeClient({ apiKey: KEY, apiVersion: VERSION, baseUrl: `${fake.url}/`, maxRetries: 1 })
    fake.queueReply('GET /v1/prices', { status: 503, body: stripeBody('api_error', 'x') })
    const list = await client.request('GET', '/v1/prices')
    t.equal(list.object, 'list')
    t.equal(fake.requests.length, 2)
    t.equal(fake.requests[1]?.path, '/v1/prices', 'a trailing slash on baseUrl is dropped')
  })
})

t.test('listAll follows has_more with starting_after', async (t) => {
  const { fake, client } = await setup(t)
  const ids = Array.from({ length: 25 }, (_, i) => fake.addProduct({ name: `P${i}` }).id)
  const newestFirst = [...ids].reverse()
  const all = await client.listAll('/v1/products', { limit: 10 })
  t.strictSame(all.map((p) => p.id), newestFirst)
  t.strictSame(fake.requests.map((r) => r.rawQuery), ['limit=10', `limit=10&starting_after=${newestFirst[9]}`, `limit=10&starting_after=${newestFirst[19]}`])

  fake.requests.length = 0
  t.equal((await client.listAll('/v1/products')).length, 25)
  t.strictSame(fake.requests.map((r) => r.rawQuery), ['limit=100'], 'pages of 100 by default')

  fake.requests.length = 0
  const rest = await client.listAll('/v1/products', { limit: 10, starting_after: newestFirst[14], active: true })
  t.strictSame(rest.map((p) => p.id), newestFirst.slice(15))
  t.equal(fake.requests[0]?.rawQuery, `limit=10&starting_after=${newestFirst[14]}&active=true`, "the caller's cursor and filters are kept")

  fake.queueReply('GET /v1/events', { status: 200, body: { object: 'list', data: [], has_more: true } })
  t.strictSame(await client.listAll('/v1/events'), [], 'an empty page ends the walk even if has_more lies')
  fake.queueReply('GET /v1/events', { status: 200, body: { object: 'event', id: 'evt_1' } })
  t.match(await rejection(client.listAll('/v1/events')), { type: 'api_error', message: 'Stripe returned something other than a list for GET /v1/events' })
  fake.queueReply('GET /v1/events', { status: 200, body: null })
  t.match(await rejection(client.listAll('/v1/events')), { type: 'api_error' })
})

t.test('retrieveCheckoutSession refuses ids that could change the path', async (t) => {
  const { fake, client } = await setup(t)
  for (const id of ['', '..', '../../v1/prices', 'cs_test_a?expand[]=x', 'cs test', 'x'.repeat(256)]) {
    t.match(await rejection(client.retrieveCheckoutSession(id)), { type: 'invalid_request_error', code: 'resource_missing', statusCode: null, retryable: false })
  }
  t.equal(fake.requests.length, 0)
})

t.test('constructor checks its options', async (t) => {
  const base = { apiKey: KEY, apiVersion: VERSION, baseUrl: 'https://api.stripe.com' }
  t.doesNotThrow(() => new StripeClient(base))
  t.throws(() => new StripeClient({ ...base, apiKey: '' }), TypeError)
  t.throws(() => new StripeClient({ ...base, apiKey: 'sk_test_x\r\nX-Evil: 1' }), TypeError)
  t.throws(() => new StripeClient({ ...base, apiKey: undefined as unknown as string }), TypeError)
  t.throws(() => new StripeClient({ ...base, apiVersion: '' }), TypeError)
  t.throws(() => new StripeClient({ ...base, apiVersion: 1 as unknown as string }), TypeError)
  t.throws(() => new StripeClient({ ...base, baseUrl: 'api.stripe.com' }), TypeError)
  t.throws(() => new StripeClient({ ...base, baseUrl: 'ftp://api.stripe.com' }), TypeError)
  try {
    new StripeClient({ ...base, apiKey: 'sk_test_secret value' })
    t.fail('should throw')
  } catch (err) {
    t.notMatch((err as Error).message, 'secret value', 'the bad key is not echoed')
  }
})

t.test('StripeError defaults', async (t) => {
  const err = new StripeError('m', { type: 'api_error' })
  t.match(err, { message: 'm', statusCode: null, type: 'api_error', code: null, param: null, requestId: null, retryable: false })
  t.equal(err.cause, undefined)
  t.equal(new StripeError('m', { type: 'x', cause: 'why' }).cause, 'why')
})

// ---- The fake itself: the behaviours other suites rely on -----------------------------------

async function raw (fake: FakeStripe, method: string, path: string, opts: { body?: string, headers?: Record<string, string> } = {}) {
  const res = await undiciRequest(fake.url + path, {
    method: method as 'GET',
    headers: { authorization: `Bearer ${KEY}`, ...(opts.body === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }), ...opts.headers },
    body: opts.body
  })
  return { status: res.statusCode, headers: res.headers, json: await res.body.json() as any }
}

t.test('fake: auth, versions, routing and body parsing', async (t) => {
  const fake = await startFakeStripe(t)
  t.match(await raw(fake, 'GET', '/v1/prices', { headers: { authorization: '' } }), { status: 401, json: { error: { type: 'invalid_request_error', message: /did not provide an API key/ } } })
  t.match(await raw(fake, 'GET', '/v1/prices', { headers: { authorization: 'Bearer pk_test_abc' } }), { status: 401, json: { error: { code: 'api_key_invalid' } } })
  for (const key of ['sk_test_a', 'rk_test_a', 'sk_live_a', 'rk_live_a']) {
    t.equal((await raw(fake, 'GET', '/v1/prices', { headers: { authorization: `Bearer ${key}` } })).status, 200, key)
  }
  t.match(await raw(fake, 'GET', '/v1/prices', { headers: { 'stripe-version': 'latest' } }), { status: 400, json: { error: { message: 'Invalid Stripe API version: latest' } } })
  const ok = await raw(fake, 'GET', '/v1/prices', { headers: { 'stripe-version': '2024-06-20' } })
  t.equal(ok.headers['stripe-version'], '2024-06-20')
  t.match(ok.headers['request-id'], /^req_/)
  t.match(await raw(fake, 'GET', '/v1/nope'), { status: 404, json: { error: { type: 'invalid_request_error', message: /^Unrecognized request URL \(GET: \/v1\/nope\)/ } } })
  t.match(await raw(fake, 'PUT', '/v1/prices'), { status: 404 })
  t.match(await raw(fake, 'POST', '/v1/products', { body: '{"name":"A"}', headers: { 'content-type': 'application/json' } }), { status: 400, json: { error: { message: /form-encoded/ } } })
  t.match(await raw(fake, 'POST', '/v1/products', { body: 'name=%E0%A4%A' }), { status: 400, json: { error: { message: /Invalid URL encoding/ } } })
  t.match(await raw(fake, 'POST', '/v1/products', { body: 'name=A&name[x]=B' }), { status: 400, json: { error: { message: /conflicts/ } } })
  t.match(await raw(fake, 'POST', '/v1/products', { body: 'name=A&metadata[__proto__][x]=1' }), { status: 400, json: { error: { message: /unknown parameter/ } } })
  t.match(await raw(fake, 'POST', '/v1/products', { body: 'name=A&a]b=1' }), { status: 400, json: { error: { message: /Invalid parameter name/ } } })
  t.match(await raw(fake, 'POST', '/v1/products', { body: 'name=A&colour=red' }), { status: 400, json: { error: { message: 'Received unknown parameter: colour', param: 'colour' } } })
  t.match(await raw(fake, 'GET', '/v1/products/%E0%A4%A'), { status: 400 })
  t.match(await raw(fake, 'GET', '/v1/products/prod%20x'), { status: 404, json: { error: { message: "No such product: 'prod x'" } } })
  t.match(await raw(fake, 'GET', '/v1/subscriptions/sub_x'), { status: 404, json: { error: { code: 'resource_missing' } } })
  t.strictSame(decodeForm('a[]=x&a[]=y&b=1+2&c&&d[0][e]=f'), { a: ['x', 'y'], b: '1 2', c: '', d: [{ e: 'f' }] })
  t.equal(fake.requests.length, 19)
  t.equal(fake.requestsTo('* /v1/products*').length, 8)
  t.equal(fake.requestsTo({ path: /^\/v1\/prices$/ }).length, 9)
  t.equal(fake.requestsTo({ method: 'put' }).length, 1)
  t.equal(fake.requestsTo('/v1/nope').length, 1)
  t.equal(fake.requestsTo({}).length, 19)
})

t.test('fake: idempotency as on Stripe', async (t) => {
  const { fake, client } = await setup(t, { maxRetries: 0 })
  const a = await client.request('POST', '/v1/products', { name: 'A', metadata: { x: '1', y: '2' } }, { idempotencyKey: 'k1' })
  const res = await raw(fake, 'POST', '/v1/products', { body: 'metadata[y]=2&metadata[x]=1&name=A', headers: { 'idempotency-key': 'k1' } })
  t.equal(res.json.id, a.id, 'the same params in another order replay')
  t.equal(res.headers['idempotent-replayed'], 'true')
  t.equal(res.headers['idempotency-key'], 'k1')
  t.equal(fake.state.products.size, 1)
  t.match(await rejection(client.request('POST', '/v1/products', { name: 'B' }, { idempotencyKey: 'k1' })), { statusCode: 400, type: 'idempotency_error', message: /same parameters/ })
  t.match(await rejection(client.request('POST', '/v1/prices', { name: 'A' }, { idempotencyKey: 'k1' })), { statusCode: 400, type: 'idempotency_error', message: /same endpoint/ })
  // A request that failed validation is not saved: the key can be reused with fixed params.
  t.match(await rejection(client.request('POST', '/v1/products', {}, { idempotencyKey: 'k2' })), { statusCode: 400, code: 'parameter_missing', param: 'name' })
  t.equal((await client.request('POST', '/v1/products', { name: 'C' }, { idempotencyKey: 'k2' })).name, 'C')
  t.match(await raw(fake, 'POST', '/v1/products', { body: 'name=D', headers: { 'idempotency-key': 'k'.repeat(256) } }), { status: 400, json: { error: { type: 'idempotency_error' } } })
  // Keys belong to an API key.
  const other = await raw(fake, 'POST', '/v1/products', { body: 'name=A&metadata[x]=1&metadata[y]=2', headers: { 'idempotency-key': 'k1', authorization: 'Bearer sk_test_other' } })
  t.not(other.json.id, a.id)
})

t.test('fake: checkout sessions', async (t) => {
  const { fake, client } = await setup(t, { maxRetries: 0 })
  const price = seedPrice(fake)
  const once = fake.addPrice({ id: 'price_once', currency: 'eur', unit_amount: 500 })
  t.equal(once.id, 'price_once')
  t.equal(once.type, 'one_time')
  const create = (params: Record<string, unknown>) => client.createCheckoutSession(params, `k-${Math.random()}`)
  const base = checkoutParams(price.id)
  const bad: Array<[Record<string, unknown>, Record<string, unknown>]> = [
    [{ ...base, mode: undefined }, { code: 'parameter_missing', param: 'mode' }],
    [{ ...base, mode: 'rent' }, { param: 'mode' }],
    [{ ...base, line_items: undefined }, { code: 'parameter_missing', param: 'line_items' }],
    [{ ...base, line_items: 'x' }, { param: 'line_items' }],
    [{ ...base, line_items: ['x'] }, { param: 'line_items[0]' }],
    [{ ...base, line_items: [{ quantity: 1 }] }, { param: 'line_items[0]' }],
    [{ ...base, line_items: [{ price: price.id }] }, { param: 'line_items[0][quantity]' }],
    [{ ...base, line_items: [{ price: price.id, quantity: 0 }] }, { param: 'line_items[0][quantity]' }],
    [{ ...base, line_items: [{ price: price.id, quantity: 'two' }] }, { code: 'parameter_invalid_integer' }],
    [{ ...base, line_items: [{ price: { id: 1 }, quantity: 1 }] }, { param: 'line_items[0][price]' }],
    [{ ...base, line_items: [{ price: 'price_once', quantity: 1 }] }, { param: 'line_items', message: /at least one recurring price/ }],
    [{ ...base, mode: 'payment', subscription_data: undefined }, { param: 'line_items', message: /recurring price/ }],
    [{ ...base, mode: 'payment', line_items: [{ price: 'price_once', quantity: 1 }] }, { param: 'subscription_data' }],
    [{ ...base, customer_email: 'not-an-email' }, { code: 'email_invalid' }],
    [{ ...base, client_reference_id: 'x'.repeat(201) }, { code: 'string_too_long' }],
    [{ ...base, metadata: 'x' }, { param: 'metadata' }],
    [{ ...base, metadata: { ['k'.repeat(41)]: 'v' } }, { param: `metadata[${'k'.repeat(41)}]` }],
    [{ ...base, metadata: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v'])) }, { message: /at most 50 keys/ }],
    [{ ...base, metadata: { k: 'v'.repeat(501) } }, { code: 'string_too_long' }],
    [{ ...base, frobnicate: 1 }, { message: 'Received unknown parameter: frobnicate' }]
  ]
  for (const [params, expected] of bad) {
    t.match(await rejection(create(params)), { statusCode: 400, type: 'invalid_request_error', ...expected }, JSON.stringify(expected))
  }
  fake.addPrice({ id: 'price_off', currency: 'usd', unit_amount: 1, recurring: { interval: 'month' }, active: false })
  t.match(await rejection(create({ ...base, line_items: [{ price: 'price_off', quantity: 1 }] })), { message: /inactive/ })
  t.equal(fake.state.checkoutSessions.size, 0)

  const pay = await create({ mode: 'payment', line_items: [{ price: 'price_once', quantity: 3 }], metadata: '' })
  t.match(pay, { amount_total: 1500, currency: 'eur', payment_status: 'unpaid', metadata: {} })
  const setupSession = await create({ mode: 'setup', currency: 'usd' })
  t.match(setupSession, { payment_status: 'no_payment_required', currency: null })
  t.match(fake.completeSession(setupSession.id), { status: 'complete', payment_status: 'no_payment_required', subscription: null })

  const sub = await create({ ...base, customer_email: 'buyer@example.com' })
  t.equal(sub.line_items, undefined, 'line items only when expanded, as on Stripe')
  const done = fake.completeSession(sub.id, { subscriptionId: 'sub_fixed', customerId: 'cus_fixed' })
  t.match(done, { id: sub.id, status: 'complete', payment_status: 'paid', subscription: 'sub_fixed', customer: 'cus_fixed', customer_details: { email: 'buyer@example.com' } })
  t.match(fake.state.subscriptions.get('sub_fixed'), { status: 'active', customer: 'cus_fixed', metadata: { tenant_id: 'a'.repeat(32) }, items: { data: [{ price: { id: price.id }, quantity: 1 }] } })
  t.match(fake.state.events.at(-1), { type: 'checkout.session.completed', data: { object: { id: sub.id, status: 'complete' } } })
  const unpaid = fake.completeSession((await create(base)).id, { paymentStatus: 'unpaid' })
  t.match(unpaid, { payment_status: 'unpaid', subscription: /^sub_/, customer: /^cus_/ })
  t.throws(() => fake.completeSession('cs_test_nope'))

  const expanded = await client.request('GET', `/v1/checkout/sessions/${sub.id}`, { expand: ['subscription', 'line_items'] })
  t.match(expanded, { subscription: { id: 'sub_fixed', object: 'subscription' }, line_items: { object: 'list', data: [{ quantity: 1 }] } })
  t.match(await client.request('GET', `/v1/subscriptions/sub_fixed`), { id: 'sub_fixed' })
  t.match(await client.request('GET', `/v1/checkout/sessions/${sub.id}/line_items`), { object: 'list', data: [{ price: { id: price.id } }] })
  t.match(await rejection(client.request('GET', '/v1/checkout/sessions/cs_nope/line_items')), { statusCode: 404 })
  t.match(await rejection(client.request('GET', `/v1/checkout/sessions/${sub.id}`, { colour: 'red' })), { message: 'Received unknown parameter: colour' })
  const complete = await client.request('GET', '/v1/checkout/sessions', { status: 'complete' })
  t.equal(complete.data.length, 3)
  t.equal((await client.request('GET', '/v1/checkout/sessions')).data.length, 4)

  const live = await raw(fake, 'POST', '/v1/checkout/sessions', { body: `mode=setup&expand[]=subscription`, headers: { authorization: 'Bearer sk_live_abc' } })
  t.match(live.json, { id: /^cs_live_/, livemode: true })
})

t.test('fake: products and prices', async (t) => {
  const { fake, client } = await setup(t, { maxRetries: 0 })
  const prod = await client.request('POST', '/v1/products', { id: 'ctfhive_solo', name: 'Solo', description: 'One event', metadata: { plan: 'solo' }, tax_code: 'txcd_10000000' })
  t.match(prod, { id: 'ctfhive_solo', object: 'product', active: true, name: 'Solo', description: 'One event', metadata: { plan: 'solo' }, livemode: false })
  t.match(await rejection(client.request('POST', '/v1/products', { id: 'ctfhive_solo', name: 'Again' })), { code: 'resource_already_exists', param: 'id' })
  t.match(await client.request('GET', '/v1/products/ctfhive_solo'), { name: 'Solo' })
  t.match(await rejection(client.request('GET', '/v1/products/nope')), { statusCode: 404, message: "No such product: 'nope'" })

  const p1 = await client.request('POST', '/v1/prices', { product: 'ctfhive_solo', currency: 'USD', unit_amount: 900, recurring: { interval: 'month' }, lookup_key: 'solo_monthly', nickname: 'Solo', metadata: { plan: 'solo' } })
  t.match(p1, { object: 'price', currency: 'usd', unit_amount: 900, unit_amount_decimal: '900', type: 'recurring', recurring: { interval: 'month', interval_count: 1 }, lookup_key: 'solo_monthly', active: true, product: 'ctfhive_solo' })
  t.match(await rejection(client.request('POST', '/v1/prices', { product: 'ctfhive_solo', currency: 'usd', unit_amount: 1000, lookup_key: 'solo_monthly' })), { param: 'lookup_key', message: `A price (\`${p1.id}\`) already uses that lookup key.` })
  const p2 = await client.request('POST', '/v1/prices', { product: 'ctfhive_solo', currency: 'usd', unit_amount: 1000, recurring: { interval: 'month' }, lookup_key: 'solo_monthly', transfer_lookup_key: true })
  t.equal(p2.lookup_key, 'solo_monthly')
  t.equal(fake.state.prices.get(p1.id)?.lookup_key, null, 'the key moved')

  const byKey = await client.request('GET', '/v1/prices', { lookup_keys: ['solo_monthly', 'team_monthly'] })
  t.strictSame(byKey.data.map((p: any) => p.id), [p2.id])
  t.match(byKey, { object: 'list', has_more: false, url: '/v1/prices' })
  const off = await client.request('POST', `/v1/prices/${p2.id}`, { active: false, nickname: '', metadata: { plan: '' } })
  t.match(off, { active: false, nickname: null, metadata: {}, lookup_key: 'solo_monthly' })
  t.equal((await client.request('GET', '/v1/prices', { lookup_keys: ['solo_monthly'], active: true })).data.length, 0)
  t.equal((await client.request('GET', '/v1/prices', { lookup_keys: ['solo_monthly'], active: false })).data.length, 1)
  const moved = await client.request('POST', `/v1/prices/${p1.id}`, { lookup_key: 'solo_monthly', transfer_lookup_key: true, expand: ['product'] })
  t.match(moved, { lookup_key: 'solo_monthly', product: { id: 'ctfhive_solo' } })
  t.match(await client.request('POST', `/v1/prices/${p1.id}`, { lookup_key: '' }), { lookup_key: null })
  t.match(await client.request('GET', `/v1/prices/${p1.id}`, { expand: ['product'] }), { product: { name: 'Solo' } })
  t.match(await client.request('GET', '/v1/prices', { product: 'ctfhive_solo', type: 'recurring', currency: 'usd' }), { data: [{ id: p2.id }, { id: p1.id }] })
  t.match(await rejection(client.request('GET', `/v1/prices/price_nope`)), { statusCode: 404 })

  const inline = await client.request('POST', '/v1/prices', { product_data: { name: 'Team' }, currency: 'usd', unit_amount_decimal: '2900.4' })
  t.match(inline, { unit_amount: 2900, type: 'one_time' })
  t.match(fake.state.products.get(inline.product), { name: 'Team' })

  const badPrices: Array<[Record<string, unknown>, Record<string, unknown>]> = [
    [{ product: 'ctfhive_solo', unit_amount: 1 }, { param: 'currency' }],
    [{ product: 'ctfhive_solo', currency: 'dollars', unit_amount: 1 }, { param: 'currency' }],
    [{ currency: 'usd', unit_amount: 1 }, { param: 'product' }],
    [{ product: 'prod_nope', currency: 'usd', unit_amount: 1 }, { param: 'product', statusCode: 400, code: 'resource_missing' }],
    [{ product: 'ctfhive_solo', currency: 'usd' }, { param: 'unit_amount' }],
    [{ product: 'ctfhive_solo', currency: 'usd', unit_amount: -1 }, { param: 'unit_amount' }],
    [{ product: 'ctfhive_solo', currency: 'usd', unit_amount: 1, recurring: { interval: 'fortnight' } }, { param: 'recurring[interval]' }],
    [{ product: 'ctfhive_solo', currency: 'usd', unit_amount: 1, recurring: { interval: 'month', interval_count: 'x' } }, { param: 'recurring[interval_count]' }],
    [{ product: 'ctfhive_solo', currency: 'usd', unit_amount: 1, lookup_key: 'k'.repeat(201) }, { param: 'lookup_key', code: 'string_too_long' }],
    [{ product: 'ctfhive_solo', currency: 'usd', unit_amount: 1, active: 'maybe' }, { param: 'active' }],
    [{ product: 'ctfhive_solo', currency: { x: 1 }, unit_amount: 1 }, { param: 'currency' }]
  ]
  for (const [params, expected] of badPrices) {
    t.match(await rejection(client.request('POST', '/v1/prices', params)), expected, JSON.stringify(params))
  }
  t.match(await rejection(client.request('GET', '/v1/prices', { lookup_keys: Array.from({ length: 11 }, (_, i) => `k${i}`) })), { param: 'lookup_keys' })
  t.match(await rejection(client.request('GET', '/v1/prices', { lookup_keys: 'solo' })), { param: 'lookup_keys' })

  const updated = await client.request('POST', '/v1/products/ctfhive_solo', { name: 'Solo plan', description: '', active: false, tax_code: '', default_price: p1.id, metadata: { plan: '', tier: '1' } })
  t.match(updated, { name: 'Solo plan', description: null, active: false, tax_code: null, default_price: p1.id, metadata: { tier: '1' } })
  t.notOk('plan' in updated.metadata)
  t.match(await rejection(client.request('POST', '/v1/products/ctfhive_solo', { default_price: inline.id })), { param: 'default_price' })
  t.match(await client.request('POST', '/v1/products/ctfhive_solo', { default_price: '' }), { default_price: null })
  t.equal((await client.request('GET', '/v1/products', { active: false })).data.length, 1)
  t.equal((await client.request('GET', '/v1/products', { ids: ['ctfhive_solo', inline.product] })).data.length, 2)
  t.match(fake.addProduct({ name: 'Seeded' }), { id: /^prod_/ })
  t.match(fake.addPrice({ currency: 'usd', unit_amount: 5, product: 'ctfhive_solo' }), { product: 'ctfhive_solo' })
})

t.test('fake: webhook endpoints and events', async (t) => {
  const { fake, client } = await setup(t, { maxRetries: 0 })
  const we = await client.request('POST', '/v1/webhook_endpoints', { url: 'https://ctfhive.test/billing/webhook', enabled_events: ['checkout.session.completed', 'customer.subscription.deleted'], api_version: '2024-06-20', description: 'CTFHive' })
  t.match(we, { id: /^we_/, object: 'webhook_endpoint', secret: /^whsec_\w{32}$/, status: 'enabled', api_version: '2024-06-20', enabled_events: ['checkout.session.completed', 'customer.subscription.deleted'] })
  const listed = await client.request('GET', '/v1/webhook_endpoints')
  t.equal(listed.data.length, 1)
  t.notOk('secret' in listed.data[0], 'no secret in lists')
  t.notOk('secret' in (await client.request('GET', `/v1/webhook_endpoints/${we.id}`)))
  const up = await client.request('POST', `/v1/webhook_endpoints/${we.id}`, { enabled_events: ['*'], url: 'https://ctfhive.test/hook', description: '', disabled: true, metadata: { a: 'b' } })
  t.match(up, { enabled_events: ['*'], url: 'https://ctfhive.test/hook', description: null, status: 'disabled', metadata: { a: 'b' } })
  t.notOk('secret' in up)
  t.equal((await client.request('POST', `/v1/webhook_endpoints/${we.id}`, { disabled: false })).status, 'enabled')
  t.equal(fake.state.webhookEndpoints.get(we.id)?.secret, we.secret, 'the fake keeps the secret for signing')
  const badEndpoints: Array<[Record<string, unknown>, Record<string, unknown>]> = [
    [{ enabled_events: ['*'] }, { param: 'url' }],
    [{ url: 'https://x.test' }, { param: 'enabled_events' }],
    [{ url: 'https://x.test', enabled_events: '' }, { param: 'enabled_events' }],
    [{ url: 'https://x.test', enabled_events: ['Checkout Completed'] }, { param: 'enabled_events[0]' }],
    [{ url: 'not a url', enabled_events: ['*'] }, { code: 'url_invalid' }],
    [{ url: 'ftp://x.test', enabled_events: ['*'] }, { code: 'url_invalid' }],
    [{ url: 'https://x.test', enabled_events: ['*'], api_version: 'latest' }, { param: 'api_version' }]
  ]
  for (const [params, expected] of badEndpoints) {
    t.match(await rejection(client.request('POST', '/v1/webhook_endpoints', params)), expected, JSON.stringify(params))
  }
  t.match(await rejection(client.request('GET', '/v1/webhook_endpoints/we_nope')), { statusCode: 404 })
  await client.request('DELETE', `/v1/webhook_endpoints/${we.id}`)
  t.match(await rejection(client.request('DELETE', `/v1/webhook_endpoints/${we.id}`)), { statusCode: 404 })

  const e1 = fake.addEvent('customer.subscription.updated', { id: 'sub_1' })
  const e2 = fake.addEvent('invoice.paid', { id: 'in_1' })
  const e3 = fake.addEvent('customer.subscription.deleted', { id: 'sub_1' })
  t.match(e1, { id: /^evt_/, object: 'event', type: 'customer.subscription.updated', data: { object: { id: 'sub_1' } }, request: { id: null } })
  t.strictSame((await client.request('GET', '/v1/events')).data.map((e: any) => e.id), [e3.id, e2.id, e1.id])
  t.strictSame((await client.request('GET', '/v1/events', { type: 'customer.subscription.*' })).data.map((e: any) => e.id), [e3.id, e1.id])
  t.strictSame((await client.request('GET', '/v1/events', { types: ['invoice.paid', 'customer.subscription.updated'] })).data.map((e: any) => e.id), [e2.id, e1.id])
  t.match(await client.request('GET', `/v1/events/${e2.id}`), { type: 'invoice.paid' })
  t.match(await rejection(client.request('GET', '/v1/events/evt_nope')), { statusCode: 404 })
  t.match(await client.request('GET', '/v1/events', { limit: 1 }), { data: [{ id: e3.id }], has_more: true, url: '/v1/events' })
  t.match(await client.request('GET', '/v1/events', { limit: 1, ending_before: e1.id }), { data: [{ id: e2.id }] })
  t.match(await client.request('GET', '/v1/events', { ending_before: e3.id }), { data: [], has_more: false })
  for (const limit of [0, 101, 'x']) t.match(await rejection(client.request('GET', '/v1/events', { limit })), { param: 'limit' })
  t.match(await rejection(client.request('GET', '/v1/events', { starting_after: 'evt_nope' })), { statusCode: 400, param: 'starting_after' })
})

t.test('fake: scripted replies, drops and delays', async (t) => {
  const fake = await startFakeStripe(t)
  fake.queueReply('GET /v1/prices', { status: 418, body: { teapot: true } }, { times: 2 })
  t.match(await raw(fake, 'GET', '/v1/prices'), { status: 418, json: { teapot: true } })
  t.match(await raw(fake, 'GET', '/v1/prices'), { status: 418 })
  t.match(await raw(fake, 'GET', '/v1/prices'), { status: 200 }, 'scripts run out')
  fake.queueReply('GET /v1/prices', { status: 200 })
  t.match(await raw(fake, 'GET', '/v1/prices'), { status: 200, json: {} })
  fake.delayReply('GET /v1/prices', 20)
  t.match(await raw(fake, 'GET', '/v1/prices'), { status: 200, json: { object: 'list' } })
  fake.dropConnection('GET /v1/prices')
  await t.rejects(raw(fake, 'GET', '/v1/prices'))
  t.equal(fake.requests.at(-1)?.status, null)
  fake.delayReply('GET /v1/events', 60_000)
  const pending = raw(fake, 'GET', '/v1/events').catch((err: Error) => err)
  await new Promise((resolve) => setTimeout(resolve, 50))
  await fake.close()
  await fake.close()
  t.ok((await pending) instanceof Error, 'close ends held replies')
})
