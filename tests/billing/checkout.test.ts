import { join } from 'node:path'
import t from 'tap'
import { load } from 'cheerio'
import { buildTestApp, storeWithOverrides } from '../helpers/build-app.ts'
import { startFakeStripe, type FakeStripe } from '../helpers/fake-stripe.ts'
import { StripeClient } from '../../api/billing/stripe-client.ts'
import { CHECKOUT_RETURN_MAX_AGE_S } from '../../api/billing/routes.ts'
import { verifyWelcomeToken } from '../../api/tenants/welcome-token.ts'
import { CHECKOUT_RETURN_ERRORS, registerError } from '../../api/web/buyer-text.ts'
import { buildTestSite } from '../helpers/site-build.ts'

const KEY = 'sk_test_4eC39HqLyjWDarjtT1zdp7dc'
const PRICES = { STRIPE_PRICE_SOLO: 'price_solo_1', STRIPE_PRICE_STANDARD: 'price_standard_1', STRIPE_PRICE_PRO: 'price_pro_1' }

async function stripeApp (t: Parameters<typeof buildTestApp>[0], env: Record<string, string> = {}, logLines?: Array<Record<string, unknown>>) {
  const fake = await startFakeStripe(t)
  for (const [env, id] of Object.entries(PRICES)) {
    fake.addPrice({ id, currency: 'usd', unit_amount: 2500, recurring: { interval: 'month' }, lookup_key: `ctfhive_${env.slice(13).toLowerCase()}_monthly` })
  }
  const stripe = new StripeClient({ apiKey: KEY, apiVersion: '2024-06-20', baseUrl: fake.url, sleep: async () => {} })
  const built = await buildTestApp(t, {
    stripe,
    logLines,
    env: { STRIPE_SECRET_KEY: KEY, STRIPE_API_BASE: fake.url, PUBLIC_BASE_URL: 'https://ctfhive.example', ...PRICES, ...env }
  })
  return { ...built, fake }
}

t.test('Stripe not configured: a pending tenant and checkout_not_configured', async (t) => {
  const { app, store, config } = await buildTestApp(t)
  const r = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'standard', name: 'Acme', email: 'a@acme.test' } })
  t.equal(r.statusCode, 200)
  const body = r.json()
  t.match(body, { status: 'checkout_not_configured', message: 'Stripe is not configured; created a pending tenant.', plan: 'standard' })
  t.match(body.tenant_id, /^[0-9a-f]{32}$/)
  const token = new URL(body.welcome_url, 'http://x').searchParams.get('token')!
  t.ok(verifyWelcomeToken(config.secretKey, body.tenant_id, token), 'the welcome link is signed')
  const tenant = await store.getTenant(body.tenant_id)
  t.match(tenant, { name: 'Acme', email: 'a@acme.test', plan: 'standard', billing: 'pending', infra: 'none' })
  t.equal((await app.inject(`/tenants/${body.tenant_id}/status`)).json().state, 'provisioning')
})

t.test('form bodies work like JSON; empty optional fields are ignored', async (t) => {
  const { app, store } = await buildTestApp(t)
  const r = await app.inject({ method: 'POST', url: '/billing/checkout', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'plan=solo&name=&email=' })
  t.equal(r.statusCode, 200)
  t.match(await store.getTenant(r.json().tenant_id), { name: 'ctfhive-event', email: '', plan: 'solo' })
})

t.test('a plain HTML form post gets redirects', async (t) => {
  const { app } = await buildTestApp(t)
  const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html,application/xhtml+xml' }
  const ok = await app.inject({ method: 'POST', url: '/billing/checkout', headers, payload: 'plan=pro&name=Night' })
  t.equal(ok.statusCode, 303)
  t.match(ok.headers.location, /^\/welcome\?tenant=[0-9a-f]{32}&token=[0-9a-f]{40}$/)
  const bad = await app.inject({ method: 'POST', url: '/billing/checkout', headers, payload: 'plan=gold' })
  t.equal(bad.statusCode, 303)
  t.equal(bad.headers.location, '/register?plan=gold&error=unknown_plan')
  const invalid = await app.inject({ method: 'POST', url: '/billing/checkout', headers, payload: 'plan=solo&email=a%40b' })
  t.equal(invalid.statusCode, 303, 'a schema failure goes back to the form too')
  t.equal(invalid.headers.location, '/register?plan=solo&error=invalid_request&field=email')
  const shouting = { 'content-type': 'Application/X-WWW-Form-Urlencoded; Charset=UTF-8', accept: 'TEXT/HTML' }
  const upper = await app.inject({ method: 'POST', url: '/billing/checkout', headers: shouting, payload: 'plan=gold' })
  t.equal(upper.headers.location, '/register?plan=gold&error=unknown_plan', 'media types in any case')
  const json = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', email: 'a@b' } })
  t.equal(json.statusCode, 400, 'JSON clients still get the 400')
  t.equal(json.json().field, 'email')
})

