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

type FakeLinode = Awaited<ReturnType<typeof startFakeLinode>>
type Built = Awaited<ReturnType<typeof buildTestApp>>

/**
 * The app on the Linode executor against a fake Linode serving ctf.example.org: no sleeps, and
 * the CTF healthy while `healthy()` says so.
 */
async function linodeApp (t: Parameters<typeof buildTestApp>[0], opts: { getsPerStep: number, env?: Record<string, string>, healthy?: () => boolean, logLines?: Array<Record<string, unknown>> }): Promise<Built & { linode: FakeLinode }> {
  const linode = await startFakeLinode(t, { domains: ['ctf.example.org'], getsPerStep: opts.getsPerStep })
  const env = { LINODE_API_TOKEN: linode.token, LINODE_API_BASE: linode.url, BASE_DOMAIN: 'ctf.example.org', WEBHOOK_WAIT_MS: '200', ...opts.env }
  const healthy = opts.healthy ?? (() => true)
  const executor = LinodeExecutor.fromConfig(testConfig(env, t), { userData: () => '', sleep: async () => {}, healthFetch: async () => ({ status: healthy() ? 200 : 502, body: '' }) })
  return { linode, ...await buildTestApp(t, { executor, env, logLines: opts.logLines, jobs: { pollIntervalMs: 5 } }) }
}

/** A tenant checked out and paid for on `plan`, once its server is ready. */
async function readyTenant ({ app, store }: Built, plan: string, name: string, sub: string): Promise<string> {
  const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan, name } })).json().tenant_id
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan, subscription: sub })))
  await until(async () => (await store.getTenant(id))?.infra === 'ready', 'ready')
  return id
}

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

t.test("an adopted server of another plan's type is kept, the audit names the type it has, and it is resized to the plan's", async (t) => {
  const logLines: Array<Record<string, unknown>> = []
  const { app, store, linode } = await linodeApp(t, { getsPerStep: 1, logLines })
  const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'pro', name: 'Kept CTF' } })).json().tenant_id
  // Made by an earlier try under the Solo plan, whose answer was lost.
  const earlier = linode.addInstance({ label: `ctf-kept-ctf-${id.slice(0, 6)}`, type: 'g6-standard-1', tags: ['ctfhive', `tenant:${id}`], status: 'running' })
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'pro', subscription: 'sub_kept' })))
  await until(async () => (await store.getTenant(id))?.infra === 'ready', 'ready')
  t.same([...linode.instances.keys()], [earlier.id], 'the earlier server, no second one')
  const adopted = (await store.listAudit({ tenant: id })).find((e) => e.action === 'server.adopted')
  t.match(adopted?.detail, { server: String(earlier.id), type: 'g6-standard-1', planned_type: 'g6-standard-4' }, 'the type it has, and the one the plan would get')
  t.ok(logLines.some((l) => l.msg === "adopted a server of another type than the plan's" && l.type === 'g6-standard-1'), 'the operator is told')
  // Claimed while its tenant was still being provisioned (the health wait frees its slot), the
  // resize looks again 30 s later: brought forward here.
  for (const j of await store.listJobs({ tenant: id })) if (j.kind === 'resize' && j.status === 'queued') await store.updateJob(j.id, { runAfter: 0 })
  app.jobs.kick()
  await until(async () => (await store.listJobs({ tenant: id })).some((j) => j.kind === 'resize' && j.status === 'done'), 'the resize')
  t.match(linode.instances.get(earlier.id), { type: 'g6-standard-4', status: 'running' }, 'then resized to the plan\'s type')
  t.match((await store.listAudit({ tenant: id })).find((e) => e.action === 'resize.queued')?.detail, { server: String(earlier.id), from: 'g6-standard-1', to: 'g6-standard-4' })
})

