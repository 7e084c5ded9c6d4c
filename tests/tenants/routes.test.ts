import t from 'tap'
import { buildTestApp } from '../helpers/build-app.ts'

t.test('status of a tenant', async (t) => {
  const { app } = await buildTestApp(t, { env: { BASE_DOMAIN: 'ctf.example.org', SECRET_KEY: 'status-secret-key-123456789' } })
  const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Ünïcode Night!', email: 'private@buyer.test' } })).json().tenant_id
  const r = await app.inject(`/tenants/${id}/status`)
  t.equal(r.statusCode, 200)
  t.equal(r.headers['cache-control'], 'no-store')
  const s = r.json()
  t.match(s, {
    tenant_id: id, name: 'Ünïcode Night!', plan: 'solo', state: 'provisioning', billing: 'pending', infra: 'none',
    subscription_id: null, error: null, paid_at: null, ready_at: null, canceled_at: null
  })
  t.equal(s.fqdn, `unicode-night-${id.slice(0, 6)}.ctf.example.org`)
  t.equal(s.url, `https://${s.fqdn}/`)
  t.notOk(r.body.includes('private@buyer.test'), 'no email')
  t.notOk(r.body.includes('status-secret-key'), 'no secret')
  t.same(Object.keys(s).sort(), ['billing', 'canceled_at', 'created_at', 'error', 'fqdn', 'infra', 'name', 'paid_at', 'plan', 'ready_at', 'state', 'subscription_id', 'tenant_id', 'updated_at', 'url'])
})

t.test('bad and unknown ids', async (t) => {
  const { app } = await buildTestApp(t)
  for (const bad of ['xyz', 'A'.repeat(32), 'a'.repeat(31), 'a'.repeat(33), '../../etc']) {
    const r = await app.inject(`/tenants/${encodeURIComponent(bad)}/status`)
    t.equal(r.statusCode, 400, bad)
    t.equal(r.json().error, 'invalid_request', bad)
    t.equal(r.json().field, 'id', bad)
  }
  const missing = await app.inject(`/tenants/${'0'.repeat(32)}/status`)
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().error, 'tenant_not_found')
})
