import t, { type Test } from 'tap'
import { once } from 'node:events'
import { buildTestApp } from '../helpers/build-app.ts'
import { directRunner } from '../helpers/job-runner.ts'
import { checkoutSession, deliver, makeEvent } from '../helpers/stripe-events.ts'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import { ExecutorError, type CreateResult, type ServerSpec } from '../../api/provisioning/executor.ts'
import type { JobRunner } from '../../api/provisioning/jobs.ts'
import type { SqliteStore } from '../../api/store/sqlite.ts'
import type { Store } from '../../api/store/store.ts'

t.test('a job claimed while stop() runs does not start, and its lease is given back', async (t) => {
  const executor = new FakeExecutor()
  const claiming = Promise.withResolvers<void>()
  const claimMayEnd = Promise.withResolvers<void>()
  // The claim is held in flight until stop() has begun.
  const wrap = (store: SqliteStore): Store => new Proxy(store, {
    get (target, prop) {
      if (prop === 'claimNextJob') {
        return async (...args: Parameters<Store['claimNextJob']>) => {
          claiming.resolve()
          await claimMayEnd.promise
          return target.claimNextJob(...args)
        }
      }
      const value = Reflect.get(target, prop, target)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
  const { store, runner, job } = await directRunner(t, { executor, wrap })
  runner.start()
  await claiming.promise
  const stopping = runner.stop()
  claimMayEnd.resolve()
  await stopping
  t.equal(executor.calls.create, 0, 'no work started')
  t.match(await store.getJob(job.id), { status: 'running', step: '', attempts: 0, leaseOwner: null, leaseUntil: 0 }, 'claimed, then released')
  t.same(await store.listAudit({}), [], 'nothing committed')
  t.equal((await store.claimNextJob('next-worker', Date.now(), 1000))?.id, job.id, 'another worker takes it at once')
})

t.test('stop() cancels a slow executor call and waits for the attempt to end', async (t) => {
  const executor = new FakeExecutor()
  const creating = executor.holdNext('create')
  const { app, store } = await buildTestApp(t, { executor, env: { WEBHOOK_WAIT_MS: '0' } })
  const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'pro', name: 'Slow CTF' } })).json().tenant_id
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'pro', subscription: 'sub_slow' })))
  const signal = await creating.reached
  t.equal(creating.ended, undefined, 'the create call is in flight')

  await app.jobs.stop()
  t.equal(signal?.aborted, true, 'the call was given the attempt signal, and it was aborted')
  t.match(signal?.reason, { message: 'the worker is stopping' })
  t.equal(creating.ended, 'aborted', 'the call had ended when stop() returned')
  const [job] = await store.listJobs({ tenant: id })
  t.match(job, { status: 'running', step: '', attempts: 0, leaseOwner: null, leaseUntil: 0 }, 'not failed, lease given back')
  const audit = (await store.listAudit({ tenant: id })).map((e) => e.action)

  // Were the attempt still alive, letting its call return would now create and commit.
  creating.release()
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(executor.servers.size, 0, 'no server made after stop()')
  t.same((await store.listAudit({ tenant: id })).map((e) => e.action), audit, 'no audit entry after stop()')
  t.same(await store.getJob(job!.id), job, 'the job is untouched after stop()')
  t.equal((await store.getTenant(id))?.infra, 'provisioning')
})

t.test('stop() wakes whoever waits for a job, and later waits end at once', async (t) => {
  // A waiter's own bound is longer than the test, and its tenant (a webhook's during the
  // drain) has no job this worker runs: only stop() can end these waits.
  const { runner } = await directRunner(t)
  const id = 'e'.repeat(32)
  let woken = false
  const waiting = runner.waitForTenant(id, 30_000).then(() => { woken = true })
  const stopping = runner.stop()
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(woken, true, 'the waiter is answered as soon as the stop begins')
  await waiting
  await stopping
  const later = await Promise.race([runner.waitForTenant(id, 30_000).then(() => 'answered'), new Promise((resolve) => setImmediate(resolve, 'waiting'))])
  t.equal(later, 'answered', 'a wait after the stop is answered at once')
})

