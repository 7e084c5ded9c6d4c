// Recording the end of an attempt while the store fails for a moment (a database restart, a
// failover): tried again while the attempt's lease runs, so the job does not sit `running`
// (its tenant shown as still being set up) until the lease lapses.
import t, { type Test } from 'tap'
import { directRunner } from '../helpers/job-runner.ts'
import { until } from '../helpers/until.ts'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import { ExecutorError, type CreateResult, type ServerSpec } from '../../api/provisioning/executor.ts'
import type { SqliteStore } from '../../api/store/sqlite.ts'
import { StoreError, type Store } from '../../api/store/store.ts'

/** Fails its create, and the store's next `outage` transactions with it (Infinity: all of them). */
class FailingCreate extends FakeExecutor {
  private readonly outage: { left: number }
  private readonly during: number
  constructor (outage: { left: number }, during: number) {
    super()
    this.outage = outage
    this.during = during
  }

  override async createOrAdopt (_spec: ServerSpec, _signal?: AbortSignal): Promise<CreateResult> {
    this.outage.left = this.during
    throw new ExecutorError('Linode API 503: maintenance', { retryable: true })
  }
}

/** A runner whose store refuses transactions while `outage.left` is above 0, counting each refusal. */
async function withOutage (t: Test, during: number) {
  const outage = { left: 0, refused: 0 }
  const wrap = (store: SqliteStore): Store => new Proxy(store, {
    get (target, prop) {
      if (prop === 'transaction') {
        return (fn: Parameters<Store['transaction']>[0]) => {
          if (outage.left > 0) {
            outage.left--
            outage.refused++
            return Promise.reject(new StoreError('could not connect to PostgreSQL: connect ECONNREFUSED 127.0.0.1:5432'))
          }
          return target.transaction(fn)
        }
      }
      const value = Reflect.get(target, prop, target)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
  const logLines: Array<Record<string, unknown>> = []
  const executor = new FailingCreate(outage, during)
  const direct = await directRunner(t, { executor, wrap, logLines, maxAttempts: 3 })
  return { ...direct, outage, logLines }
}

const lines = (logLines: Array<Record<string, unknown>>, msg: RegExp) => logLines.filter((l) => typeof l.msg === 'string' && msg.test(l.msg))

t.test('a store that fails twice while the end of an attempt is recorded: recorded on the third try, not left to the lease', async (t) => {
  const { store, runner, job, outage, logLines } = await withOutage(t, 2)
  const claimed = await store.claimNextJob(runner.owner, store.now(), runner.leaseMs)
  const started = Date.now()
  await runner.runJob(claimed!)
  const took = Date.now() - started
  t.equal(outage.refused, 2, 'the first two tries were refused')
  t.match(await store.getJob(job.id), { status: 'queued', attempts: 1, lastError: 'Linode API 503: maintenance', leaseOwner: null, leaseUntil: 0 },
    'the failed attempt is recorded: the job waits for its next attempt, not for its lease')
  t.same((await store.listAudit({})).map((e) => e.action), ['provision.attempt_failed'], 'audited once')
  // 1 s, then 2 s between the tries; the lease (330 s) is far off.
  t.ok(took < 30_000, `recorded after ${took} ms`)
  t.equal(lines(logLines, /^could not record the end of the attempt; trying again/).length, 1, 'one warning for the outage, not one a try')
  t.match(lines(logLines, /^the end of the attempt recorded once the store answered again/), [{ level: 30, job: job.id, tries: 3 }])
  t.same(logLines.filter((l) => (l.level as number) >= 50), [], 'no error line')
})

t.test('the tries end before the lease would lapse: the job is left to be claimed again', async (t) => {
  const { store, runner, job, logLines } = await withOutage(t, Infinity)
  // A lease of 1.5 s: one wait of 1 s fits in it, the next (2 s) would not.
  const claimed = await store.claimNextJob(runner.owner, store.now(), 1500)
  await runner.runJob(claimed!)
  t.ok(store.now() < claimed!.leaseUntil + 3000, 'runJob gave up around the lease\'s end, not long after it')
  t.match(await store.getJob(job.id), { status: 'running', attempts: 0, leaseOwner: runner.owner }, 'nothing recorded')
  t.match(lines(logLines, /^could not record the end of the attempt: the job is taken up again once its lease lapses/), [{ level: 50, job: job.id }])
  await until(async () => store.now() >= claimed!.leaseUntil, 'the lease lapsed')
  t.match(await store.claimNextJob('next-worker', store.now(), 60_000), { id: job.id, attempts: 1 }, 'another worker takes it, the attempt counted')
})

t.test('stop() ends the tries at once and gives the lease back', async (t) => {
  const { store, runner, job, logLines } = await withOutage(t, Infinity)
  const claimed = await store.claimNextJob(runner.owner, store.now(), runner.leaseMs)
  const running = runner.runJob(claimed!)
  await until(async () => lines(logLines, /^could not record the end of the attempt; trying again/).length > 0, 'the first try failed')
  const started = Date.now()
  await runner.stop()
  await running
  t.ok(Date.now() - started < 5000, 'stop() did not wait out the retries')
  t.match(await store.getJob(job.id), { status: 'running', leaseOwner: null, leaseUntil: 0 }, 'the lease given back: another worker takes the job at once')
  t.match(lines(logLines, /^the end of the attempt not recorded before shutdown/), [{ level: 40 }])
})

// A failure rolled back at its commit is tried again: its alert line is logged once, for the
// try that recorded it, not once a try.
t.test('a final failure whose commit fails twice: recorded on the third try, alerted once', async (t) => {
  const commitFails = { left: 0 }
  const wrap = (store: SqliteStore): Store => new Proxy(store, {
    get (target, prop) {
      if (prop === 'transaction') {
        return (fn: Parameters<Store['transaction']>[0]) => target.transaction(async (tx) => {
          const done = await fn(tx)
          // As a COMMIT that fails (a full disk, a dropped connection): the work rolls back.
          if (commitFails.left > 0) { commitFails.left--; throw new StoreError('disk I/O error') }
          return done
        })
      }
      const value = Reflect.get(target, prop, target)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
  class Refused extends FakeExecutor {
    override async createOrAdopt (_spec: ServerSpec, _signal?: AbortSignal): Promise<CreateResult> {
      commitFails.left = 2
      throw new ExecutorError('Linode API 401: invalid token', { retryable: false })
    }
  }
  const logLines: Array<Record<string, unknown>> = []
  const { store, runner, job } = await directRunner(t, { executor: new Refused(), wrap, logLines })
  const claimed = await store.claimNextJob(runner.owner, store.now(), runner.leaseMs)
  await runner.runJob(claimed!)
  t.match(await store.getJob(job.id), { status: 'failed', attempts: 1 })
  t.same((await store.listAudit({})).map((e) => e.action), ['provision.failed'], 'audited once')
  t.equal(lines(logLines, /^provisioning failed: the buyer has paid/).length, 1, 'one alert line')
})
