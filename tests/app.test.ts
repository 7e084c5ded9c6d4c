import t from 'tap'
import { buildTestApp } from './helpers/build-app.ts'
import type { Store } from '../api/store/store.ts'
import { SqliteStore } from '../api/store/sqlite.ts'

t.test('health and readiness', async (t) => {
  const { app } = await buildTestApp(t)
  t.same((await app.inject('/healthz')).json(), { status: 'ok' })
  t.same((await app.inject('/readyz')).json(), { status: 'ready', store: 'sqlite' })
})

t.test('readyz is 503 when the store does not answer', async (t) => {
  const inner = new SqliteStore({ path: ':memory:' })
  t.teardown(() => inner.close())
  const store = Object.create(inner) as Store
  store.ping = async () => { throw new Error('database is locked') }
  const { app } = await buildTestApp(t, { store })
  const r = await app.inject('/readyz')
  t.equal(r.statusCode, 503)
  t.same(r.json(), { error: 'not_ready', message: 'The store is not reachable.' })
})

t.test('openapi.json is generated from the route schemas', async (t) => {
  const { app } = await buildTestApp(t)
  const doc = (await app.inject('/openapi.json')).json()
  t.equal(doc.openapi.slice(0, 2), '3.')
  for (const path of ['/billing/checkout', '/billing/webhook', '/billing/success', '/tenants/{id}/status', '/healthz', '/readyz']) {
    t.ok(doc.paths[path], path)
  }
  const checkout = doc.paths['/billing/checkout'].post
  t.same(checkout.requestBody.content['application/json'].schema.required, ['plan'])
  t.ok(checkout.requestBody.content['application/x-www-form-urlencoded'], 'form bodies documented')
  t.ok(doc.paths['/tenants/{id}/status'].get.responses['200'].content['application/json'].schema.properties.state.anyOf)
})

t.test('API misses are JSON 404s', async (t) => {
  const { app } = await buildTestApp(t)
  for (const url of ['/billing/nope', '/tenants/x', '/admin/tenants', '/healthz/x']) {
    const r = await app.inject(url)
    t.equal(r.statusCode, 404, url)
    t.equal(r.json().error, 'not_found', url)
  }
  const post = await app.inject({ method: 'POST', url: '/pricing' })
  t.equal(post.json().error, 'not_found', 'non-GET misses are JSON too')
})

t.test('checkout is rate limited per client with Retry-After', async (t) => {
  const { app, store } = await buildTestApp(t, { env: { CHECKOUT_RATE_LIMIT: '3' } })
  const codes: number[] = []
  for (let i = 0; i < 5; i++) {
    const r = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo' }, remoteAddress: '203.0.113.7' })
    codes.push(r.statusCode)
    if (r.statusCode === 429) {
      t.equal(r.json().error, 'rate_limited')
      t.match(r.headers['retry-after'], /^\d+$/)
    }
  }
  t.same(codes, [200, 200, 200, 429, 429])
  t.equal(await store.countTenants(), 3, 'a limited request creates nothing')
  const other = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo' }, remoteAddress: '203.0.113.8' })
  t.equal(other.statusCode, 200, 'another client is not affected')
})

t.test('behind a trusted proxy the limit keys on X-Forwarded-For', async (t) => {
  const { app } = await buildTestApp(t, { env: { CHECKOUT_RATE_LIMIT: '1', TRUST_PROXY: '127.0.0.1' } })
  const send = (xff: string) => app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo' }, remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': xff } })
  t.equal((await send('198.51.100.1')).statusCode, 200)
  t.equal((await send('198.51.100.1')).statusCode, 429)
  t.equal((await send('198.51.100.2')).statusCode, 200)
})
