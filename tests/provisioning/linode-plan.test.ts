// LINODE_PLAN, as DESIGN §4 has it: unset, every plan's server is g6-standard-2; `per-plan`,
// each plan's own type from api/plans.ts; any other value, that one type for every plan. The
// server spec and the settings check read the same choice.
import t from 'tap'
import { loadConfig } from '../../api/config.ts'
import { serverSpecFor } from '../../api/provisioning/provision.ts'
import { linodePreflight, preflightApi, preflightSettings } from '../../api/provisioning/linode-preflight.ts'
import { buildTestApp } from '../helpers/build-app.ts'
import { startFakeLinode } from '../helpers/fake-linode.ts'
import { runAll } from '../helpers/job-runner.ts'
import { checkoutSession, deliver, makeEvent, subscription } from '../helpers/stripe-events.ts'
import { makeTenant } from '../store/contract.ts'

const PLANS = ['solo', 'standard', 'pro'] as const

function typesFor (env: Record<string, string>): string[] {
  const config = loadConfig(env)
  return PLANS.map((plan) => serverSpecFor(makeTenant({ plan }), config).serverType)
}

t.test('unset or empty: g6-standard-2 for every plan (DESIGN §4)', async (t) => {
  t.same(typesFor({}), ['g6-standard-2', 'g6-standard-2', 'g6-standard-2'])
  t.same(typesFor({ LINODE_PLAN: '' }), ['g6-standard-2', 'g6-standard-2', 'g6-standard-2'], 'empty, as in .env.example')
  t.same(preflightSettings(loadConfig({})).serverTypes, PLANS.map((plan) => ({ plan, type: 'g6-standard-2' })), 'the settings check looks at that type')
})

t.test('per-plan: each plan\'s own type from the catalogue', async (t) => {
  t.equal(loadConfig({ LINODE_PLAN: ' per-plan ' }).linode.plan, 'per-plan')
  t.same(typesFor({ LINODE_PLAN: 'per-plan' }), ['g6-standard-1', 'g6-standard-2', 'g6-standard-4'])
  t.same(preflightSettings(loadConfig({ LINODE_PLAN: 'per-plan' })).serverTypes, [{ plan: 'solo', type: 'g6-standard-1' }, { plan: 'standard', type: 'g6-standard-2' }, { plan: 'pro', type: 'g6-standard-4' }])
})

t.test('one type: that type for every plan', async (t) => {
  t.same(typesFor({ LINODE_PLAN: 'g6-dedicated-4' }), ['g6-dedicated-4', 'g6-dedicated-4', 'g6-dedicated-4'])
  t.same(preflightSettings(loadConfig({ LINODE_PLAN: 'g6-dedicated-4' })).serverTypes.map((s) => s.type), ['g6-dedicated-4', 'g6-dedicated-4', 'g6-dedicated-4'])
  t.throws(() => loadConfig({ LINODE_PLAN: 'g6 standard 2' }), { message: /^LINODE_PLAN: must be per-plan \(each plan's own server type\) or one Linode type id for every plan, like g6-standard-2, got "g6 standard 2"$/ })
})

t.test('the settings check asks Linode about the types of the mode, each once', async (t) => {
  const fake = await startFakeLinode(t, { domains: ['ctfhive.test'] })
  const typeChecks = async (env: Record<string, string>) => {
    const config = loadConfig({ LINODE_API_TOKEN: fake.token, LINODE_API_BASE: fake.url, BASE_DOMAIN: 'ctfhive.test', ...env })
    const checks = await linodePreflight(preflightApi(config), preflightSettings(config))
    return checks.filter((c) => c.check.startsWith('type ')).map((c) => [c.check, c.result])
  }
  t.same(await typeChecks({}), [['type g6-standard-2 (solo, standard, pro)', 'pass']], 'the default')
  t.same(await typeChecks({ LINODE_PLAN: 'per-plan' }), [['type g6-standard-1 (solo)', 'warn'], ['type g6-standard-2 (standard)', 'pass'], ['type g6-standard-4 (pro)', 'pass']])
  t.same(await typeChecks({ LINODE_PLAN: 'g6-standard-4' }), [['type g6-standard-4 (solo, standard, pro)', 'pass']])
})

t.test('one type for every plan: a plan change resizes nothing', async (t) => {
  // LINODE_PLAN empty: the default, not the test helper's per-plan.
  const { app, store, executor } = await buildTestApp(t, { runJobs: false, env: { LINODE_PLAN: '', WEBHOOK_WAIT_MS: '0' } })
  const id: string = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'One Type CTF' } })).json().tenant_id
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'solo', subscription: 'sub_one' })))
  await runAll(app, store)
  const live = (await store.getTenant(id))!
  t.equal(executor.servers.get(live.serverId!)?.type, 'g6-standard-2', 'a Solo server of the default type')

  await deliver(app, makeEvent('customer.subscription.updated', subscription({ id: 'sub_one', tenantId: id, status: 'active', lookupKey: 'ctfhive_pro_monthly' })))
  await runAll(app, store)
  t.match(await store.getTenant(id), { plan: 'pro', infra: 'ready', serverId: live.serverId, error: null })
  t.equal(executor.calls.resize, 0, 'Linode is asked for no resize')
  const audit = await store.listAudit({ tenant: id })
  const trail = audit.map((e) => e.action)
  t.same(trail.slice(trail.indexOf('plan.changed')), ['plan.changed', 'server.resized', 'resize.done'], 'the resize job finds the type right, checks the CTF answers, and ends')
  t.match(audit.find((e) => e.action === 'server.resized')?.detail, { server: live.serverId, type: 'g6-standard-2', unchanged: true })
  t.same((await store.listJobs({ tenant: id })).map((j) => `${j.kind}:${j.status}`), ['provision:done', 'resize:done'])
})