t.test('a plan change resizes the Linode server (warm, resizing, then running as the new type) and waits for its health', async (t) => {
  let healthy = true
  const built = await linodeApp(t, { getsPerStep: 2, healthy: () => healthy })
  const { app, store, linode } = built
  const id = await readyTenant(built, 'solo', 'Growing CTF', 'sub_grow')
  const [server] = [...linode.instances.values()]
  t.equal(server!.type, 'g6-standard-1')

  healthy = false
  await deliver(app, makeEvent('customer.subscription.updated', subscription({ id: 'sub_grow', tenantId: id, status: 'active', lookupKey: 'ctfhive_pro_monthly' }), { created: Math.floor(Date.now() / 1000) + 5 }))
  await until(async () => (await store.listAudit({ tenant: id })).some((e) => e.action === 'server.resized'), 'the server resized')
  t.match(server, { type: 'g6-standard-4', status: 'running' }, 'the same server, of the Pro type')
  t.equal((await store.listJobs({ tenant: id })).at(-1)?.status, 'running', 'the job waits for the health check')
  t.equal((await app.inject(`/tenants/${id}/status`)).json().state, 'active', 'the tenant stays active meanwhile')
  healthy = true
  await until(async () => (await store.listJobs({ tenant: id })).at(-1)?.status === 'done', 'the resize done')
  const resize = linode.requests.find((r) => r.path === `/linode/instances/${server!.id}/resize`)
  t.same(resize?.body, { type: 'g6-standard-4', allow_auto_disk_resize: true, migration_type: 'warm' })
  t.equal(linode.count('POST', `/linode/instances/${server!.id}/resize`), 1)
  const trail = (await store.listAudit({ tenant: id })).map((e) => e.action)
  t.same(trail.slice(trail.indexOf('plan.changed')), ['plan.changed', 'resize.started', 'server.resized', 'resize.done'])
  t.equal(linode.instances.size, 1)
})

t.test('Linode ending a resize without doing it fails the job for the operator; the tenant stays live', async (t) => {
  // Two polls a step: the job sees the server resizing before it runs again as it was.
  const built = await linodeApp(t, { getsPerStep: 2, env: { PROVISION_MAX_ATTEMPTS: '2' } })
  const { app, store, linode } = built
  const id = await readyTenant(built, 'pro', 'Shrinking CTF', 'sub_shrink')
  const [server] = [...linode.instances.values()]
  server!.resizeFails = true
  await deliver(app, makeEvent('customer.subscription.updated', subscription({ id: 'sub_shrink', tenantId: id, status: 'active', lookupKey: 'ctfhive_solo_monthly' }), { created: Math.floor(Date.now() / 1000) + 5 }))
  await until(async () => (await store.listJobs({ tenant: id })).at(-1)?.status === 'failed', 'the resize failed')
  t.match((await store.listJobs({ tenant: id })).at(-1), { kind: 'resize', attempts: 1, lastError: /Linode ended the resize of server \d+ to g6-standard-1 without it: the server runs as g6-standard-4 again/ })
  t.match(server, { type: 'g6-standard-4', status: 'running' })
  t.match(await store.getTenant(id), { plan: 'solo', infra: 'ready', error: null })
  t.match((await store.listAudit({ tenant: id })).find((e) => e.action === 'resize.failed')?.detail, { step: 'resizing:g6-standard-1', reason: /ended the resize/ })
})

t.test('a resize Linode refuses during its own host migration is asked again once the server has settled', async (t) => {
  const built = await linodeApp(t, { getsPerStep: 1, env: { PROVISION_MAX_ATTEMPTS: '2' } })
  const { app, store, linode } = built
  const id = await readyTenant(built, 'solo', 'Migrating CTF', 'sub_mig')
  const [server] = [...linode.instances.values()]
  const path = `/linode/instances/${server!.id}`
  // Linode starts a maintenance migration just as the resize is asked, and refuses it ("Linode busy.").
  linode.inject({ method: 'POST', path: `${path}/resize`, fault: { before: () => { server!.status = 'migrating' } } })
  // The migration ends by the job's next look: running again, of the type it had.
  let polls = 0
  linode.inject({ method: 'GET', path, times: 100_000, fault: { before: () => { if (server!.status === 'migrating' && ++polls >= 2) server!.status = 'running' } } })
  await deliver(app, makeEvent('customer.subscription.updated', subscription({ id: 'sub_mig', tenantId: id, status: 'active', lookupKey: 'ctfhive_pro_monthly' }), { created: Math.floor(Date.now() / 1000) + 5 }))
  await until(async () => ['done', 'failed'].includes((await store.listJobs({ tenant: id })).at(-1)!.status), 'the resize ended')
  t.match((await store.listJobs({ tenant: id })).at(-1), { kind: 'resize', status: 'done' }, 'the refusal was retried, not taken for the resize')
  t.equal(linode.count('POST', `${path}/resize`), 2, 'asked again after the migration')
  t.match(server, { type: 'g6-standard-4', status: 'running' })
  const audit = await store.listAudit({ tenant: id })
  const trail = audit.map((e) => e.action)
  t.same(trail.slice(trail.indexOf('plan.changed')), ['plan.changed', 'resize.attempt_failed', 'resize.started', 'server.resized', 'resize.done'])
  t.match(audit.find((e) => e.action === 'resize.attempt_failed')?.detail, { step: '', reason: /is busy; the resize to g6-standard-4 is asked again later: Linode API 400: Linode busy/ })
})

