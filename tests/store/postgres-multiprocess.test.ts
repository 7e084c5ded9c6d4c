// Two real app processes on one PostgreSQL database: what used to break when the seed ran
// as more than one worker (duplicate tenants, double effects, jobs run twice, lost jobs).
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { signPayload } from '../../api/billing/signature.ts'
import { verifyStoredChain } from '../../api/provisioning/audit.ts'
import { PostgresStore } from '../../api/store/postgres.ts'
import type { Job } from '../../api/store/store.ts'
import { TEST_WEBHOOK_SECRET } from '../helpers/build-app.ts'
import { usePostgres } from '../helpers/postgres.ts'
import { reapWithThisProcess } from '../helpers/child-reaper.ts'
import { checkoutSession, invoice, makeEvent, subscription } from '../helpers/stripe-events.ts'

const ENTRY = fileURLToPath(new URL('../helpers/app-process.ts', import.meta.url))
const AUDIT_SECRET = 'multiprocess-audit-secret'

interface AppProcess {
  name: string
  base: string
  child: ChildProcess
}

const server = await usePostgres(t)

/** Starts an app process and resolves once it listens; stopped (SIGTERM, then SIGKILL) in teardown. */
async function startApp (t: Test, name: string, databaseUrl: string, env: Record<string, string> = {}): Promise<AppProcess> {
  const child = spawn(process.execPath, [ENTRY], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: databaseUrl,
      STRIPE_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
      PROVISION_AUDIT_SECRET: AUDIT_SECRET,
      LOG_LEVEL: 'warn',
      CHECKOUT_RATE_LIMIT: '0',
      PG_POOL_SIZE: '4',
      CTFHIVE_JOB_OWNER: `app-${name}`,
      CTFHIVE_JOB_POLL_MS: '20',
      CTFHIVE_JOB_IDLE_MS: '200',
      ...env
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  reapWithThisProcess(child)
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000) })
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  })
  const lines = createInterface({ input: child.stdout! })
  const first = await Promise.race([
    once(lines, 'line').then(([line]) => String(line)),
    once(child, 'exit').then(([code]) => { throw new Error(`app ${name} exited (${String(code)}) before listening: ${stderr}`) })
  ])
  const { port } = JSON.parse(first) as { port: number }
  return { name, base: `http://127.0.0.1:${port}`, child }
}

async function post (app: AppProcess, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number, body: any }> {
  const res = await fetch(`${app.base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  return { status: res.status, body: await res.json() }
}

/** Delivers a signed event as Stripe would. */
function deliver (app: AppProcess, event: unknown): Promise<{ status: number, body: any }> {
  const raw = JSON.stringify(event)
  return fetch(`${app.base}/billing/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'stripe-signature': signPayload(TEST_WEBHOOK_SECRET, raw) },
    body: raw
  }).then(async (res) => ({ status: res.status, body: await res.json() }))
}

async function checkout (app: AppProcess, plan = 'standard'): Promise<string> {
  const res = await post(app, '/billing/checkout', { plan, name: `Multi ${Math.random().toString(36).slice(2, 8)}`, email: 'mp@example.test' })
  if (res.body.status !== 'checkout_not_configured') throw new Error(`checkout failed: ${JSON.stringify(res.body)}`)
  return String(res.body.tenant_id)
}

async function tenantState (app: AppProcess, id: string): Promise<string> {
  const body = await fetch(`${app.base}/tenants/${id}/status`).then((r) => r.json()) as { state: string }
  return body.state
}