t.test('a plain HTML form post goes back to the form on our failures and the rate limit too', async (t) => {
  const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' }
  const { app, store, fake } = await stripeApp(t, { STRIPE_PRICE_SOLO: '', CHECKOUT_RATE_LIMIT: '3' })
  const unpriced = await app.inject({ method: 'POST', url: '/billing/checkout', headers, payload: 'plan=solo' })
  t.equal(unpriced.statusCode, 303)
  t.equal(unpriced.headers.location, '/register?plan=solo&error=price_not_configured')
  fake.queueReply('POST /v1/checkout/sessions', { status: 500, body: { error: { type: 'api_error', message: 'down' } } }, { times: 3 })
  const failed = await app.inject({ method: 'POST', url: '/billing/checkout', headers, payload: 'plan=standard' })
  t.equal(failed.statusCode, 303, 'Stripe failing: back to the form, not a JSON 502')
  t.equal(failed.headers.location, '/register?plan=standard&error=stripe_checkout_failed')
  t.equal(await store.countTenants(), 0, 'and nothing left behind')
  await app.inject({ method: 'POST', url: '/billing/checkout', headers, payload: 'plan=standard' })
  const [sessions, tenants] = [fake.requestsTo('POST /v1/checkout/sessions').length, await store.countTenants()]
  const limited = await app.inject({ method: 'POST', url: '/billing/checkout', headers, payload: 'plan=solo&name=Shared+School+CTF' })
  t.equal(limited.statusCode, 303, 'the rate limit too')
  t.equal(limited.headers.location, '/register?plan=solo&error=rate_limited', 'with the buyer\'s plan, not the default one')
  t.ok(limited.headers['retry-after'], 'and when to try again')
  t.match(String(limited.headers['set-cookie']), /ctfhive_typed=/, 'what was typed comes back with the form')
  t.same([fake.requestsTo('POST /v1/checkout/sessions').length, await store.countTenants()], [sessions, tenants], 'the refused post reached neither Stripe nor the store')
  const json = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'standard' } })
  t.equal(json.statusCode, 429, 'a JSON client still gets the 429')
  t.ok(json.headers['retry-after'])
})

