// A provider that refuses for now and says for how long (Linode's 429 with Retry-After): the
// job waits that long, no attempt counted, and the runner claims nothing meanwhile; a refusal
// that never ends still fails the job once its budget is spent.
import t from 'tap'
import { pino } from 'pino'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import { JobRunner } from '../../api/provisioning/jobs.ts'
import { ExecutorError, type ServerSpec } from '../../api/provisioning/executor.ts'
import { SqliteStore } from '../../api/store/sqlite.ts'
import { testConfig } from '../helpers/build-app.ts'
import { directRunner, runOnce } from '../helpers/job-runner.ts'

/** Refuses every create with a rate limit asking for `waitMs`, `times` times. */
class Throttled extends FakeExecutor {
  refusals: number[] = []
  readonly waitMs: number
  times: number
  constructor (waitMs: number, times = Number.MAX_SAFE_INTEGER) {
    super()
    this.waitMs = waitMs
    this.times = times
  }

  override async createOrAdopt (spec: ServerSpec, signal?: AbortSignal): ReturnType<FakeExecutor['createOrAdopt']> {
    if (this.times > 0) {
      this.times--
      this.refusals.push(Date.now())
      throw new ExecutorError('Linode API 429: Too many requests (POST /linode/instances)', { retryable: true, retryAfterMs: this.waitMs })
    }
    return await super.createOrAdopt(spec, signal)
  }
}

t.test('a rate-limit refusal counts no attempt and re-queues the job after the wait it asks', async (t) => {
  const executor = new Throttled(8 * 60_000)
  const { store, runner, job, id } = await directRunner(t, { executor, maxAttempts: 1 })
  for (let i = 0; i < 3; i++) {
    const before = Date.now()
    await runOnce(store, runner)
    const now = await store.getJob(job.id)
    t.match(now, { status: 'queued', attempts: 0, lastError: /429/ }, `refusal ${i + 1}: queued again, uncounted (one attempt allowed)`)
    t.ok(now!.runAfter >= before + 8 * 60_000, 'not before the Retry-After has passed')
    await store.updateJob(job.id, { runAfter: 0 })
  }
  t.equal((await store.getTenant(id))?.infra, 'provisioning', 'the tenant is not failed')
  const audit = (await store.listAudit({})).filter((e) => e.action === 'provision.attempt_failed')
  t.match(audit[0]?.detail, { attempts: 0, counted: false, retry_in_ms: 8 * 60_000 })
})

t.test('a refusal that goes on past the budget fails the job for the operator', async (t) => {
  const executor = new Throttled(60_000)
  const { store, runner, job, id } = await directRunner(t, { executor, maxAttempts: 5 })
  await store.updateJob(job.id, { stepAt: Date.now() - 7 * 3_600_000 })
  await runOnce(store, runner)
  t.match(await store.getJob(job.id), { status: 'failed', attempts: 1, lastError: /429.*still refused 420 minutes into the step/ })
  t.equal((await store.getTenant(id))?.infra, 'failed')
})

t.test('the runner claims nothing until the Retry-After has passed: every job pauses, none meets the throttle', async (t) => {
  const config = { ...testConfig({}, t), provisionAttemptTimeoutS: 300, provisionMaxAttempts: 5, provisionHealthTimeoutS: 1800 }
  const store = new SqliteStore({ path: ':memory:' })
  t.teardown(() => store.close())
  const executor = new Throttled(600, 1)
  const runner = new JobRunner({ store, executor, config, log: pino({ level: 'silent' }), pollIntervalMs: 5, idleIntervalMs: 20, concurrency: 1, backoffMs: () => 10 })
  t.teardown(() => runner.stop())
  const ids: string[] = []
  for (let i = 0; i < 3; i++) {
    const id = String(i).repeat(32)
    const now = new Date().toISOString()
    await store.insertTenant({
      id, name: `T${i}`, email: '', plan: 'solo', slug: `t${i}-${id.slice(0, 6)}`, fqdn: `t${i}-${id.slice(0, 6)}.ctfhive.us`, billing: 'paid', infra: 'provisioning', subscriptionId: null, customerId: null,
      billingAt: 1, planAt: 0, error: null, serverId: null, ipv4: null, dnsRecordId: null, createdAt: now, updatedAt: now, paidAt: now, readyAt: null, canceledAt: null, softCancelFrom: null, billingState: null, adminEmail: null
    })
    await store.enqueueJob({ kind: 'provision', tenant: id, runAfter: 0 })
    ids.push(id)
  }
  const creates: number[] = []
  const create = executor.createOrAdopt.bind(executor)
  executor.createOrAdopt = async (spec, signal) => { creates.push(Date.now()); return await create(spec, signal) }
  runner.start()
  const started = Date.now()
  while (Date.now() - started < 10_000) {
    const tenants = await Promise.all(ids.map((id) => store.getTenant(id)))
    if (tenants.every((x) => x?.infra === 'ready')) break
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  t.same((await Promise.all(ids.map((id) => store.getTenant(id)))).map((x) => x?.infra), ['ready', 'ready', 'ready'])
  t.equal(executor.refusals.length, 1, 'one refusal')
  t.ok(creates[1]! - executor.refusals[0]! >= 550, `the next create waited for the Retry-After (${creates[1]! - executor.refusals[0]!} ms)`)
})
