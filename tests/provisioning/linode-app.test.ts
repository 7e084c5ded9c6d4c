// The whole path through the app: webhook → job → LinodeExecutor → a fake Linode API on the
// wire → DNS → health → active; then cancellation → teardown.
import t from 'tap'
import { buildTestApp } from '../helpers/build-app.ts'
import { startFakeLinode } from '../helpers/fake-linode.ts'
import { checkoutSession, deliver, makeEvent, subscription } from '../helpers/stripe-events.ts'
import { LinodeExecutor } from '../../api/provisioning/linode.ts'
import { createExecutor } from '../../api/provisioning/select.ts'
import { userDataBuilder } from '../../api/provisioning/cloud-init.ts'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import { storeWithOverrides, testConfig } from '../helpers/build-app.ts'
import { until } from '../helpers/until.ts'
import { ACME_SPEC } from '../helpers/server-spec.ts'

t.test('the executor follows LINODE_API_TOKEN', async (t) => {
  t.type(createExecutor(testConfig({}, t)), FakeExecutor)
  const linode = createExecutor(testConfig({ LINODE_API_TOKEN: 'tok-0123456789' }, t))
  t.type(linode, LinodeExecutor)
  t.notOk(JSON.stringify(linode).includes('tok-0123456789'), 'the token does not serialise')
})

t.test('the Linode adapter\'s warnings reach the log the app gives it', async (t) => {
  const linode = await startFakeLinode(t, { domains: ['acme.ctfhive.test'] })
  linode.inject({ path: '/linode/instances', times: 1, fault: { status: 503 } })
  const warned: string[] = []
  const executor = createExecutor(testConfig({ LINODE_API_TOKEN: linode.token, LINODE_API_BASE: linode.url }, t), { warn: (_obj, msg) => { warned.push(msg) } })
  t.same(await executor.findServers(ACME_SPEC), [], 'answered after the retry')
  t.same(warned, ['linode call failed; retrying'])
})

t.test('paid → Linode server → DNS → healthy → active; canceled → torn down', async (t) => {
  const linode = await startFakeLinode(t, { domains: ['ctf.example.org'], getsPerStep: 1 })
  const healthy = new Set<string>()
  const config = testConfig({ LINODE_API_TOKEN: linode.token, LINODE_API_BASE: linode.url, BASE_DOMAIN: 'ctf.example.org' }, t)
  const executor = LinodeExecutor.fromConfig(config, {
    userData: userDataBuilder(config.secretKey),
    sleep: async () => {},
    healthFetch: async (url) => ({ status: healthy.has(new URL(url).hostname) ? 200 : 502, body: '' })
  })
  const { app, store } = await buildTestApp(t, {
    executor,
    env: { LINODE_API_TOKEN: linode.token, LINODE_API_BASE: linode.url, BASE_DOMAIN: 'ctf.example.org', DEPROVISION_GRACE_HOURS: '0', WEBHOOK_WAIT_MS: '200' },
    jobs: { pollIntervalMs: 5 }
  })
  const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'pro', name: 'Wire CTF' } })).json().tenant_id
  const r = await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'pro', subscription: 'sub_wire' })))
  t.equal(r.json().tenant_state, 'provisioning', 'the webhook does not wait for a real server')
  const fqdn = (await app.inject(`/tenants/${id}/status`)).json().fqdn
  await until(async () => (await store.getTenant(id))?.dnsRecordId !== null, 'the DNS record')
  t.equal((await app.inject(`/tenants/${id}/status`)).json().state, 'provisioning', 'not active before the health check passes')
  healthy.add(fqdn)
  await until(async () => (await store.getTenant(id))?.infra === 'ready', 'ready')
  t.equal((await app.inject(`/tenants/${id}/status`)).json().state, 'active')

  t.equal(linode.instances.size, 1, 'exactly one server')
  const [server] = [...linode.instances.values()]
  t.equal(server!.type, 'g6-standard-4', 'the plan’s server type')
  t.ok(server!.tags.includes(`tenant:${id}`))
  t.match(server!.label, /^ctf-wire-ctf-/)
  const zone = [...linode.domains.values()][0]!
  const record = [...zone.records.values()][0]!
  t.equal(record.name, fqdn.split('.')[0])
  t.equal(record.target, server!.ipv4[0])
  const create = linode.requests.find((q) => q.method === 'POST' && q.path === '/linode/instances')!
  t.notOk(JSON.stringify(create.body).includes(config.secretKey), 'no secret in the create request')
  const audit = (await store.listAudit({ tenant: id })).map((e) => e.action)
  t.same(audit, ['tenant.created', 'provision.queued', 'server.created', 'server.running', 'dns.record', 'health.ok', 'provision.ready'])
  t.notOk(JSON.stringify(await store.listAudit({})).includes('root_pass'), 'no root password in the audit')
  const [firewall] = [...linode.firewalls.values()]
  t.same([...firewall!.linodes], [server!.id], 'the server sits behind the Cloud Firewall')
  t.match((await store.listAudit({ tenant: id })).find((e) => e.action === 'server.created')?.detail, { server: String(server!.id), firewall: String(firewall!.id), firewall_status: 'enabled' })

  await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: 'sub_wire', tenantId: id, status: 'canceled' })))
  await until(async () => (await store.getTenant(id))?.infra === 'deprovisioned', 'deprovisioned')
  t.equal(linode.instances.size, 0, 'server deleted')
  t.equal(zone.records.size, 0, 'record deleted')
  t.equal(linode.count('DELETE', '/linode/instances'), 1, 'one deletion')
  t.equal(linode.firewalls.size, 1, 'the shared firewall stays for the next tenant')
})