t.test("another site's page cannot start a checkout: it would choose the buyer's name and email", async (t) => {
  const { app, store, fake } = await stripeApp(t)
  const form = { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' }
  const payload = 'plan=solo&name=Planted+CTF&email=billing%40attacker.example'
  const sent = (): number => fake.requestsTo('POST /v1/checkout/sessions').length
  const refused: Array<[string, Record<string, string>]> = [
    ['Sec-Fetch-Site: cross-site', { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' }],
    ['an older browser: only Origin, of another host', { origin: 'https://evil.example' }],
    ['an Origin that is not a URL', { origin: 'evil' }],
    // Every tenant's CTF is a sibling host, with pages its buyer writes.
    ['a tenant\'s CTF (same-site)', { 'sec-fetch-site': 'same-site', origin: 'https://evil.ctfhive.example' }],
    ['same-site without an Origin', { 'sec-fetch-site': 'same-site', origin: 'null' }]
  ]
  for (const [what, headers] of refused) {
    const r = await app.inject({ method: 'POST', url: '/billing/checkout', headers: { ...form, ...headers }, payload })
    t.equal(r.statusCode, 303, what)
    t.equal(r.headers.location, '/register?error=cross_site_request', `${what}: back to our form, which says why`)
    t.equal(r.headers['set-cookie'], undefined, `${what}: nothing it typed is carried to our form`)
    const json = await app.inject({ method: 'POST', url: '/billing/checkout', headers, payload: { plan: 'solo', email: 'billing@attacker.example' } })
    t.equal(json.statusCode, 403, what)
    t.equal(json.json().error, 'cross_site_request')
  }
  t.equal(await store.countTenants(), 0, 'no tenant made')
  t.equal(sent(), 0, 'and no Checkout Session')
  t.equal(registerError('cross_site_request').field, 'form', 'the form shows the message above the fields')

  const allowed: Array<[string, Record<string, string>]> = [
    ['our own page', { 'sec-fetch-site': 'same-origin', origin: 'https://ctfhive.example' }],
    ['same-site but from our own origin (a proxy that tells the browser otherwise)', { 'sec-fetch-site': 'same-site', origin: 'https://ctfhive.example' }],
    ['typed or bookmarked', { 'sec-fetch-site': 'none' }],
    ['an older browser on our page', { origin: 'https://ctfhive.example' }],
    ['an older browser under no-referrer', { origin: 'null' }],
    ['a program', {}]
  ]
  for (const [what, headers] of allowed) {
    const r = await app.inject({ method: 'POST', url: '/billing/checkout', headers: { ...form, ...headers }, payload })
    t.equal(r.statusCode, 303, what)
    t.match(r.headers.location, /^https:\/\/checkout\.stripe\.com\//, `${what}: on to Checkout`)
  }
  t.equal(sent(), allowed.length)
})

t.test('a plain form post that fails on our side is a 500, and carries nothing typed', async (t) => {
  const { store } = storeWithOverrides(t)
  store.transaction = async () => { throw new Error('disk I/O error') }
  const { app } = await buildTestApp(t, { store })
  const r = await app.inject({
    method: 'POST',
    url: '/billing/checkout',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
    payload: 'plan=solo&name=Tom&email=tom%40example.org'
  })
  t.equal(r.statusCode, 500)
  t.equal(r.json().error, 'internal_error')
  t.equal(r.cookies.length, 0, 'no cookie holding the name and email')
})

t.test('bad input: clear 4xx JSON errors that change nothing', async (t) => {
  const { app, store } = await buildTestApp(t)
  const cases: Array<[string, Record<string, unknown>, number, string]> = [
    ['unknown plan', { payload: { plan: 'gold' } }, 400, 'unknown_plan'],
    ['a long unknown plan', { payload: { plan: 'platinum-enterprise-ultimate-annual-2026-edition' } }, 400, 'unknown_plan'],
    ['contact plan', { payload: { plan: 'enterprise' } }, 400, 'plan_requires_contact'],
    ['missing plan', { payload: { name: 'x' } }, 400, 'invalid_request'],
    ['name too long', { payload: { plan: 'solo', name: 'x'.repeat(81) } }, 400, 'invalid_request'],
    ['name with a NUL', { payload: { plan: 'solo', name: 'evil\u0000ctf' } }, 400, 'invalid_request'],
    ['name with a newline', { payload: { plan: 'solo', name: 'two\nlines' } }, 400, 'invalid_request'],
    ['name with a lone surrogate', { payload: { plan: 'solo', name: 'lone \ud800 half' } }, 400, 'invalid_request'],
    ['name with a C1 control (CSI)', { payload: { plan: 'solo', name: 'a\u009bb' } }, 400, 'invalid_request'],
    ['name with a line separator', { payload: { plan: 'solo', name: 'x\u2028y' } }, 400, 'invalid_request'],
    ['name with a right-to-left override', { payload: { plan: 'solo', name: 'ok\u202eevil' } }, 400, 'invalid_request'],
    ['name of a zero-width space only', { payload: { plan: 'solo', name: '\u200b' } }, 400, 'invalid_request'],
    ['bad email', { payload: { plan: 'solo', email: 'not-an-email' } }, 400, 'invalid_request'],
    ['plan a number', { payload: { plan: 7 } }, 400, 'invalid_request'],
    ['plan in a one-element array', { payload: { plan: ['solo'] } }, 400, 'invalid_request'],
    ['name a number', { payload: { plan: 'solo', name: 2026 } }, 400, 'invalid_request'],
    ['name a boolean', { payload: { plan: 'solo', name: true } }, 400, 'invalid_request'],
    ['email null', { payload: { plan: 'solo', email: null } }, 400, 'invalid_request'],
    ['plan an object', { payload: { plan: { a: 1 } } }, 400, 'invalid_request'],
    ['malformed JSON', { headers: { 'content-type': 'application/json' }, payload: '{"plan": ' }, 400, 'invalid_json'],
    ['text/plain', { headers: { 'content-type': 'text/plain' }, payload: 'plan=solo' }, 415, 'unsupported_media_type'],
    ['xml', { headers: { 'content-type': 'application/xml' }, payload: '<plan>solo</plan>' }, 415, 'unsupported_media_type'],
    ['no body', {}, 400, 'invalid_request'],
    ['body too large', { payload: { plan: 'solo', name: 'x'.repeat(70_000) } }, 413, 'payload_too_large']
  ]
  for (const [name, opts, status, code] of cases) {
    const r = await app.inject({ method: 'POST', url: '/billing/checkout', ...opts })
    t.equal(r.statusCode, status, name)
    t.equal(r.json().error, code, `${name}: code`)
    t.type(r.json().message, 'string', `${name}: message`)
  }
  const missing = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { name: 'x' } })
  t.equal(missing.json().field, 'plan', 'the field is named')
  const typed = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 2026 } })
  t.match(typed.json(), { error: 'invalid_request', message: 'body.name: must be string', field: 'name' }, 'a JSON value of the wrong type is named, not converted')
  t.equal(await store.countTenants(), 0, 'nothing was created')
  const emoji = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Flag 🚩 CTF' } })
  t.equal(emoji.statusCode, 200, 'a character outside the BMP (a surrogate pair) is fine')
  const accented = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Ünïcödé ＣＴＦ – 東京' } })
  t.equal(accented.statusCode, 200, 'letters of any script, wide forms and a dash are fine')
})