t.test('the attempt cap aborts a slow call and records the failed attempt after it ended', async (t) => {
  const executor = new FakeExecutor()
  const creating = executor.holdNext('create')
  const { store, runner, job } = await directRunner(t, { executor, capS: 0.2, maxAttempts: 2 })
  const claimed = await store.claimNextJob(runner.owner, Date.now(), runner.leaseMs)
  await runner.runJob(claimed!)
  const signal = await creating.reached
  t.equal(creating.ended, 'aborted', 'the held call saw the abort before runJob returned')
  t.ok(signal?.reason instanceof ExecutorError, 'aborted by the cap, not by a shutdown')
  t.match(signal?.reason, { message: /exceeded its 0.2 s cap/, retryable: true })
  t.match(await store.getJob(job.id), { status: 'queued', step: '', attempts: 1, lastError: /exceeded its 0.2 s cap/, leaseOwner: null })
  t.same((await store.listAudit({})).map((e) => e.action), ['provision.attempt_failed'])
  t.equal(executor.servers.size, 0)
})

t.test('a call that ignores the abort cannot commit its step once the cap has passed', async (t) => {
  /** An executor that takes no notice of the signal, as a third-party one might. */
  class DeafExecutor extends FakeExecutor {
    seen: AbortSignal | undefined
    override createOrAdopt (spec: ServerSpec, signal?: AbortSignal): Promise<CreateResult> {
      this.seen = signal
      return super.createOrAdopt(spec)
    }
  }
  const executor = new DeafExecutor()
  const creating = executor.holdNext('create')
  const { store, runner, job, id } = await directRunner(t, { executor, capS: 0.2, maxAttempts: 2 })
  const claimed = await store.claimNextJob(runner.owner, Date.now(), runner.leaseMs)
  let returned = false
  const running = runner.runJob(claimed!).then(() => { returned = true })
  await creating.reached
  t.ok(executor.seen, 'the call was given the attempt signal')
  await once(executor.seen!, 'abort')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(returned, false, 'runJob waits for the call even after the cap')
  creating.release()
  await running
  t.equal(executor.servers.size, 1, 'the deaf call did make a server (a later attempt adopts it)')
  t.same((await store.listAudit({})).map((e) => e.action), ['provision.attempt_failed'], 'but its step was never committed')
  t.match(await store.getJob(job.id), { status: 'queued', step: '', attempts: 1, lastError: /exceeded its 0.2 s cap/ })
  t.equal((await store.getTenant(id))?.serverId, null)
})

/**
 * Worker A claims with a lease that lapses while its create call hangs (a frozen process);
 * `owner` claims the lapsed job; then A's call returns. Answers that second claim.
 */
async function lapseAndTakeOver (t: Test, owner: (runner: JobRunner) => string) {
  const executor = new FakeExecutor()
  const { store, runner, job } = await directRunner(t, { executor })
  const hold = executor.holdNext('create')
  const claimed = await store.claimNextJob(runner.owner, Date.now(), 1)
  const running = runner.runJob(claimed!)
  await hold.reached
  await new Promise((resolve) => setTimeout(resolve, 5))
  const taken = await store.claimNextJob(owner(runner), Date.now(), 60_000)
  t.equal(taken?.id, job.id, 'the lapsed job is taken')
  hold.release()
  await running
  return { store, runner, job, taken: taken! }
}

t.test('an attempt that outlived its lease writes nothing over the worker that took the job', async (t) => {
  const { store, job } = await lapseAndTakeOver(t, () => 'worker-b')
  // attempts 1: B's claim counted A's lapsed attempt; A itself recorded neither a step nor a failure.
  t.match(await store.getJob(job.id), { status: 'running', step: '', attempts: 1, leaseOwner: 'worker-b' }, 'B still holds it, untouched by A')
  t.same((await store.listAudit({})).map((e) => e.action), [], 'A committed nothing')
})

t.test('an attempt that outlived its lease writes nothing when its own worker took the job again', async (t) => {
  // The same worker (same owner) claims the lapsed job again, as its drain loop may.
  const { store, runner, job, taken } = await lapseAndTakeOver(t, (runner) => runner.owner)
  t.match(await store.getJob(job.id), { status: 'running', step: '', attempts: 1, leaseOwner: runner.owner, leaseUntil: taken.leaseUntil },
    'the second claim still holds it, untouched by the first attempt')
  t.same((await store.listAudit({})).map((e) => e.action), [], 'the first attempt committed nothing')
})
