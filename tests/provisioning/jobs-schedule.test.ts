// When the runner looks for jobs again. These count store calls over a short real wait: a
// runner that spins makes dozens in it (one every few milliseconds), a correct one one or two
// whatever the machine's speed, since its idle interval here is a minute.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { directRunner } from '../helpers/job-runner.ts'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import type { SqliteStore } from '../../api/store/sqlite.ts'
import type { Store } from '../../api/store/store.ts'

const WATCH_MS = 300

/** The store behind a proxy that counts calls by name and can make `claimNextJob` fail. */
function counting (opts: { claimFails?: boolean } = {}): { calls: Record<string, number>, wrap: (store: SqliteStore) => Store } {
  const calls: Record<string, number> = {}
  const wrap = (store: SqliteStore): Store => new Proxy(store, {
    get (target, prop) {
      const value = Reflect.get(target, prop, target)
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        calls[String(prop)] = (calls[String(prop)] ?? 0) + 1
        if (prop === 'claimNextJob' && opts.claimFails === true) return Promise.reject(new Error('attempt to write a readonly database'))
        return value.apply(target, args)
      }
    }
  })
  return { calls, wrap }
}

t.test('a store that refuses the claim is not asked again at once: the runner backs off', async (t) => {
  const { calls, wrap } = counting({ claimFails: true })
  const logLines: Array<Record<string, unknown>> = []
  const { runner } = await directRunner(t, { wrap, logLines })
  runner.start()
  await sleep(WATCH_MS)
  t.equal(calls.claimNextJob, 1, 'one claim, not one every few milliseconds')
  const errors = logLines.filter((l) => l.msg === 'could not claim a job')
  t.equal(errors.length, 1, 'one error line')
  t.equal(errors[0]?.failures, 1, 'counted')
  runner.kick()
  await sleep(20)
  t.equal(logLines.filter((l) => l.msg === 'could not claim a job').at(-1)?.failures, 2, 'failures in a row are counted for the backoff')
})

t.test('nothing due: no claim at all (a claim is a write transaction)', async (t) => {
  const { calls, wrap } = counting()
  const { store, runner, job } = await directRunner(t, { wrap })
  await store.updateJob(job.id, { runAfter: Date.now() + 3_600_000 })
  runner.start()
  await sleep(WATCH_MS)
  t.equal(calls.claimNextJob ?? 0, 0, 'the read said nothing is due')
  t.ok((calls.nextJobDueAt ?? 0) >= 1 && (calls.nextJobDueAt ?? 0) <= 2, 'and it is read once or twice, not polled')
})

t.test('every slot busy and another job due: the runner waits for a slot instead of polling', async (t) => {
  const executor = new FakeExecutor()
  const first = executor.holdNext('create')
  const second = executor.holdNext('create')
  const { calls, wrap } = counting()
  const { store, runner } = await directRunner(t, { executor, wrap })
  // Two more tenants with due jobs: the first two fill both slots, the third waits.
  for (const c of ['e', 'f']) {
    const now = new Date().toISOString()
    const id = c.repeat(32)
    await store.insertTenant({
      id, name: c, email: '', plan: 'solo', slug: `${c}-${c.repeat(6)}`, fqdn: `${c}-${c.repeat(6)}.ctfhive.us`, billing: 'paid', infra: 'provisioning', subscriptionId: null, customerId: null,
      billingAt: 1, planAt: 0, error: null, serverId: null, ipv4: null, dnsRecordId: null, createdAt: now, updatedAt: now, paidAt: now, readyAt: null, canceledAt: null, softCancelFrom: null, billingState: null, adminEmail: null
    })
    await store.enqueueJob({ kind: 'provision', tenant: id, runAfter: 0 })
  }
  runner.start()
  while (executor.calls.create < 2) await sleep(5)
  const before = calls.nextJobDueAt ?? 0
  await sleep(WATCH_MS)
  t.equal(executor.calls.create, 2, 'both slots busy')
  t.ok((calls.nextJobDueAt ?? 0) - before <= 1, `no polling while full (${(calls.nextJobDueAt ?? 0) - before} reads)`)
  first.release()
  // The idle interval here is a minute: the waiting job starts within seconds only if the
  // freed slot takes it at once (a bound, not a speed check).
  const freed = Date.now()
  while (executor.calls.create < 3 && Date.now() - freed < 10_000) await sleep(5)
  t.equal(executor.calls.create, 3, 'a slot that frees takes the waiting job at once')
  second.release()
})

t.test('a job due that another worker takes first: looked at again after the idle interval, not polled', async (t) => {
  const { calls, wrap: count } = counting()
  // The read says a job is due; the claim finds it gone (another instance took it meanwhile).
  const wrap = (store: SqliteStore): Store => new Proxy(count(store), {
    get (target, prop) {
      if (prop === 'claimNextJob') return async () => { calls.claimNextJob = (calls.claimNextJob ?? 0) + 1; return undefined }
      const value = Reflect.get(target, prop, target)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
  const { runner } = await directRunner(t, { wrap })
  runner.start()
  await sleep(WATCH_MS)
  t.equal(calls.claimNextJob, 1, 'one claim, not one every few milliseconds')
})

t.test('a kick while a drain reads is not lost: a job queued meanwhile starts at once, not after the idle interval', async (t) => {
  // The next read of what is due is held after it answered "nothing", as a slow round trip would.
  let hold: { reached: () => void, gate: Promise<void> } | undefined
  const wrap = (store: SqliteStore): Store => new Proxy(store, {
    get (target, prop) {
      const value = Reflect.get(target, prop, target)
      if (typeof value !== 'function') return value
      if (prop !== 'nextJobDueAt') return value.bind(target)
      return async () => {
        const due = await value.apply(target, [])
        const h = hold
        hold = undefined
        if (h !== undefined) { h.reached(); await h.gate }
        return due
      }
    }
  })
  const executor = new FakeExecutor()
  const { store, runner, job } = await directRunner(t, { executor, wrap })
  await store.updateJob(job.id, { runAfter: Date.now() + 3_600_000 })
  runner.start()
  await sleep(20)
  const reached = Promise.withResolvers<void>()
  const gate = Promise.withResolvers<void>()
  hold = { reached: reached.resolve, gate: gate.promise }
  runner.kick()
  await reached.promise
  // A webhook queues a due job and kicks while that read is still on its way back.
  await store.updateJob(job.id, { runAfter: 0 })
  runner.kick()
  gate.resolve()
  // The idle interval here is a minute: the job starts within seconds only if the kick counted.
  const started = Date.now()
  while (executor.calls.create === 0 && Date.now() - started < 10_000) await sleep(10)
  t.equal(executor.calls.create, 1, 'the job started')
})