t.test('a 2xx from Stripe without a usable session is a Stripe failure: 502, nothing left behind', async (t) => {
  const { app, store, fake } = await stripeApp(t)
  const bodies: Array<[string, unknown]> = [['null', null], ['no url', { id: 'cs_test_nourl' }], ['a url that is a number', { id: 'cs_test_x', url: 5 }], ['a relative url', { id: 'cs_test_y', url: '/pay' }],
    ['another scheme', { id: 'cs_test_z', url: 'javascript:alert(1)' }]]
  for (const [what, body] of bodies) {
    fake.queueReply('POST /v1/checkout/sessions', { status: 200, body })
    const r = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'standard' } })
    t.equal(r.statusCode, 502, what)
    t.equal(r.json().error, 'stripe_checkout_failed', what)
    t.equal(await store.countTenants(), 0, `${what}: the pending tenant is removed`)
  }
  const made = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'standard' } })).json()
  fake.queueReply('GET /v1/checkout/sessions*', { status: 200, body: null })
  const back = await app.inject(`/billing/success?session_id=${made.session_id}`)
  t.equal(back.statusCode, 502, 'the return from Checkout: a 2xx without a session is Stripe failing us')
  t.equal(back.json().error, 'stripe_unavailable')
})

t.test('Stripe configured: a Checkout Session for the plan', async (t) => {
  const { app, store, fake } = await stripeApp(t)
  const r = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'pro', name: 'Big CTF', email: 'buyer@big.test' } })
  t.equal(r.statusCode, 200)
  const body = r.json()
  t.match(body, { status: 'checkout_created', plan: 'pro' })
  const [req] = fake.requestsTo('POST /v1/checkout/sessions')
  t.ok(req, 'one session request')
  t.equal(req!.headers.authorization, `Bearer ${KEY}`)
  t.equal(req!.headers['stripe-version'], '2024-06-20')
  t.equal(req!.headers['idempotency-key'], `ctfhive-checkout-${body.tenant_id}`)
  t.same(req!.form, {
    mode: 'subscription',
    line_items: [{ price: 'price_pro_1', quantity: '1' }],
    client_reference_id: body.tenant_id,
    metadata: { plan: 'pro', tenant_id: body.tenant_id, name: 'Big CTF' },
    subscription_data: { metadata: { tenant_id: body.tenant_id } },
    customer_email: 'buyer@big.test',
    success_url: 'https://ctfhive.example/billing/success?session_id={CHECKOUT_SESSION_ID}',
    cancel_url: 'https://ctfhive.example/pricing'
  })
  const session = fake.state.checkoutSessions.get(body.session_id)
  t.equal(body.checkout_url, session?.url)
  t.equal((await store.getTenant(body.tenant_id))?.billing, 'pending')
  const noEmail = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo' } })
  t.notOk('customer_email' in fake.requestsTo('POST /v1/checkout/sessions')[1]!.form, 'no customer_email when none given')
  t.equal(noEmail.statusCode, 200)
})

t.test('a price variable left empty: 503 before any tenant exists', async (t) => {
  const { app, store, fake } = await stripeApp(t, { STRIPE_PRICE_SOLO: '' })
  const r = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo' } })
  t.equal(r.statusCode, 503)
  t.same(r.json(), { error: 'price_not_configured', plan: 'solo', message: 'set STRIPE_PRICE_SOLO (run the bootstrap CLI)' })
  t.equal(await store.countTenants(), 0)
  t.equal(fake.requests.length, 0, 'Stripe was not called')
})

t.test('an email Stripe refuses is the buyer\'s to fix: 400 naming the field, nothing left behind, the address in no log line', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const { app, store, fake } = await stripeApp(t, {}, lines)
  const refusal = { status: 400, body: { error: { type: 'invalid_request_error', code: 'email_invalid', message: 'Invalid email address: tom@example.c', param: 'customer_email' } } }
  fake.queueReply('POST /v1/checkout/sessions', refusal)
  const r = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'standard', email: 'tom@example.c' } })
  t.equal(r.statusCode, 400)
  t.match(r.json(), { error: 'invalid_request', field: 'email', message: /email/ })
  t.equal(await store.countTenants(), 0, 'the pending tenant is removed')
  fake.queueReply('POST /v1/checkout/sessions', refusal)
  const form = await app.inject({ method: 'POST', url: '/billing/checkout', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' }, payload: 'plan=standard&email=tom%40example.c' })
  t.equal(form.statusCode, 303)
  t.equal(form.headers.location, '/register?plan=standard&error=invalid_request&field=email', 'back to the form, at the email field')
  t.equal(await store.countTenants(), 0)
  const refused = lines.filter((l) => l.msg === 'stripe checkout failed')
  t.equal(refused.length, 2, 'each refusal logged')
  t.match(refused[0], { err: { error_type: 'invalid_request_error', message: 'Invalid email address: [email address]' } })
  t.notMatch(JSON.stringify(lines), /tom@example/, 'the address is in no line')
})