t.test('after a change of BASE_DOMAIN a tenant keeps its address: its teardown finds its record in the old zone, and paying again puts it back there', async (t) => {
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

  // Paying again after the teardown: a new server, at the address the tenant already had.
  const back = await deliver(after, makeEvent('customer.subscription.created', subscription({ id: 'sub_back', tenantId: id, status: 'active', plan: 'solo' })))
  t.equal(back.json().status, 'ok', back.body)
  await until(async () => (await store.getTenant(id))?.infra === 'ready', 'ready again')
  t.equal((await store.getTenant(id))!.fqdn, fqdn, 'revived at the address it was made with')
  t.equal((await after.inject(`/tenants/${id}/status`)).json().fqdn, fqdn, 'and the status says so')
  t.same([...oldZone!.records.values()].map((r) => r.name), [fqdn.split('.')[0]], 'its record made again in the old zone')
  t.equal(newZone!.records.size, 0, 'none in the new one')
})

// A token without the Domains scope (401), or a restricted user whose zone grant was removed
// (403): no retry fixes the DNS calls, and the server must not keep billing because of them.
t.test('a teardown Linode refuses the Domains API still destroys the server, and says what it left behind', async (t) => {
  for (const status of [401, 403]) {
    const logLines: Array<Record<string, unknown>> = []
    const built = await linodeApp(t, { getsPerStep: 1, env: { DEPROVISION_GRACE_HOURS: '0' }, logLines })
    const { app, store, linode } = built
    const id = await readyTenant(built, 'solo', 'Scoped CTF', `sub_scope_${status}`)
    const recordId = (await store.getTenant(id))!.dnsRecordId!

    linode.inject({ path: /^\/domains/, times: 1000, fault: { status, body: { errors: [{ reason: 'Your OAuth token is not authorized to use this endpoint.' }] } } })
    await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: `sub_scope_${status}`, tenantId: id, status: 'canceled' })))
    await until(async () => (await store.listJobs({ tenant: id })).some((j) => j.kind === 'deprovision' && (j.status === 'done' || j.status === 'failed')), 'the teardown to end')
    t.match((await store.listJobs({ tenant: id })).at(-1), { kind: 'deprovision', status: 'done' }, `${status}: the teardown ends`)
    t.equal(linode.instances.size, 0, `${status}: the server is destroyed`)
    t.match(await store.getTenant(id), { infra: 'deprovisioned', serverId: null, dnsRecordId: recordId }, `${status}: the record left behind is still named`)
    t.equal([...linode.domains.values()][0]!.records.size, 1, `${status}: the record is still there (Linode refused its removal)`)
    const removed = (await store.listAudit({ tenant: id })).find((e) => e.action === 'dns.removed')
    t.match(removed?.detail, { records: [], left_behind: [recordId], lookup_failed: new RegExp(String(status)), remove_failed: new RegExp(String(status)) }, `${status}: the audit says what was left`)
    t.ok(logLines.some((l) => l.level === 50 && /left DNS records behind/.test(String(l.msg)) && (l.left_behind as string[])?.[0] === recordId), `${status}: an error line for the operator`)
  }
})
