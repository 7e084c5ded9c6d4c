import t from 'tap'
import { buildTestApp, storeWithOverrides } from '../helpers/build-app.ts'
import { makeTenant } from '../store/contract.ts'
import { checkoutSession, deliver, makeEvent } from '../helpers/stripe-events.ts'

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
  for (const bad of ['xyz', 'G'.repeat(32), 'a'.repeat(31), 'A'.repeat(33), '../../etc']) {
    const r = await app.inject(`/tenants/${encodeURIComponent(bad)}/status`)
    t.equal(r.statusCode, 400, bad)
    t.equal(r.json().error, 'invalid_request', bad)
    t.equal(r.json().field, 'id', bad)
  }
  const missing = await app.inject(`/tenants/${'0'.repeat(32)}/status`)
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().error, 'tenant_not_found')
})

t.test('an id copied in upper case is still 32 hex characters: it finds its tenant', async (t) => {
  const { app } = await buildTestApp(t)
  const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Upper CTF' } })).json().tenant_id
  const r = await app.inject(`/tenants/${id.toUpperCase()}/status`)
  t.equal(r.statusCode, 200)
  t.equal(r.json().tenant_id, id, 'answered with the id as issued')
  const unknown = await app.inject(`/tenants/${'ABCDEF'.repeat(5)}AB/status`)
  t.equal(unknown.statusCode, 404, 'an unknown one is not found, not malformed')
  // The credential route takes the same id (its token is made from the lowercase one).
  const cred = await app.inject(`/tenants/${id.toUpperCase()}/credentials?token=${'0'.repeat(40)}`)
  t.equal(cred.json().error, 'forbidden', 'looked up, then refused for the wrong token')
})

t.test('a tenant keeps its address when BASE_DOMAIN changes; one an older release wrote gets the address of its day', async (t) => {
  const { store } = storeWithOverrides(t)
  // A row as a release before migration 006 wrote it: no stored address.
  const legacy = makeTenant({ fqdn: null, slug: 'legacy-0a0b0c' })
  await store.insertTenant(legacy)
  const firstLog: Array<Record<string, unknown>> = []
  // No jobs run here: the webhook must not wait its 10 s for a provisioning that never comes.
  const first = (await buildTestApp(t, { store, runJobs: false, logLines: firstLog, env: { BASE_DOMAIN: 'first-hive.example', WEBHOOK_WAIT_MS: '0' } })).app
  t.equal((await store.getTenant(legacy.id))!.fqdn, 'legacy-0a0b0c.first-hive.example', 'stored at start, under the domain of its day')
  t.match(firstLog.find((l) => l.msg === 'gave tenants made by an older release their address under BASE_DOMAIN'), { level: 30, tenants: 1, baseDomain: 'first-hive.example' })
  const early = (await first.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Early CTF' } })).json().tenant_id
  const earlyFqdn = `early-ctf-${early.slice(0, 6)}.first-hive.example`
  t.equal((await store.getTenant(early))!.fqdn, earlyFqdn)
  t.match((await store.listAudit({ tenant: early })).find((e) => e.action === 'tenant.created')?.detail, { fqdn: earlyFqdn }, 'the audit entry names it')
  await deliver(first, makeEvent('checkout.session.completed', checkoutSession({ tenantId: early, plan: 'solo', subscription: 'sub_early' })))
  t.equal((await store.getTenant(early))!.fqdn, earlyFqdn, 'paid: its server is made there')
  // A checkout begun before the change and paid after it.
  const straddling = (await first.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Straddling CTF' } })).json().tenant_id
  t.equal((await store.getTenant(straddling))!.fqdn, `straddling-ctf-${straddling.slice(0, 6)}.first-hive.example`)

  const secondLog: Array<Record<string, unknown>> = []
  const second = (await buildTestApp(t, { store, runJobs: false, logLines: secondLog, env: { BASE_DOMAIN: 'second-hive.example', WEBHOOK_WAIT_MS: '0' } })).app
  t.notOk(secondLog.some((l) => String(l.msg).startsWith('gave tenants')), 'nobody left to place')
  for (const [id, fqdn] of [[early, earlyFqdn], [legacy.id, 'legacy-0a0b0c.first-hive.example']]) {
    const s = (await second.inject(`/tenants/${id}/status`)).json()
    t.match(s, { fqdn, url: `https://${fqdn}/` }, `${fqdn} stays where it was made`)
  }
  await deliver(second, makeEvent('checkout.session.completed', checkoutSession({ tenantId: straddling, plan: 'solo', subscription: 'sub_straddling' })))
  const settled = `straddling-ctf-${straddling.slice(0, 6)}.second-hive.example`
  t.equal((await store.getTenant(straddling))!.fqdn, settled, 'paid after the change: its first server is made under the new domain')
  t.match((await store.listAudit({ tenant: straddling })).find((e) => e.action === 'provision.queued')?.detail, { fqdn: settled })
  t.match((await store.listAudit({ tenant: early })).find((e) => e.action === 'provision.queued')?.detail, { fqdn: earlyFqdn })
  const late = (await second.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Late CTF' } })).json().tenant_id
  t.equal((await second.inject(`/tenants/${late}/status`)).json().fqdn, `late-ctf-${late.slice(0, 6)}.second-hive.example`, 'a new tenant under the new domain')
})

t.test('a start that cannot store the older rows\' addresses still serves them, at the address of today', async (t) => {
  const { store } = storeWithOverrides(t)
  const legacy = makeTenant({ fqdn: null, slug: 'legacy-0d0e0f' })
  await store.insertTenant(legacy)
  store.assignFqdns = async () => { throw new Error('database is locked') }
  const logLines: Array<Record<string, unknown>> = []
  const { app } = await buildTestApp(t, { store, runJobs: false, logLines, env: { BASE_DOMAIN: 'third-hive.example' } })
  t.match(logLines.find((l) => l.level === 50), { msg: 'could not store the address of tenants made by an older release; the next start tries again', err: { message: 'database is locked' } })
  t.equal((await app.inject(`/tenants/${legacy.id}/status`)).json().fqdn, 'legacy-0d0e0f.third-hive.example')
  t.equal((await app.inject('/readyz')).statusCode, 200, 'the service is up')
})