t.test('a Stripe failure: 502 and the pending tenant is removed', async (t) => {
  const { app, store, fake } = await stripeApp(t)
  fake.queueReply('POST /v1/checkout/sessions', { status: 400, body: { error: { type: 'invalid_request_error', code: 'resource_missing', message: 'No such price', param: 'line_items[0][price]' } } })
  const r = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'standard' } })
  t.equal(r.statusCode, 502)
  t.match(r.json(), { error: 'stripe_checkout_failed', stripe_error: { type: 'invalid_request_error', code: 'resource_missing' } })
  t.notMatch(r.body, KEY)
  t.equal(await store.countTenants(), 0, 'rolled back')
  t.same((await store.listAudit({})).map((e) => e.action), ['tenant.created', 'tenant.removed'], 'and audited')

  fake.queueReply('POST /v1/checkout/sessions', { status: 500, body: { error: { type: 'api_error', message: 'boom' } } }, { times: 3 })
  const r500 = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'standard' } })
  t.equal(r500.statusCode, 502, 'after the retries are used up')
  t.equal(await store.countTenants(), 0)
})

t.test('a reply lost mid-flight is retried under the same idempotency key: one session', async (t) => {
  const { app, fake } = await stripeApp(t)
  fake.dropConnection('POST /v1/checkout/sessions', { afterEffect: true })
  const r = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'standard' } })
  t.equal(r.statusCode, 200)
  t.equal(fake.state.checkoutSessions.size, 1, 'exactly one session exists')
  const keys = fake.requestsTo('POST /v1/checkout/sessions').map((q) => q.headers['idempotency-key'])
  t.equal(keys.length, 2)
  t.equal(keys[0], keys[1])
})

t.test('return from Checkout: fulfil, then redirect to the signed welcome link', async (t) => {
  const { app, fake, config } = await stripeApp(t)
  const body = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'standard', name: 'Return CTF' } })).json()
  fake.completeSession(body.session_id, { subscriptionId: 'sub_return' })
  const r = await app.inject(`/billing/success?session_id=${body.session_id}`)
  t.equal(r.statusCode, 303)
  const location = new URL(r.headers.location as string, 'http://x')
  t.equal(location.pathname, '/welcome')
  t.equal(location.searchParams.get('tenant'), body.tenant_id)
  t.ok(verifyWelcomeToken(config.secretKey, body.tenant_id, location.searchParams.get('token')!))
  const status = (await app.inject(`/tenants/${body.tenant_id}/status`)).json()
  t.equal(status.state, 'active', 'no webhook needed')
  t.equal(status.subscription_id, 'sub_return')
  const again = await app.inject(`/billing/success?session_id=${body.session_id}`)
  t.equal(again.statusCode, 303, 'reloading the page is harmless')
  t.equal(app.executor instanceof Object && (app.executor as unknown as { calls: { create: number } }).calls.create, 1, 'one server')
})

t.test('return from Checkout: open sessions, unknown sessions, bad ids, Stripe down', async (t) => {
  const { app, fake } = await stripeApp(t)
  const body = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo' } })).json()
  const open = await app.inject(`/billing/success?session_id=${body.session_id}`)
  t.equal(open.statusCode, 303)
  t.match(open.headers.location, `/welcome?tenant=${body.tenant_id}`)
  t.equal((await app.inject(`/tenants/${body.tenant_id}/status`)).json().billing, 'pending', 'an open session fulfils nothing')
  const unknown = await app.inject('/billing/success?session_id=cs_test_nope')
  t.equal(unknown.statusCode, 404)
  t.equal(unknown.json().error, 'not_found')
  const bad = await app.inject('/billing/success?session_id=../../x')
  t.equal(bad.statusCode, 400)
  t.equal((await app.inject('/billing/success')).statusCode, 400)
  fake.queueReply('GET /v1/checkout/sessions*', { status: 400, body: { error: { type: 'invalid_request_error', message: 'a live-mode id with a test key' } } })
  const foreign = await app.inject(`/billing/success?session_id=${body.session_id}`)
  t.equal(foreign.statusCode, 404, 'a session id Stripe refuses is not found, not Stripe being down')
  t.equal(foreign.json().error, 'not_found')
  fake.queueReply('GET /v1/checkout/sessions*', { status: 500, body: { error: { type: 'api_error', message: 'down' } } }, { times: 3 })
  const down = await app.inject(`/billing/success?session_id=${body.session_id}`)
  t.equal(down.statusCode, 502)
  t.equal(down.json().error, 'stripe_unavailable')
})

