// The wait for a new server's health check has its own deadline, counted from its DNS record
// across attempts: an attempt that reaches its cap while the server still has time is not a
// failure; past the deadline the job fails for the operator.
import t from 'tap'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import { ExecutorError, type ServerInfo } from '../../api/provisioning/executor.ts'
import type { Store } from '../../api/store/store.ts'
import { directRunner, runOnce } from '../helpers/job-runner.ts'

const actions = async (store: Store): Promise<string[]> => (await store.listAudit({})).map((e) => e.action)

t.test('an attempt that reaches its cap while the health check has time left goes on in a new one, uncounted', async (t) => {
  const executor = new FakeExecutor()
  executor.unhealthyChecks = Number.MAX_SAFE_INTEGER
  const logLines: Array<Record<string, unknown>> = []
  // One attempt allowed: were the capped waits counted, the first would fail the tenant. A cap
  // of 1 s leaves the wait time to poll more than once on a loaded machine (0.3 s once did not).
  const { store, runner, job, id } = await directRunner(t, { executor, capS: 1, maxAttempts: 1, logLines })

  await runOnce(store, runner)
  const first = await store.getJob(job.id)
  t.match(first, { status: 'queued', step: 'dns', attempts: 0, lastError: null, leaseOwner: null, leaseUntil: 0 }, 'queued again, no attempt counted, no error')
  t.ok(first!.runAfter <= Date.now(), 'due at once')
  t.same(await actions(store), ['server.created', 'server.running', 'dns.record'], 'no failed attempt in the audit log')
  t.equal((await store.getTenant(id))?.infra, 'provisioning')
  const checks = executor.calls.health
  t.ok(checks >= 2, `the attempt polled the health check (${checks} times)`)
  const line = logLines.find((l) => l.msg === 'still waiting for the health check; the job goes on in a new attempt')
  t.match(line, { level: 30, tenant: id, job: job.id, step: 'dns', waited_s: Number })

  // The next attempt waits on from the same DNS step (no new server, no new record), capped again.
  await runOnce(store, runner)
  t.match(await store.getJob(job.id), { status: 'queued', step: 'dns', stepAt: first!.stepAt, attempts: 0 }, 'the deadline still counts from the DNS record')
  t.ok(executor.calls.health > checks)
  t.equal(executor.calls.create, 1)
  t.equal(executor.calls.dns, 1)

  // The server comes up during the third attempt.
  executor.unhealthyChecks = 3
  await runOnce(store, runner)
  t.match(await store.getJob(job.id), { status: 'done', attempts: 0 })
  t.match(await store.getTenant(id), { infra: 'ready', error: null })
  t.same(await actions(store), ['server.created', 'server.running', 'dns.record', 'health.ok', 'provision.ready'])
})

t.test('a server that has not answered by the deadline fails the job for the operator, whose retry gives a new window', async (t) => {
  const executor = new FakeExecutor()
  executor.unhealthyChecks = Number.MAX_SAFE_INTEGER
  const { store, runner, job, id } = await directRunner(t, { executor, capS: 300, maxAttempts: 5, healthS: 0.3, pollIntervalMs: 20 })

  await runOnce(store, runner)
  const failed = await store.getJob(job.id)
  t.match(failed, { status: 'failed', step: 'dns', attempts: 1, leaseOwner: null }, 'failed at once: waiting longer would not help')
  t.equal(failed?.lastError, 'https://direct-dddddd.ctfhive.us/healthcheck did not answer 200 within 0.3 s of its DNS record')
  t.ok(executor.calls.health >= 2, 'it polled until the deadline, not once')
  t.match(await store.getTenant(id), { infra: 'failed', error: 'Provisioning failed after 1 attempt; our team has the details and can retry it.' })
  t.same(await actions(store), ['server.created', 'server.running', 'dns.record', 'provision.failed'])
  const entry = (await store.listAudit({})).find((e) => e.action === 'provision.failed')
  t.match(entry?.detail, { step: 'dns', attempts: 1, reason: /did not answer 200 within 0\.3 s/ })

  // What the operator's retry does (TenantService.retryProvisioning): a new job, a new window.
  await store.updateTenant(id, { infra: 'provisioning', error: null })
  const retry = await store.enqueueJob({ kind: 'provision', tenant: id, runAfter: 0 })
  executor.unhealthyChecks = 2
  await runOnce(store, runner)
  t.match(await store.getJob(retry.id), { status: 'done', attempts: 0 })
  t.equal(executor.servers.size, 1, 'the same server, adopted')
  t.match(await store.getTenant(id), { infra: 'ready' })
})

t.test('a cap reached after the deadline is an ordinary failed attempt, and the retry fails after a short grace', async (t) => {
  const executor = new FakeExecutor()
  // The health call hangs, so the deadline can pass only while it is in flight.
  const held = executor.holdNext('health')
  const { store, runner, job } = await directRunner(t, { executor, capS: 0.5, maxAttempts: 3, healthS: 0.2 })
  // Every step within the millisecond the job was queued in (a fast executor can): the step
  // time must still not read as one an older release left.
  const realNow = Date.now
  Date.now = () => Date.parse(job.createdAt)
  const unfreeze = (): void => { Date.now = realNow }
  t.teardown(unfreeze)
  void held.reached.then(unfreeze)
  await runOnce(store, runner)
  t.equal(held.ended, 'aborted', 'the cap cancelled the hung check')
  t.match(await store.getJob(job.id), { status: 'queued', step: 'dns', attempts: 1, lastError: /exceeded its 0.5 s cap/ }, 'counted, retried after the backoff')
  t.same(await actions(store), ['server.created', 'server.running', 'dns.record', 'provision.attempt_failed'])

  // Past the deadline the next attempt checks a few times (a short grace), then fails the job.
  executor.unhealthyChecks = Number.MAX_SAFE_INTEGER
  await store.updateJob(job.id, { runAfter: 0 })
  await runOnce(store, runner)
  t.match(await store.getJob(job.id), { status: 'failed', attempts: 2, lastError: /did not answer 200 within 0.2 s of its DNS record/ })
  const checks = executor.calls.health - 1
  t.ok(checks >= 2 && checks <= 6, `a few checks in the second attempt, not one (${checks})`)
})

