import t from 'tap'
import { DatabaseSync } from 'node:sqlite'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, storeWithOverrides, TEST_WEBHOOK_SECRET } from '../helpers/build-app.ts'
import { checkoutSession, deliver, invoice, makeEvent, subscription } from '../helpers/stripe-events.ts'
import { MAX_OFFSET } from '../../api/admin/routes.ts'
import { MAX_EVENT_CURSOR, MAX_PAGE, eventCursor, tenantCursor } from '../../api/tenants/admin.ts'
import type { StripeEventRecord } from '../../api/store/store.ts'
import { nextMillisecond } from '../helpers/until.ts'
import { verifyWelcomeToken } from '../../api/tenants/welcome-token.ts'
import { asLeftByOlderRelease } from '../helpers/schema-rollback.ts'

const TOKEN = 'admin-token-for-tests-0123456789abcdef'
const AUTH = { authorization: `Bearer ${TOKEN}` }
const ENV = { ADMIN_TOKEN: TOKEN, SECRET_KEY: 'secret-key-for-admin-tests-0123456789', PROVISION_AUDIT_SECRET: 'audit-secret-for-admin-tests-0123456789' }

async function pendingTenant (app: FastifyInstance, name = 'Acme CTF'): Promise<string> {
  const r = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'standard', name, email: 'ops@acme.test' } })
  await nextMillisecond() // the tests assert the listing order
  return r.json().tenant_id
}

async function paidTenant (app: FastifyInstance, name: string, sub: string, created?: number): Promise<string> {
  const id = await pendingTenant(app, name)
  const r = await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'standard', subscription: sub }), { created }))
  if (r.json().status !== 'ok') throw new Error(`checkout not applied: ${r.body}`)
  return id
}

function get (app: FastifyInstance, url: string, headers: Record<string, string> = AUTH) {
  return app.inject({ method: 'GET', url, headers })
}

function post (app: FastifyInstance, url: string, headers: Record<string, string> = AUTH) {
  return app.inject({ method: 'POST', url, headers })
}

t.test('ADMIN_TOKEN unset: the operator API does not exist', async (t) => {
  const { app } = await buildTestApp(t)
  for (const [method, url] of [['GET', '/admin/tenants'], ['GET', '/admin/audit/verify'], ['POST', '/admin/events/evt_1/replay']] as const) {
    const r = await app.inject({ method, url, headers: { authorization: 'Bearer anything' } })
    t.equal(r.statusCode, 404, `${method} ${url}`)
    t.equal(r.json().error, 'not_found')
  }
})