t.test('return from Checkout in a browser: a page with the way on, with the same status; JSON for programs', async (t) => {
  const site = buildTestSite(t)
  for (const built of [true, false]) {
    const { app, fake } = await stripeApp(t, { MARKETING_DIST_DIR: built ? site.dir : join(site.dir, 'not-built') })
    const body = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo' } })).json()
    const html = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' }
    const visit = async (url: string, status: number, code: 'stripe_unavailable' | 'not_found') => {
      const r = await app.inject({ url, headers: html })
      const where = `${url} (${built ? 'site built' : 'no site'})`
      t.equal(r.statusCode, status, where)
      t.match(r.headers['content-type'], /^text\/html/, where)
      t.equal(r.headers['cache-control'], 'no-store', 'one buyer\'s page: never stored')
      t.equal(r.headers['referrer-policy'], 'no-referrer', 'the session id, which earns the welcome link, is not sent on')
      t.match(r.headers['content-security-policy'], /default-src 'self'/)
      const $ = load(r.body)
      t.match($('meta[name="robots"]').attr('content'), /^noindex/)
      t.equal($('h1').text(), CHECKOUT_RETURN_ERRORS[code].heading, where)
      t.equal($('#message p.lead').text(), CHECKOUT_RETURN_ERRORS[code].text)
      t.equal($('.site-header').length, built ? 1 : 0, built ? 'in the site\'s layout' : 'a bare page without a build')
      return $
    }

    fake.queueReply('GET /v1/checkout/sessions*', { status: 500, body: { error: { type: 'api_error', message: 'down' } } }, { times: 3 })
    const down = await visit(`/billing/success?session_id=${body.session_id}`, 502, 'stripe_unavailable')
    t.same(down('#message a').toArray().map((el) => [down(el).text(), down(el).attr('href')]), [['Try again', `/billing/success?session_id=${body.session_id}`]])
    const missing = await visit('/billing/success?session_id=cs_test_nope', 404, 'not_found')
    t.same(missing('#message a').map((_i, el) => missing(el).attr('href')).get(), ['/pricing', '/contact#support'])
    await visit('/billing/success?session_id=../../x', 400, 'not_found')

    // Programs keep the JSON error.
    fake.queueReply('GET /v1/checkout/sessions*', { status: 500, body: { error: { type: 'api_error', message: 'down' } } }, { times: 3 })
    const json = await app.inject({ url: `/billing/success?session_id=${body.session_id}`, headers: { accept: 'application/json' } })
    t.equal(json.statusCode, 502)
    t.equal(json.json().error, 'stripe_unavailable')
    t.equal((await app.inject('/billing/success?session_id=cs_test_nope')).json().error, 'not_found')
    t.equal((await app.inject('/billing/success?session_id=../../x')).json().field, 'session_id')
    // And a browser whose order is found is still sent on to it.
    const found = await app.inject({ url: `/billing/success?session_id=${body.session_id}`, headers: html })
    t.equal(found.statusCode, 303)
  }
})

t.test('return from Checkout: a link older than two days opens nothing; whoever reads a stored session id cannot mint the welcome link', async (t) => {
  const { app, fake, store } = await stripeApp(t)
  const body = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'standard', name: 'Old Link CTF' } })).json()
  const session = fake.completeSession(body.session_id, { subscriptionId: 'sub_old_link' })
  const stored = fake.state.checkoutSessions.get(body.session_id)!
  stored.created = Math.floor(Date.now() / 1000) - CHECKOUT_RETURN_MAX_AGE_S - 60
  t.equal(session.id, body.session_id)
  const old = await app.inject(`/billing/success?session_id=${body.session_id}`)
  t.equal(old.statusCode, 410)
  t.equal(old.json().error, 'link_expired')
  t.equal(old.headers.location, undefined, 'no welcome link')
  t.equal((await store.getTenant(body.tenant_id))?.billing, 'pending', 'and nothing fulfilled by it (the webhook does that)')
  const page = await app.inject({ url: `/billing/success?session_id=${body.session_id}`, headers: { accept: 'text/html' } })
  t.equal(page.statusCode, 410)
  t.equal(load(page.body)('h1').text(), CHECKOUT_RETURN_ERRORS.link_expired.heading, 'a browser gets the page saying what to do')
  const shouted = await app.inject({ url: `/billing/success?session_id=${body.session_id}`, headers: { accept: 'TEXT/HTML,application/xhtml+xml' } })
  t.match(shouted.headers['content-type'], /^text\/html/, 'media types are case-insensitive')
  // Within the two days it still works (a buyer back late, or reloading).
  stored.created = Math.floor(Date.now() / 1000) - CHECKOUT_RETURN_MAX_AGE_S + 120
  t.equal((await app.inject(`/billing/success?session_id=${body.session_id}`)).statusCode, 303)
})