/** Polls until `check` holds; a bound (not an assertion on speed) so a broken build fails instead of hanging. */
async function until<T> (what: string, read: () => Promise<T>, check: (v: T) => boolean, boundMs = 60_000): Promise<T> {
  const deadline = Date.now() + boundMs
  for (;;) {
    const v = await read()
    if (check(v)) return v
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}; last: ${JSON.stringify(v)}`)
    await sleep(25)
  }
}

if (server !== undefined) {
  const openDb = async (t: Test, url: string): Promise<PostgresStore> => {
    const store = new PostgresStore({ url, poolSize: 2 })
    await store.migrate()
    t.teardown(() => store.close())
    return store
  }

  t.test('two instances share tenants, events and jobs', async (t) => {
    const url = await server.createDatabase()
    const db = await openDb(t, url)
    const [a, b] = await Promise.all([startApp(t, 'A', url), startApp(t, 'B', url)])

    t.test('checkout on A, webhook on B → one tenant; an invoice on A finds it by subscription', async (t) => {
      const tenantId = await checkout(a)
      const completed = makeEvent('checkout.session.completed', checkoutSession({ tenantId, plan: 'standard', subscription: 'sub_mp_1' }))
      const res = await deliver(b, completed)
      t.equal(res.status, 200)
      t.match(res.body, { status: 'ok', tenant_id: tenantId })
      t.equal(await db.countTenants(), 1, 'one tenant, not a second one made by B')
      t.equal(await db.findTenantIdBySubscription('sub_mp_1'), tenantId, 'B wrote the durable subscription index')

      const paid = makeEvent('invoice.paid', invoice({ subscription: 'sub_mp_1', tenantId: null }))
      const viaA = await deliver(a, paid)
      t.match(viaA.body, { status: 'ok', tenant_id: tenantId }, "A resolves the invoice through B's index")
      t.equal(await db.countTenants(), 1)
    })

    t.test('the same event at A and B at the same moment → exactly one effect', async (t) => {
      const tenantId = await checkout(a)
      await deliver(a, makeEvent('checkout.session.completed', checkoutSession({ tenantId, plan: 'standard', subscription: 'sub_mp_2' })))
      const before = await db.listAudit({ tenant: tenantId, limit: 10_000 })
      let created = Math.floor(Date.now() / 1000) + 10
      for (let round = 0; round < 6; round++) {
        const status = round % 2 === 0 ? 'past_due' : 'active'
        const event = makeEvent('customer.subscription.updated', subscription({ id: 'sub_mp_2', tenantId, status }), { created: created++ })
        const [ra, rb] = await Promise.all([deliver(a, event), deliver(b, event)])
        t.same([ra.status, rb.status], [200, 200], `round ${round}: both answered 200`)
        t.same([ra.body.status, rb.body.status].sort(), ['duplicate', 'ok'], `round ${round}: one ok, one duplicate`)
        const stored = await db.getEvent(event.id)
        t.equal(stored?.outcome, 'ok', `round ${round}: recorded once with its outcome`)
        t.equal((await db.getTenant(tenantId))!.billing, status === 'past_due' ? 'past_due' : 'paid', `round ${round}: the effect is there`)
      }
      const events = await db.listEvents({ tenant: tenantId, limit: 1000 })
      t.equal(events.filter((e) => e.type === 'customer.subscription.updated').length, 6, 'six events, each stored once')
      const after = await db.listAudit({ tenant: tenantId, limit: 10_000 })
      t.equal(after.filter((e) => e.action === 'provision.queued').length, before.filter((e) => e.action === 'provision.queued').length,
        'no duplicate side effects in the audit log')
    })

    t.test('each provisioning job runs once, whichever instance takes it', async (t) => {
      const tenants = await Promise.all([a, b, a, b, a, b].map((app) => checkout(app)))
      await Promise.all(tenants.map((id, i) => deliver(i % 2 === 0 ? b : a,
        makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'solo', subscription: `sub_mp_jobs_${i}` })))))
      for (const id of tenants) {
        await until(`tenant ${id} active`, () => tenantState(a, id), (s) => s === 'active')
      }
      for (const id of tenants) {
        const actions = (await db.listAudit({ tenant: id, limit: 10_000 })).map((e) => e.action)
        t.equal(actions.filter((x) => x === 'server.created').length, 1, `${id.slice(0, 6)}: one server.created`)
        t.equal(actions.filter((x) => x === 'server.adopted').length, 0, `${id.slice(0, 6)}: nothing re-ran the create step`)
        t.equal(actions.filter((x) => x === 'provision.ready').length, 1, `${id.slice(0, 6)}: one provision.ready`)
        const jobs = await db.listJobs({ tenant: id })
        t.match(jobs, [{ kind: 'provision', status: 'done', attempts: 0 }], `${id.slice(0, 6)}: one job, done at the first attempt`)
        t.equal(jobs.length, 1)
      }
      t.match(await verifyStoredChain(db, AUDIT_SECRET), { ok: true, entries: (await db.listAudit({ limit: 100_000 })).length, lastSeq: (await db.listAudit({ limit: 100_000 })).length },
        'both instances appended to one unbroken audit chain')
    })
  })

  t.test('kill -9 of A in the middle of a job → B finishes it after the lease lapses', async (t) => {
    const url = await server.createDatabase()
    const db = await openDb(t, url)
    // A's servers never become healthy, so its attempt stalls at the health step, holding a
    // short lease; B is healthy at once. The attempt cap stays large (60 s): only the lease ends it.
    const a = await startApp(t, 'A', url, {
      CTFHIVE_FAKE_HEALTH_DELAY_MS: '600000', CTFHIVE_JOB_LEASE_MS: '4000', PROVISION_ATTEMPT_TIMEOUT_S: '60', WEBHOOK_WAIT_MS: '0'
    })
    const tenantId = await checkout(a)
    const res = await deliver(a, makeEvent('checkout.session.completed', checkoutSession({ tenantId, plan: 'pro', subscription: 'sub_mp_kill' })))
    t.match(res.body, { status: 'ok', tenant_id: tenantId, tenant_state: 'provisioning' })

    const held = await until<Job | undefined>('A to reach the health step', async () => (await db.listJobs({ tenant: tenantId }))[0],
      (j) => j?.step === 'dns' && j.leaseOwner === 'app-A')
    a.child.kill('SIGKILL')
    await once(a.child, 'exit')
    t.equal(a.child.signalCode, 'SIGKILL', 'A died without a chance to give its lease back')
    const lapse = held!.leaseUntil
    t.match(await db.getJob(held!.id), { status: 'running', leaseOwner: 'app-A', step: 'dns' }, 'the job is stranded under A’s lease')
    // B starts only now: running beside A, its poll could take the job between the webhook's
    // commit and A's own claim, and A would never reach the health step.
    const b = await startApp(t, 'B', url, { PROVISION_ATTEMPT_TIMEOUT_S: '60', CTFHIVE_JOB_IDLE_MS: '300' })

    const done = await until('B to finish the job', () => db.getJob(held!.id), (j) => j?.status === 'done')
    // A's death counts as one attempt (so a job that keeps killing its worker still ends); B's
    // success clears the error.
    t.match(done, { status: 'done', attempts: 1, lastError: null, leaseOwner: null }, 'done; the attempt that died with A is counted')
    t.equal(await tenantState(b, tenantId), 'active', 'the tenant is live')

    const entries = await db.listAudit({ tenant: tenantId, limit: 10_000 })
    const actions = entries.map((e) => e.action)
    t.equal(actions.filter((x) => x === 'server.created').length, 1, 'A created the server once')
    t.equal(actions.filter((x) => x === 'server.adopted').length, 0, 'B resumed after the last finished step, not from the start')
    t.equal(actions.filter((x) => x === 'dns.record').length, 1)
    t.equal(actions.filter((x) => x === 'health.ok').length, 1)
    t.equal(actions.filter((x) => x === 'provision.ready').length, 1)
    const healthOk = entries.find((e) => e.action === 'health.ok')!
    t.ok(Date.parse(healthOk.at) >= lapse, 'B took the job only once A’s lease had lapsed')
    t.match(await verifyStoredChain(db, AUDIT_SECRET), { ok: true, entries: (await db.listAudit({ limit: 10_000 })).length, lastSeq: (await db.listAudit({ limit: 10_000 })).length })
  })
}