t.test("an adopted server of another plan's type is kept, and the audit names the type it has", async (t) => {
  const linode = await startFakeLinode(t, { domains: ['ctf.example.org'], getsPerStep: 1 })
  const env = { LINODE_API_TOKEN: linode.token, LINODE_API_BASE: linode.url, BASE_DOMAIN: 'ctf.example.org', WEBHOOK_WAIT_MS: '200' }
  const executor = LinodeExecutor.fromConfig(testConfig(env, t), { userData: () => '', sleep: async () => {}, healthFetch: async () => ({ status: 200, body: '' }) })
  const logLines: Array<Record<string, unknown>> = []
  const { app, store } = await buildTestApp(t, { executor, env, logLines, jobs: { pollIntervalMs: 5 } })
  const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'pro', name: 'Kept CTF' } })).json().tenant_id
  // Made by an earlier try under the Solo plan, whose answer was lost.
  const earlier = linode.addInstance({ label: `ctf-kept-ctf-${id.slice(0, 6)}`, type: 'g6-standard-1', tags: ['ctfhive', `tenant:${id}`], status: 'running' })
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'pro', subscription: 'sub_kept' })))
  await until(async () => (await store.getTenant(id))?.infra === 'ready', 'ready')
  t.same([...linode.instances.keys()], [earlier.id], 'the earlier server, no second one')
  const adopted = (await store.listAudit({ tenant: id })).find((e) => e.action === 'server.adopted')
  t.match(adopted?.detail, { server: String(earlier.id), type: 'g6-standard-1', planned_type: 'g6-standard-4' }, 'the type it has, and the one the plan would get')
  t.ok(logLines.some((l) => l.msg === "adopted a server of another type than the plan's" && l.type === 'g6-standard-1'), 'the operator is told')
})

t.test('after a change of BASE_DOMAIN a tenant keeps its address, and its teardown finds its record in the old zone', async (t) => {
  const linode = await startFakeLinode(t, { domains: ['ctf.example.org', 'hive.example.net'], getsPerStep: 1 })
  const { store } = storeWithOverrides(t)
  const start = async (baseDomain: string) => {
    const env = { LINODE_API_TOKEN: linode.token, LINODE_API_BASE: linode.url, BASE_DOMAIN: baseDomain, DEPROVISION_GRACE_HOURS: '0', WEBHOOK_WAIT_MS: '200' }
    const executor = LinodeExecutor.fromConfig(testConfig(env, t), { userData: () => '', sleep: async () => {}, healthFetch: async () => ({ status: 200, body: '' }) })
    return (await buildTestApp(t, { store, executor, env, jobs: { pollIntervalMs: 5 } })).app
  }
  const [oldZone, newZone] = [...linode.domains.values()]
  const before = await start('ctf.example.org')
  const id = (await before.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Moved CTF' } })).json().tenant_id
  await deliver(before, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'solo', subscription: 'sub_moved' })))
  await until(async () => (await store.getTenant(id))?.infra === 'ready', 'ready')
  const fqdn = `moved-ctf-${id.slice(0, 6)}.ctf.example.org`
  t.same([...oldZone!.records.values()].map((r) => r.name), [fqdn.split('.')[0]])
  const recordId = (await store.getTenant(id))!.dnsRecordId
  await before.close()

  const after = await start('hive.example.net')
  t.equal((await after.inject(`/tenants/${id}/status`)).json().fqdn, fqdn, 'the status keeps the address it was made with')
  await deliver(after, makeEvent('customer.subscription.deleted', subscription({ id: 'sub_moved', tenantId: id, status: 'canceled' })))
  await until(async () => (await store.getTenant(id))?.infra === 'deprovisioned', 'deprovisioned')
  t.equal(oldZone!.records.size, 0, 'its record removed from the zone it was made in')
  t.equal(linode.count('GET', `/domains/${newZone!.id}`), 0, 'the new zone never searched for it')
  t.equal(linode.instances.size, 0)
  t.same((await store.listAudit({ tenant: id })).find((e) => e.action === 'dns.removed')?.detail.records, [recordId])
})