t.test('return from Checkout is rate limited per client: each answer costs a Stripe request', async (t) => {
  const { app, fake } = await stripeApp(t, { CHECKOUT_RATE_LIMIT: '3' })
  const before = fake.requestsTo('GET /v1/checkout/sessions*').length
  const codes: number[] = []
  for (let i = 0; i < 5; i++) codes.push((await app.inject(`/billing/success?session_id=cs_test_guess${i}`)).statusCode)
  t.same(codes, [404, 404, 404, 429, 429])
  t.equal(fake.requestsTo('GET /v1/checkout/sessions*').length - before, 3, 'the refused ones never reach Stripe')
  const limited = await app.inject({ url: '/billing/success?session_id=cs_test_guess9', headers: { accept: 'text/html' } })
  t.equal(limited.statusCode, 429)
  t.match(limited.headers['retry-after'], /^\d+$/, 'the page keeps Retry-After')
  t.equal(load(limited.body)('h1').text(), CHECKOUT_RETURN_ERRORS.rate_limited.heading)
  // Its own count: the checkout form is not refused because of it.
  t.equal((await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo' } })).statusCode, 200)
})

t.test('return from Checkout: a delayed payment, and a session made outside this server', async (t) => {
  const { app, fake, store } = await stripeApp(t)
  const body = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'standard', name: 'Slow Pay CTF' } })).json()
  fake.completeSession(body.session_id, { subscriptionId: 'sub_slow', paymentStatus: 'unpaid' })
  const r = await app.inject(`/billing/success?session_id=${body.session_id}`)
  t.equal(r.statusCode, 303)
  t.match(r.headers.location, `/welcome?tenant=${body.tenant_id}`, 'the buyer still gets the welcome page')
  const tenant = await store.getTenant(body.tenant_id)
  t.equal(tenant?.billing, 'pending', 'complete but unpaid (a bank debit): not paid yet')
  t.equal(tenant?.subscriptionId, 'sub_slow', 'linked, so the later invoice finds it')
  t.equal((await store.listJobs({ tenant: body.tenant_id })).length, 0, 'no server before the money')

  // A session created with Stripe directly (say, a payment link): no tenant id anywhere.
  const made = await app.stripe!.createCheckoutSession({
    mode: 'subscription', line_items: [{ price: PRICES.STRIPE_PRICE_SOLO, quantity: 1 }], metadata: { plan: 'solo', name: 'Link CTF' },
    success_url: 'https://ctfhive.example/billing/success?session_id={CHECKOUT_SESSION_ID}', cancel_url: 'https://ctfhive.example/pricing'
  }, 'outside-1')
  fake.completeSession(made.id, { subscriptionId: 'sub_link' })
  const before = await store.countTenants()
  const back = await app.inject(`/billing/success?session_id=${made.id}`)
  t.equal(back.statusCode, 303)
  t.equal(await store.countTenants(), before + 1, 'the paid session gets a tenant of its own')
  const id = new URL(back.headers.location as string, 'http://x').searchParams.get('tenant')!
  const adopted = await store.getTenant(id)
  t.match(adopted, { name: 'Link CTF', plan: 'solo', billing: 'paid', subscriptionId: 'sub_link' })
  t.equal((await app.inject(`/billing/success?session_id=${made.id}`)).headers.location, back.headers.location, 'reloading finds the same tenant')
  t.equal(await store.countTenants(), before + 1)

  // A one-off payment (a payment link for something else, say): nothing would find its tenant
  // on the next visit, so the page adopts nothing; the webhook does, once per event.
  fake.addPrice({ id: 'price_tshirt', currency: 'usd', unit_amount: 2000 })
  const oneOff = await app.stripe!.createCheckoutSession({
    mode: 'payment', line_items: [{ price: 'price_tshirt', quantity: 1 }],
    success_url: 'https://ctfhive.example/billing/success?session_id={CHECKOUT_SESSION_ID}', cancel_url: 'https://ctfhive.example/pricing'
  }, 'outside-payment')
  fake.completeSession(oneOff.id)
  for (let i = 0; i < 3; i++) {
    const visit = await app.inject(`/billing/success?session_id=${oneOff.id}`)
    t.equal(visit.headers.location, '/pricing', `visit ${i + 1}: no tenant of ours`)
  }
  t.equal(await store.countTenants(), before + 1, 'reloads made no tenants')

  // One naming a tenant id of ours that this store does not hold (made by another deployment,
  // say) is adopted under that id: a reload finds it by the id.
  const named = 'e'.repeat(32)
  const ours = await app.stripe!.createCheckoutSession({
    mode: 'payment', line_items: [{ price: 'price_tshirt', quantity: 1 }], metadata: { tenant_id: named, plan: 'solo', name: 'Named CTF' },
    success_url: 'https://ctfhive.example/billing/success?session_id={CHECKOUT_SESSION_ID}', cancel_url: 'https://ctfhive.example/pricing'
  }, 'outside-named')
  fake.completeSession(ours.id)
  for (let i = 0; i < 2; i++) {
    const visit = await app.inject(`/billing/success?session_id=${ours.id}`)
    t.match(visit.headers.location, `/welcome?tenant=${named}&`, `visit ${i + 1}: the named tenant`)
  }
  t.equal(await store.countTenants(), before + 2, 'one tenant for it, however often the page is loaded')
})