t.test('a job resumed past its health deadline survives one failed check (a blip): it gets a short grace', async (t) => {
  const executor = new FakeExecutor()
  executor.unhealthyChecks = Number.MAX_SAFE_INTEGER
  const { store, runner, job } = await directRunner(t, { executor, capS: 0.3, healthS: 0.6, pollIntervalMs: 20 })
  await runOnce(store, runner)
  t.match(await store.getJob(job.id), { status: 'queued', step: 'dns', attempts: 0 }, 'capped while its window was open')
  // It waited for its turn past its deadline (a queue of new buyers' servers, a restart).
  const stepAt = Date.parse(job.createdAt) + 1
  await store.updateJob(job.id, { stepAt })
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, stepAt + 700 - Date.now())))
  executor.unhealthyChecks = 1
  await runOnce(store, runner)
  t.match(await store.getJob(job.id), { status: 'done', attempts: 0 }, 'ready: the blip did not fail the tenant')
})

t.test('a job a release before migration 003 moved to the health check gets its window from its first wait there', async (t) => {
  // That release never wrote step_at: 0 for a job it queued, the queueing time for one queued by this release.
  for (const stale of ['zero', 'queued'] as const) {
    const executor = new FakeExecutor()
    executor.unhealthyChecks = Number.MAX_SAFE_INTEGER
    const { store, runner, job } = await directRunner(t, { executor, capS: 0.3, healthS: 0.6 })
    await runOnce(store, runner)
    t.match(await store.getJob(job.id), { status: 'queued', step: 'dns' }, `${stale}: waiting at the health check`)
    await store.updateJob(job.id, { stepAt: stale === 'zero' ? 0 : Date.parse(job.createdAt) })
    // Long enough after the job was queued that a window counted from then would be spent.
    await new Promise((resolve) => setTimeout(resolve, 700))

    executor.unhealthyChecks = 2
    await runOnce(store, runner)
    t.match(await store.getJob(job.id), { status: 'done', attempts: 0, lastError: null }, `${stale}: not failed as if its window were spent`)
  }
})

t.test('a server deleted while its health check is awaited is noticed: the next attempt makes a new one and points DNS at it', async (t) => {
  class Vanishing extends FakeExecutor {
    override async checkHealth (fqdn: string, signal?: AbortSignal): Promise<boolean> {
      if (this.calls.health === 3) this.servers.clear() // deleted in the provider's console
      return await super.checkHealth(fqdn, signal)
    }
  }
  const executor = new Vanishing()
  executor.unhealthyChecks = Number.MAX_SAFE_INTEGER
  // Capped at 2 s: without the look at the server, the attempt would wait out the cap.
  const { store, runner, job, id } = await directRunner(t, { executor, maxAttempts: 3, capS: 2 })
  await runOnce(store, runner)
  const first = (await store.getTenant(id))!
  t.match(await store.getJob(job.id), { status: 'queued', step: '', attempts: 1, lastError: /disappeared while its health check was awaited/ }, 'a retryable failure, back to the first step')
  t.ok(executor.calls.health <= 25, `noticed within a minute's polls, not at the deadline (${executor.calls.health} health polls)`)
  t.match(first, { serverId: null, ipv4: null, infra: 'provisioning' }, 'the dead server is forgotten')
  t.same(await actions(store), ['server.created', 'server.running', 'dns.record', 'server.vanished', 'provision.attempt_failed'])

  executor.unhealthyChecks = 0
  const claimed = await store.claimNextJob(runner.owner, Date.now() + 3_600_000, runner.leaseMs)
  await runner.runJob(claimed!)
  const tenant = (await store.getTenant(id))!
  t.match(tenant, { infra: 'ready' })
  const server = executor.servers.get(tenant.serverId!)
  t.ok(server !== undefined, 'a new server')
  t.equal(executor.records.size, 1, 'one record')
  t.equal(executor.records.get(tenant.dnsRecordId!)?.target, server?.ipv4, 'DNS points at the new server')
})

t.test('the provider\'s API failing while the health check is awaited is no reason to fail the attempt: the wait goes on', async (t) => {
  // Once the health wait has begun, every look at the server fails, as in a Linode API outage.
  class Outage extends FakeExecutor {
    override async getServer (serverId: string, signal?: AbortSignal): Promise<ServerInfo | undefined> {
      if (this.calls.health > 0) {
        this.calls.get++
        throw new ExecutorError('Linode API 503: maintenance', { retryable: true })
      }
      return await super.getServer(serverId, signal)
    }
  }
  const executor = new Outage()
  executor.unhealthyChecks = Number.MAX_SAFE_INTEGER
  const logLines: Array<Record<string, unknown>> = []
  const { store, runner, job } = await directRunner(t, { executor, maxAttempts: 1, capS: 1, logLines })
  await runOnce(store, runner)
  t.match(await store.getJob(job.id), { status: 'queued', step: 'dns', attempts: 0, lastError: null }, 'capped and continued, not counted, not failed')
  t.ok(executor.calls.get >= 2, `the server was looked at (${executor.calls.get} times)`)
  t.ok(logLines.some((l) => l.level === 40 && l.msg === 'could not look at the server during its health wait; waiting on'), 'and the failure logged')
})