t.test('401 without a token, with a wrong one, or with another scheme', async (t) => {
  const { app } = await buildTestApp(t, { env: ENV })
  const cases: Array<[string, Record<string, string>]> = [
    ['no header', {}],
    ['wrong token', { authorization: 'Bearer not-the-token' }],
    ['token prefix', { authorization: `Bearer ${TOKEN.slice(0, -1)}` }],
    ['token plus extra', { authorization: `Bearer ${TOKEN}x` }],
    ['basic scheme', { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` }],
    ['bare token', { authorization: TOKEN }],
    ['empty bearer', { authorization: 'Bearer ' }]
  ]
  for (const [name, headers] of cases) {
    for (const [method, url] of [['GET', '/admin/tenants'], ['GET', '/admin/tenants/export'], ['POST', '/admin/tenants/0123456789abcdef0123456789abcdef/retry'], ['GET', '/admin/audit/verify'], ['POST', '/admin/events/evt_x/replay']] as const) {
      const r = await app.inject({ method, url, headers })
      t.equal(r.statusCode, 401, `${name}: ${method} ${url}`)
      t.equal(r.json().error, 'unauthorized', `${name}: body`)
      t.notMatch(r.body, TOKEN, 'the token is never echoed')
    }
  }
  const r = await get(app, '/admin/tenants', {})
  t.match(r.headers['www-authenticate'], /^Bearer/)
  t.equal((await get(app, '/admin/tenants', { authorization: `bearer  ${TOKEN}` })).statusCode, 200, 'scheme is case-insensitive')
  t.equal((await get(app, '/admin/tenants')).statusCode, 200)
})

t.test('list: paging and filtering by derived state', async (t) => {
  const { app } = await buildTestApp(t, { env: ENV })
  const base = Math.floor(Date.now() / 1000)
  const pending = [await pendingTenant(app, 'P1'), await pendingTenant(app, 'P2')]
  const active = await paidTenant(app, 'A1', 'sub_a1', base)
  const pastDue = await paidTenant(app, 'D1', 'sub_d1', base)
  t.equal((await deliver(app, makeEvent('invoice.payment_failed', invoice({ subscription: 'sub_d1' }), { created: base + 5 }))).json().tenant_state, 'past_due')
  const canceled = await paidTenant(app, 'C1', 'sub_c1', base)
  t.equal((await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: 'sub_c1', status: 'canceled' }), { created: base + 5 }))).json().tenant_state, 'canceled')

  const all = (await get(app, '/admin/tenants')).json()
  t.equal(all.total, 5)
  t.equal(all.tenants.length, 5)
  t.equal(all.tenants[0].name, 'C1', 'newest first')
  t.equal(all.tenants[0].email, 'ops@acme.test', 'operators see the contact')

  const ids = async (state: string) => (await get(app, `/admin/tenants?state=${state}`)).json().tenants.map((x: { tenant_id: string }) => x.tenant_id).sort()
  t.same(await ids('provisioning'), [...pending].sort())
  t.same(await ids('active'), [active])
  t.same(await ids('past_due'), [pastDue])
  t.same(await ids('canceled'), [canceled])
  t.same(await ids('failed'), [])

  const page1 = (await get(app, '/admin/tenants?limit=2&offset=0')).json()
  const page2 = (await get(app, '/admin/tenants?limit=2&offset=2')).json()
  t.equal(page1.tenants.length, 2)
  t.equal(page1.total, 5)
  t.same([...page1.tenants, ...page2.tenants].map((x: { tenant_id: string }) => x.tenant_id), all.tenants.slice(0, 4).map((x: { tenant_id: string }) => x.tenant_id))
  // By cursor: each page names the next; the last names none.
  const byCursor: string[] = []
  let next: string | null = null
  do {
    const page = await get(app, `/admin/tenants?limit=2${next === null ? '' : `&after=${next}`}`)
    t.equal(page.statusCode, 200)
    byCursor.push(...page.json().tenants.map((x: { tenant_id: string }) => x.tenant_id))
    next = page.json().next
  } while (next !== null)
  t.same(byCursor, all.tenants.map((x: { tenant_id: string }) => x.tenant_id))
  const refused: Array<[string, string]> = [['after=bm90LWEtY3Vyc29y', 'after'], ['after=', 'after'], ['after=a%2Fb', 'after'], [`after=${'a'.repeat(257)}`, 'after'], [`after=${page1.next}x`, 'after'],
    [`limit=2&offset=2&after=${page1.next}`, 'offset'], [`limit=2&offset=0&after=${page1.next}`, 'offset']]
  for (const [query, field] of refused) {
    const r = await get(app, `/admin/tenants?${query}`)
    t.equal(r.statusCode, 400, query)
    t.match(r.json(), { error: 'invalid_request', field }, query)
  }
  t.equal((await get(app, '/admin/tenants?limit=2')).json().offset, 0, 'an offset not given is 0')
  t.equal(all.limit, 50, 'a limit not given is 50')

  const bad = await get(app, '/admin/tenants?state=sleeping')
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().error, 'invalid_request')
  t.equal((await get(app, '/admin/tenants?limit=0')).statusCode, 400)
  t.equal((await get(app, '/admin/tenants?limit=501')).statusCode, 400)
})

t.test('paging numbers out of range are 400 invalid_request, never a store error', async (t) => {
  const { app } = await buildTestApp(t, { env: ENV })
  await pendingTenant(app)
  const bad = [
    '/admin/tenants?offset=9223372036854775808', '/admin/tenants?offset=1e20', `/admin/tenants?offset=${MAX_OFFSET + 1}`,
    '/admin/tenants?offset=-1', '/admin/tenants?offset=1.5', '/admin/tenants?offset=NaN',
    // ajv coerces these to ±Infinity and then skips minimum and maximum (ajv#2212).
    '/admin/tenants?offset=Infinity', '/admin/tenants?offset=1e400', '/admin/tenants?offset=-Infinity',
    '/admin/tenants?limit=9223372036854775808', '/admin/tenants?limit=1e20', '/admin/tenants?limit=Infinity',
    '/admin/events?limit=1e20', '/admin/events?limit=0', '/admin/events?limit=-1e400',
    // Digits only, so past the decimal-digits check, but too long for a double: ±Infinity too.
    `/admin/tenants?offset=${'9'.repeat(400)}`, `/admin/tenants?limit=${'9'.repeat(400)}`, `/admin/events?limit=${'9'.repeat(400)}`,
    `/admin/tenants?offset=-${'9'.repeat(400)}`
  ]
  for (const url of bad) {
    const r = await get(app, url)
    const what = url.length > 60 ? `${url.slice(0, 60)}…` : url
    t.equal(r.statusCode, 400, what)
    t.equal(r.json().error, 'invalid_request', what)
    t.equal(r.json().field, /[?&](\w+)=/.exec(url)![1], `${what} names the field`)
  }
  // The documented bounds, as the docs write them.
  t.equal((await get(app, '/admin/tenants?offset=1000000')).statusCode, 200, 'offset 1,000,000 is the last allowed')
  t.equal((await get(app, '/admin/tenants?offset=1000001')).statusCode, 400, 'offset 1,000,001 is not')
  // The largest page, on the single-query path and on the merged one (offset + limit rows per filter).
  for (const state of ['', '&state=provisioning']) {
    const last = await get(app, `/admin/tenants?offset=${MAX_OFFSET}&limit=${MAX_PAGE}${state}`)
    t.equal(last.statusCode, 200, `the last page${state}`)
    t.same(last.json().tenants, [])
    t.equal(last.json().offset, MAX_OFFSET)
  }
})

t.test('a query number is read from its decimal digits only', async (t) => {
  const { app } = await buildTestApp(t, { env: ENV })
  // JavaScript would read each of these as a number (31, 3, 100, 8, 0, 5, 0).
  for (const [query, field] of [['limit=0x1f', 'limit'], ['limit=0b11', 'limit'], ['limit=1e2', 'limit'], ['offset=0o10', 'offset'],
    ['offset=%20', 'offset'], ['offset=%2B5', 'offset'], ['offset=', 'offset'], ['limit=%205', 'limit']] as const) {
    for (const path of field === 'limit' ? ['/admin/tenants', '/admin/events'] : ['/admin/tenants']) {
      const r = await get(app, `${path}?${query}`)
      t.equal(r.statusCode, 400, `${path}?${query}`)
      t.same(r.json(), { error: 'invalid_request', message: `querystring.${field}: must be an integer in decimal digits`, field }, `${path}?${query}`)
    }
  }
  const page = await get(app, '/admin/tenants?limit=007&offset=00')
  t.equal(page.statusCode, 200, 'leading zeros are still digits')
  t.match(page.json(), { limit: 7, offset: 0 })
  t.equal((await get(app, '/admin/tenants?limit=-1')).json().message, 'querystring.limit: must be >= 1', 'a negative number is told its range')
  // A value of a fixed list is told the list, not "must be equal to constant".
  t.same((await get(app, '/admin/tenants?state=bogus')).json(), {
    error: 'invalid_request', field: 'state', message: 'querystring.state: must be one of "provisioning", "active", "past_due", "failed", "canceled"'
  })
  t.same((await get(app, '/admin/events?outcome=Unmatched')).json(), {
    error: 'invalid_request', field: 'outcome', message: 'querystring.outcome: must be one of "ok", "stale", "ignored_terminal", "unmatched"'
  })
})

t.test('a parameter the route does not know is a 400, not a filter quietly ignored', async (t) => {
  const { app } = await buildTestApp(t, { env: ENV })
  await pendingTenant(app)
  const cases: Array<[string, string]> = [['/admin/tenants?status=failed', 'status'], ['/admin/tenants?state[]=active', 'state[]'], ['/admin/events?tenant=x', 'tenant'],
    ['/admin/tenants/export?state=failed', 'state'], ['/admin/audit/verify?tenant=x', 'tenant'], [`/admin/tenants/${'a'.repeat(32)}?full=1`, 'full']]
  for (const [url, field] of cases) {
    const r = await get(app, url)
    t.equal(r.statusCode, 400, url)
    t.match(r.json(), { error: 'invalid_request', field }, `${url} names ${field}`)
  }
  t.equal((await post(app, `/admin/tenants/${'a'.repeat(32)}/retry?force=1`)).json().field, 'force', 'POST routes too')
  t.equal((await get(app, '/admin/tenants?state=provisioning&limit=5')).statusCode, 200, 'the known ones still work')
})

t.test('event ids outside printable ASCII are 400 (PostgreSQL refuses a NUL)', async (t) => {
  const { app } = await buildTestApp(t, { env: ENV })
  for (const id of ['%00', 'a%00b', 'evt%20x', 'evt_%C3%A9']) {
    const r = await post(app, `/admin/events/${id}/replay`)
    t.equal(r.statusCode, 400, id)
    t.match(r.json(), { error: 'invalid_request', field: 'id' }, id)
  }
  t.equal((await post(app, '/admin/events/evt_unknown/replay')).statusCode, 404, 'a well-formed unknown id is still 404')
})

t.test('show: what each subscription said, when the tenant moved from one to another', async (t) => {
  const { app } = await buildTestApp(t, { env: ENV })
  const id = await paidTenant(app, 'Moved CTF', 'sub_first', 1_970_000_000)
  await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: 'sub_first', tenantId: id, status: 'canceled' }), { created: 1_970_000_010 }))
  await deliver(app, makeEvent('customer.subscription.created', subscription({ id: 'sub_second', tenantId: id, status: 'active', lookupKey: 'ctfhive_pro_monthly' }), { created: 1_970_000_020 }))
  const d = (await get(app, `/admin/tenants/${id}`)).json()
  t.match(d.tenant, { state: 'active', subscription_id: 'sub_second', plan: 'pro', error: null })
  t.same((await get(app, `/admin/tenants/${id.toUpperCase()}`)).json(), d, 'an id copied in upper case is the same tenant')
  t.match(d.subscriptions, [
    { id: null, paid: false, ended: false },
    { id: 'sub_first', status: 'paid', ended: true, ended_at: 1_970_000_010, end_reason: 'The subscription was canceled.', paid: true },
    { id: 'sub_second', status: 'paid', plan: 'pro', status_at: 1_970_000_020, ended: false, end_reason: null, paid: true }
  ])

  const expired = await pendingTenant(app, 'Expired CTF')
  await deliver(app, makeEvent('checkout.session.expired', checkoutSession({ tenantId: expired, plan: 'standard', subscription: null, status: 'expired', paymentStatus: 'unpaid' }), { created: 1_970_000_030 }))
  const e = (await get(app, `/admin/tenants/${expired}`)).json()
  t.same(e.checkout_failed, { at: 1_970_000_030, reason: 'The checkout expired before payment.' })
  t.match(e.tenant, { state: 'canceled', error: 'The checkout expired before payment.' })
})

t.test('show: the tenant with its events, audit entries and jobs', async (t) => {
  const { app, store } = await buildTestApp(t, { env: ENV })
  const id = await paidTenant(app, 'Show CTF', 'sub_show')
  const r = await get(app, `/admin/tenants/${id}`)
  t.equal(r.statusCode, 200)
  const d = r.json()
  t.equal(d.tenant.tenant_id, id)
  t.equal(d.tenant.state, 'active')
  t.equal(d.tenant.subscription_id, 'sub_show')
  t.same(d.subscriptions.map((x: { id: string | null, status: string, paid: boolean, ended: boolean }) => [x.id, x.status, x.paid, x.ended]),
    [[null, 'pending', false, false], ['sub_show', 'paid', true, false]], 'what each subscription\'s events said')
  t.equal(d.checkout_failed, null)
  t.equal(d.subscriptions[1].end_reason, null)
  t.ok(d.tenant.server_id, 'server details for operators')
  t.same(d.events.map((e: { type: string }) => e.type), ['checkout.session.completed'])
  t.equal(d.events[0].outcome, 'ok')
  t.equal(d.events[0].payload, undefined, 'payloads stay out of the summary')
  const actions = d.audit.map((a: { action: string }) => a.action)
  t.equal(actions[0], 'tenant.created')
  t.ok(actions.includes('provision.queued'))
  t.ok(d.audit.every((a: { seq: number }) => Number.isInteger(a.seq)))
  t.same(d.jobs.map((j: { kind: string, status: string }) => [j.kind, j.status]), [['provision', 'done']])
  const healthOk = d.audit.find((a: { action: string }) => a.action === 'health.ok')
  t.equal(d.jobs[0].step, 'healthy')
  t.ok(d.jobs[0].step_at >= d.jobs[0].created_at && d.jobs[0].step_at <= healthOk.at, `step_at: when the job reached its step (${d.jobs[0].step_at})`)
  t.match(d.jobs[0].step_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  // A job a release before migration 003 left has no step time: null, not 1970.
  await store.updateJob(d.jobs[0].id, { stepAt: 0 })
  t.equal((await get(app, `/admin/tenants/${id}`)).json().jobs[0].step_at, null)

  const missing = await get(app, '/admin/tenants/0123456789abcdef0123456789abcdef')
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().error, 'tenant_not_found')
  t.equal((await get(app, '/admin/tenants/not-an-id')).statusCode, 400)
})

t.test('welcome-link: the buyer\'s link, signed with the server\'s key, never stored by a cache; unknown ids 404', async (t) => {
  const { app } = await buildTestApp(t, { env: { ...ENV, PUBLIC_BASE_URL: 'https://ctfhive.example' } })
  const id = await pendingTenant(app)
  const r = await get(app, `/admin/tenants/${id}/welcome-link`)
  t.equal(r.statusCode, 200)
  t.equal(r.headers['cache-control'], 'no-store')
  const body = r.json()
  t.same(Object.keys(body).sort(), ['email', 'tenant_id', 'welcome_url'])
  t.equal(body.email, 'ops@acme.test')
  const url = new URL(body.welcome_url)
  t.equal(`${url.origin}${url.pathname}`, 'https://ctfhive.example/welcome')
  t.ok(verifyWelcomeToken(ENV.SECRET_KEY, id, url.searchParams.get('token')!))
  t.equal((await get(app, `/admin/tenants/${id}/welcome-link`, {})).statusCode, 401, 'only with the admin token')
  t.equal((await get(app, `/admin/tenants/${'f'.repeat(32)}/welcome-link`)).json().error, 'tenant_not_found')
})

t.test('retry: a failed provisioning runs again; anything else is a 409', async (t) => {
  const { app, executor } = await buildTestApp(t, { env: { ...ENV, PROVISION_MAX_ATTEMPTS: '1' } })
  executor.failNext('create', 1)
  const id = await pendingTenant(app)
  const r = await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'standard', subscription: 'sub_retry' })))
  t.equal(r.json().tenant_state, 'failed')
  t.same((await get(app, '/admin/tenants?state=failed')).json().tenants.map((x: { tenant_id: string }) => x.tenant_id), [id])

  const retried = await post(app, `/admin/tenants/${id}/retry`)
  t.equal(retried.statusCode, 200)
  t.equal(retried.json().state, 'active')
  t.equal(retried.json().error, null)
  t.equal(executor.calls.create, 2)
  const detail = (await get(app, `/admin/tenants/${id}`)).json()
  t.ok(detail.audit.some((a: { action: string }) => a.action === 'provision.retry_requested'), 'audited')

  const again = await post(app, `/admin/tenants/${id}/retry`)
  t.equal(again.statusCode, 409)
  t.equal(again.json().error, 'conflict')
  t.equal(again.json().state, 'active')
  t.equal(executor.calls.create, 2, 'nothing re-ran')
  const missing = await post(app, '/admin/tenants/0123456789abcdef0123456789abcdef/retry')
  t.equal(missing.statusCode, 404)
})

t.test('retry: a cancel landing between the retry\'s look and its transaction is a 409 with the state now, not a 200', async (t) => {
  const { inner, store } = storeWithOverrides(t)
  const { app, executor } = await buildTestApp(t, { store, env: { ...ENV, PROVISION_MAX_ATTEMPTS: '1' } })
  executor.failNext('create', 1)
  const id = await paidTenant(app, 'Race CTF', 'sub_retry_race')
  t.match(await inner.getTenant(id), { billing: 'paid', infra: 'failed' })
  let armed = true
  store.getTenant = async (tid) => {
    const tenant = await inner.getTenant(tid)
    if (armed && tid === id) {
      armed = false
      // The buyer cancels while the operator's retry holds the tenant it read.
      const r = await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: 'sub_retry_race', tenantId: id, status: 'canceled' })))
      t.equal(r.json().tenant_state, 'canceled')
    }
    return tenant
  }
  const retried = await post(app, `/admin/tenants/${id}/retry`)
  t.equal(retried.statusCode, 409, 'nothing was retried')
  t.match(retried.json(), { error: 'conflict', tenant_id: id, state: 'canceled' }, 'the state as it is now')
  t.notOk((await inner.listJobs({ tenant: id })).some((j) => j.kind === 'provision' && j.status !== 'failed'), 'no provisioning queued')
  t.notOk((await inner.listAudit({ tenant: id })).some((e) => e.action === 'provision.retry_requested'))
  t.equal(executor.calls.create, 1)
})

t.test('audit verify: ok, then the first tampered seq', async (t) => {
  const { app, config } = await buildTestApp(t, { env: ENV })
  await paidTenant(app, 'Audit CTF', 'sub_audit')
  const ok = (await get(app, '/admin/audit/verify')).json()
  t.equal(ok.ok, true)
  t.ok(ok.entries >= 3)
  t.equal(ok.lastSeq, ok.entries)
  t.match(ok.lastMac, /^[0-9a-f]{64}$/)
  const anchor = `${ok.lastSeq}:${ok.lastMac}`
  t.match((await get(app, `/admin/audit/verify?anchor=${anchor}`)).json(), { ok: true, lastSeq: ok.lastSeq }, 'it reaches its own head')
  t.match((await get(app, `/admin/audit/verify?anchor=${ok.lastSeq + 1}:${ok.lastMac}`)).json(), { ok: false, badSeq: ok.lastSeq + 1, problem: 'truncated' }, 'an anchor past the end')
  const garbled = await get(app, '/admin/audit/verify?anchor=3:XYZ')
  t.equal(garbled.statusCode, 400)
  t.match(garbled.json(), { error: 'invalid_request', field: 'anchor' })

  const db = new DatabaseSync(config.databaseUrl.replace(/^sqlite:/, ''))
  t.teardown(() => db.close())
  db.prepare("UPDATE audit_log SET detail = '{\"plan\":\"pro\"}' WHERE seq = 2").run()
  const bad = (await get(app, '/admin/audit/verify')).json()
  t.equal(bad.ok, false)
  t.equal(bad.badSeq, 2)
  t.equal(bad.problem, 'modified')
  t.match(bad.reason, /MAC/)

  // An edit that leaves no JSON: named by its seq, and the tenant's view still opens.
  db.prepare("UPDATE audit_log SET detail = 'not json' WHERE seq = 1").run()
  const unreadable = await get(app, '/admin/audit/verify')
  t.equal(unreadable.statusCode, 200)
  t.match(unreadable.json(), { ok: false, badSeq: 1, problem: 'modified', reason: 'its detail is not JSON' })
  const tenant = db.prepare('SELECT tenant FROM audit_log WHERE seq = 1').get() as { tenant: string }
  const view = await get(app, `/admin/tenants/${tenant.tenant}`)
  t.equal(view.statusCode, 200)
  t.same(view.json().audit[0].detail, { unreadable_detail: 'not json' })
})

t.test('replay: an unmatched event matches once its tenant is known; history is kept', async (t) => {
  const { app, store, config } = await buildTestApp(t, { env: ENV })
  const base = Math.floor(Date.now() / 1000)
  const failed = makeEvent('invoice.payment_failed', invoice({ subscription: 'sub_late' }), { created: base + 10 })
  t.same((await deliver(app, failed)).json(), { status: 'unmatched', type: 'invoice.payment_failed' })
  // This release applies it when the subscription's tenant appears; an older one did not.
  asLeftByOlderRelease(config.databaseUrl, failed.id)
  const id = await paidTenant(app, 'Late CTF', 'sub_late', base)

  const r = await post(app, `/admin/events/${failed.id}/replay`)
  t.equal(r.statusCode, 200)
  t.same(r.json(), {
    event_id: failed.id,
    replay_id: `${failed.id}:replay:1`,
    original_outcome: 'unmatched',
    result: { status: 'ok', type: 'invoice.payment_failed', tenant_id: id, tenant_state: 'past_due' }
  })
  t.equal((await store.getEvent(failed.id))?.outcome, 'unmatched', 'the original row is untouched')
  t.equal((await store.getEvent(`${failed.id}:replay:1`))?.tenant, id)

  // A second replay gets the next number and, the change already applied, changes nothing.
  const second = (await post(app, `/admin/events/${failed.id}/replay`)).json()
  t.equal(second.replay_id, `${failed.id}:replay:2`)
  t.equal(second.result.tenant_state, 'past_due')
  const ofReplay = (await post(app, `/admin/events/${encodeURIComponent(`${failed.id}:replay:1`)}/replay`)).json()
  t.equal(ofReplay.replay_id, `${failed.id}:replay:3`, 'a replay of a replay counts on the original')

  // Ordering still holds: an older change replayed after a newer one is stale.
  const older = makeEvent('invoice.paid', invoice({ subscription: 'sub_late' }), { created: base + 1 })
  t.equal((await deliver(app, older)).json().status, 'stale')
  t.equal((await post(app, `/admin/events/${older.id}/replay`)).json().result.status, 'stale')

  const missing = await post(app, '/admin/events/evt_nope/replay')
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().error, 'event_not_found')

  // The longest id the webhook stores: its replays' ids are longer, and can be replayed too.
  const longest = makeEvent('invoice.payment_failed', invoice({ subscription: 'sub_none' }), { id: `evt_${'L'.repeat(251)}` })
  t.equal((await deliver(app, longest)).json().status, 'unmatched')
  t.equal((await post(app, `/admin/events/${longest.id}/replay`)).json().replay_id, `${longest.id}:replay:1`)
  const again = await post(app, `/admin/events/${longest.id}:replay:1/replay`)
  t.equal(again.statusCode, 200, again.body)
  t.equal(again.json().replay_id, `${longest.id}:replay:2`)
  t.equal((await post(app, `/admin/events/${'L'.repeat(301)}/replay`)).statusCode, 400, 'past any id stored: refused unread')

  const events = (await get(app, '/admin/events?limit=3')).json().events
  t.equal(events.length, 3)
  t.ok(events.every((e: { payload?: string }) => e.payload === undefined))
})

t.test('events: of one outcome, a page at a time by cursor, exact across events received in the same millisecond', async (t) => {
  const { app, store } = await buildTestApp(t, { env: ENV })
  // Through the webhook: a renewal of a tenant, and an invoice of a subscription no tenant has.
  const delivered = [makeEvent('invoice.payment_failed', invoice({ subscription: 'sub_nobody' }))]
  await paidTenant(app, 'Events CTF', 'sub_events')
  delivered.push(makeEvent('invoice.paid', invoice({ subscription: 'sub_events' })))
  for (const e of delivered) await deliver(app, e)
  // And many at once, as a burst of webhooks is recorded: one millisecond, the id to order them.
  const received = '2099-01-01T00:00:00.000Z'
  const burst = ['ok', 'unmatched', 'ok', 'unmatched', 'ok', 'unmatched', 'ok', 'unmatched', 'stale'].map((outcome, i) =>
    ({ id: `evt_burst_${'41735862a9'[i]}`, type: 'invoice.paid', created: 1_900_000_000, received, outcome, tenant: null, payload: '{}' }) as StripeEventRecord)
  await store.transaction(async (tx) => { for (const e of burst) await tx.recordEvent(e) })

  const all = await store.listEvents({ limit: 1000 })
  t.equal(all.length, burst.length + 3, 'the checkout, the two delivered and the burst')
  type Summary = { id: string, outcome: string, received: string }
  const pages = async (query: string): Promise<Summary[][]> => {
    const out: Summary[][] = []
    let next: string | null = null
    do {
      const r = await get(app, `/admin/events?${query}${next === null ? '' : `&after=${next}`}`)
      t.equal(r.statusCode, 200, `${query} after ${next}`)
      out.push(r.json().events)
      next = r.json().next
    } while (next !== null)
    return out
  }
  t.match((await get(app, '/admin/events?outcome=ignored')).json(), { error: 'invalid_request', field: 'outcome' }, 'ignored events are answered, never stored: not a filter that could only be empty')
  for (const outcome of [undefined, 'unmatched', 'ok', 'stale']) {
    const expected = all.filter((e) => outcome === undefined || e.outcome === outcome).map((e) => e.id)
    for (const limit of [1, 2, 4, 500]) {
      const query = `limit=${limit}${outcome === undefined ? '' : `&outcome=${outcome}`}`
      const got = await pages(query)
      t.same(got.flat().map((e) => e.id), expected, `${query}: each once, the last received first`)
      t.ok(got.every((page) => page.length <= limit && page.every((e) => outcome === undefined || e.outcome === outcome)), `${query}: pages of at most ${limit}, of that outcome only`)
      t.equal(got.length, Math.max(1, Math.ceil(expected.length / limit)), `${query}: the last full page names no next`)
    }
  }
  const unmatched = (await get(app, '/admin/events?outcome=unmatched')).json()
  t.same(unmatched.events.map((e: Summary) => e.id), ['evt_burst_8', 'evt_burst_3', 'evt_burst_2', 'evt_burst_1', delivered[0]!.id], 'the burst first, by id, then the older delivery')
  t.same(Object.keys(unmatched.events[0]).sort(), ['created', 'id', 'outcome', 'received', 'tenant', 'type'], 'summaries, no payload')
  t.equal(unmatched.next, null)

  // A forged or malformed cursor is refused, naming the field; so is an outcome no event has.
  const refused: Array<[string, string]> = [
    [`after=${tenantCursor({ createdAt: received, id: 'a'.repeat(32) })}`, 'after'],
    [`after=${Buffer.from(JSON.stringify(['events', '2099-01-01', 'evt_1'])).toString('base64url')}`, 'after'],
    [`after=${Buffer.from(JSON.stringify(['events', received, 'evt 1'])).toString('base64url')}`, 'after'],
    [`after=${Buffer.from(JSON.stringify(['events', received, 'evt_1', 2])).toString('base64url')}`, 'after'],
    [`after=${Buffer.from(JSON.stringify(['tenants', received, 'evt_1'])).toString('base64url')}`, 'after'],
    ['after=bm90LWEtY3Vyc29y', 'after'], ['after=', 'after'], ['after=a%2Fb', 'after'], [`after=${'a'.repeat(MAX_EVENT_CURSOR + 1)}`, 'after'],
    ['outcome=bogus', 'outcome'], ['outcome=OK', 'outcome'], ['outcome=', 'outcome'], ['outcome=ok&outcome=unmatched', 'outcome'],
    ['before=x', 'before']
  ]
  for (const [query, field] of refused) {
    const r = await get(app, `/admin/events?${query}`)
    t.equal(r.statusCode, 400, query)
    t.match(r.json(), { error: 'invalid_request', field, message: new RegExp(field) }, `${query} names ${field}`)
  }
  // The longest cursor this server gives out (a replay of a 255-character id) is taken.
  const longest = eventCursor({ received, id: `${'"'.repeat(255)}:replay:10000` })
  t.ok(longest.length <= MAX_EVENT_CURSOR, `${longest.length} characters`)
  const fromLongest = await get(app, `/admin/events?after=${longest}`)
  t.equal(fromLongest.statusCode, 200)
  t.same(fromLongest.json().events.map((e: Summary) => e.id), all.filter((e) => e.received < received).map((e) => e.id), 'the events received before it')
})

t.test('replay: an event of the other Stripe mode than the key now configured is refused and changes nothing', async (t) => {
  const test = 'sk_test_' + 'x'.repeat(24)
  const live = 'sk_live_' + 'x'.repeat(24)
  const { store } = storeWithOverrides(t)
  const start = async (key: string) => (await buildTestApp(t, { store, env: { ...ENV, STRIPE_SECRET_KEY: key, STRIPE_API_BASE: 'http://127.0.0.1:9' } })).app
  // Recorded while the account ran on a test key: a Payment Link's checkout, made elsewhere.
  const before = await start(test)
  const event = makeEvent('checkout.session.completed', checkoutSession({ tenantId: null, plan: 'standard', subscription: 'sub_test_mode' }))
  t.equal((await deliver(before, event)).json().status, 'ok')
  await before.close()
  const tenants = await store.countTenants()

  // The same store, now on the live key: run again, it would bill a live server for a test purchase.
  const after = await start(live)
  const r = await post(after, `/admin/events/${event.id}/replay`)
  t.equal(r.statusCode, 409)
  t.same(r.json(), { error: 'conflict', message: `Event ${event.id} is from Stripe's test mode and STRIPE_SECRET_KEY is a live key: it is not replayed.` })
  t.equal(await store.getEvent(`${event.id}:replay:1`), undefined, 'no replay recorded')
  t.equal(await store.countTenants(), tenants, 'no tenant made')
  await after.close()

  // Under a key of its own mode it replays as before.
  const again = await start(test)
  t.equal((await post(again, `/admin/events/${event.id}/replay`)).json().replay_id, `${event.id}:replay:1`)
})

t.test('replay: an event that made a tenant applies to it again and makes no other', async (t) => {
  const { app, store } = await buildTestApp(t, { env: ENV })
  // A one-off Payment Link: no tenant id, no subscription; its payment adopts a new tenant.
  const oneOff = makeEvent('checkout.session.completed', { ...checkoutSession({ subscription: null }), mode: 'payment' })
  const first = (await deliver(app, oneOff)).json()
  t.match(first, { status: 'ok', tenant_state: 'active' })
  // A subscription made elsewhere: adopted by its subscription, which a replay would find too.
  const bySub = makeEvent('checkout.session.completed', checkoutSession({ subscription: 'sub_elsewhere', name: 'Elsewhere' }))
  const second = (await deliver(app, bySub)).json()

  for (const [event, original] of [[oneOff, first], [bySub, second]] as const) {
    const r = (await post(app, `/admin/events/${event.id}/replay`)).json()
    t.match(r, { replay_id: `${event.id}:replay:1`, original_outcome: 'ok', result: { status: 'ok', tenant_id: original.tenant_id } }, `${event.id}: the tenant it made`)
    t.equal((await store.getEvent(`${event.id}:replay:1`))?.tenant, original.tenant_id)
  }
  t.equal(await store.countTenants(), 2, 'no tenant made by a replay')
  t.same((await store.listJobs({})).map((j) => [j.kind, j.tenant]), [['provision', first.tenant_id], ['provision', second.tenant_id]], 'nor a server')
})

t.test('export: every tenant, and no secret anywhere', async (t) => {
  const { app } = await buildTestApp(t, { env: ENV })
  const a = await pendingTenant(app, 'One')
  const b = await paidTenant(app, 'Two', 'sub_two')
  const r = await get(app, '/admin/tenants/export')
  t.equal(r.statusCode, 200)
  const body = r.json()
  t.equal(body.count, 2)
  t.same(body.tenants.map((x: { tenant_id: string }) => x.tenant_id), [a, b], 'oldest first')
  t.ok(Date.parse(body.exported_at) > 0)
  for (const secret of [TOKEN, TEST_WEBHOOK_SECRET, ENV.SECRET_KEY, ENV.PROVISION_AUDIT_SECRET]) t.notMatch(r.body, secret)
  t.notMatch(r.body, /token=/, 'no welcome link')
})