t.test('the session id, which earns the welcome link, is not published: not as a name, not in the audit', async (t) => {
  const { app, fake, store } = await stripeApp(t)
  // Ours: the return page fulfils before any webhook, and audits that.
  const body = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'standard', name: 'Audit CTF' } })).json()
  fake.completeSession(body.session_id, { subscriptionId: 'sub_audited' })
  t.equal((await app.inject(`/billing/success?session_id=${body.session_id}`)).statusCode, 303)
  // A Payment Link's: no name in its metadata.
  const made = await app.stripe!.createCheckoutSession({
    mode: 'subscription', line_items: [{ price: PRICES.STRIPE_PRICE_SOLO, quantity: 1 }], metadata: { plan: 'solo' },
    success_url: 'https://ctfhive.example/billing/success?session_id={CHECKOUT_SESSION_ID}', cancel_url: 'https://ctfhive.example/pricing'
  }, 'outside-unnamed')
  fake.completeSession(made.id, { subscriptionId: 'sub_unnamed' })
  const back = await app.inject(`/billing/success?session_id=${made.id}`)
  const id = new URL(back.headers.location as string, 'http://x').searchParams.get('tenant')!
  const adopted = await store.getTenant(id)
  t.equal(adopted?.name, `Checkout …${made.id.slice(-6)}`, 'named after the end of the id, which finds it in the Dashboard')
  for (const [tenant, session] of [[body.tenant_id, body.session_id], [id, made.id]] as const) {
    const status = await app.inject(`/tenants/${tenant}/status`)
    t.equal(status.statusCode, 200)
    t.notOk(status.body.includes(session), 'not in the public status')
    const audit = await store.listAudit({ tenant })
    t.ok(audit.some((e) => JSON.stringify(e.detail).includes('checkout return')), 'the audit says the return page did it')
    t.notOk(JSON.stringify(audit).includes(session), 'not in the audit chain')
  }
})

t.test("return from Checkout: a session that only claims another buyer's tenant does not get its welcome link", async (t) => {
  const { app, fake, store } = await stripeApp(t)
  const victim = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'pro', name: 'Victim CTF' } })).json()
  // As a Payment Link opened with ?client_reference_id=<victim's id>: no metadata of ours.
  const made = await app.stripe!.createCheckoutSession({
    mode: 'subscription', line_items: [{ price: PRICES.STRIPE_PRICE_SOLO, quantity: 1 }], client_reference_id: victim.tenant_id, metadata: { plan: 'solo' },
    success_url: 'https://ctfhive.example/billing/success?session_id={CHECKOUT_SESSION_ID}', cancel_url: 'https://ctfhive.example/pricing'
  }, 'claims-victim')
  const open = await app.inject(`/billing/success?session_id=${made.id}`)
  t.equal(open.headers.location, '/pricing', 'an open session names no tenant of ours')
  fake.completeSession(made.id, { subscriptionId: 'sub_claim' })
  const back = await app.inject(`/billing/success?session_id=${made.id}`)
  t.equal(back.statusCode, 303)
  const tenant = new URL(back.headers.location as string, 'http://x').searchParams.get('tenant')
  t.not(tenant, victim.tenant_id, "not the victim's welcome link")
  t.match(await store.getTenant(tenant!), { plan: 'solo', billing: 'paid', subscriptionId: 'sub_claim' }, 'the payer gets a tenant of their own')
  t.match(await store.getTenant(victim.tenant_id), { billing: 'pending', subscriptionId: null }, "the victim's tenant is untouched")
})

t.test('return from Checkout without Stripe configured', async (t) => {
  const { app } = await buildTestApp(t)
  const r = await app.inject('/billing/success?session_id=cs_test_1')
  t.equal(r.statusCode, 503)
  t.equal(r.json().error, 'stripe_not_configured')
})

export type { FakeStripe }
