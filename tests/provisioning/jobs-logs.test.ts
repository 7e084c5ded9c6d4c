// The runner's line at the end of each job: a tenant's story (provisioned, resized, torn down)
// can be followed in the logs at the default level, one line per job, none per step or wait.
import t, { type Test } from 'tap'
import { buildTestApp } from '../helpers/build-app.ts'
import { runAll, runOne } from '../helpers/job-runner.ts'
import { checkoutSession, deliver, makeEvent, subscription } from '../helpers/stripe-events.ts'

type Line = Record<string, unknown>

let created = 1_900_000_000
const paid = (id: string) => makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'solo', subscription: 'sub_logs' }), { created: created++ })
const toPro = (id: string) => makeEvent('customer.subscription.updated', subscription({ id: 'sub_logs', tenantId: id, status: 'active', lookupKey: 'ctfhive_pro_monthly' }), { created: created++ })
const cancel = (id: string) => makeEvent('customer.subscription.deleted', subscription({ id: 'sub_logs', tenantId: id, status: 'canceled', lookupKey: 'ctfhive_pro_monthly' }), { created: created++ })

async function setup (t: Test, graceHours: string) {
  const lines: Line[] = []
  const built = await buildTestApp(t, { logLines: lines, runJobs: false, env: { DEPROVISION_GRACE_HOURS: graceHours, WEBHOOK_WAIT_MS: '0' } })
  const id: string = (await built.app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Logs CTF' } })).json().tenant_id
  return { ...built, lines, id }
}

const ends = (lines: Line[]) => lines.filter((l) => l.msg === 'job done' || l.msg === 'job canceled')

t.test('each job that ends writes one info line with the tenant, the job and its kind', async (t) => {
  const { app, store, lines, id } = await setup(t, '0')
  await deliver(app, paid(id))
  await runAll(app, store)
  await deliver(app, toPro(id))
  await runAll(app, store)
  await deliver(app, cancel(id))
  await runAll(app, store)
  const jobs = await store.listJobs({ tenant: id })
  t.same(jobs.map((j) => `${j.kind}:${j.status}`).sort(), ['deprovision:done', 'provision:done', 'resize:done'])
  const logged = ends(lines)
  t.same(logged.map((l) => l.kind), ['provision', 'resize', 'deprovision'], 'one line per job, none per step')
  for (const l of logged) {
    const job = jobs.find((j) => j.kind === l.kind)!
    t.match(l, { level: 30, component: 'jobs', msg: 'job done', tenant: id, job: job.id, status: 'done', step: job.step })
  }
})

t.test('a job ended as no longer wanted says so; a job queued again to wait writes none', async (t) => {
  const { app, store, lines, id } = await setup(t, '72')
  await deliver(app, paid(id))
  await deliver(app, cancel(id))
  // The provisioning, queued before the cancellation, finds its tenant canceled.
  t.ok(await runOne(app, store))
  const provision = (await store.listJobs({ tenant: id })).find((j) => j.kind === 'provision')!
  t.equal(provision.status, 'canceled')
  t.match(ends(lines), [{ level: 30, msg: 'job canceled', tenant: id, job: provision.id, kind: 'provision', status: 'canceled' }])
  // The teardown, made due early, waits out the grace period: queued again, not ended.
  const teardown = (await store.listJobs({ tenant: id })).find((j) => j.kind === 'deprovision')!
  await store.updateJob(teardown.id, { runAfter: 0 })
  t.ok(await runOne(app, store), 'the teardown ran')
  t.match((await store.listJobs({ tenant: id })).filter((j) => j.kind === 'deprovision'), [{ status: 'queued' }])
  t.ok((await store.listAudit({ tenant: id })).some((e) => e.action === 'teardown.postponed'), 'it was postponed')
  t.equal(ends(lines).length, 1, 'no line for the wait')
})
