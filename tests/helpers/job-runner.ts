// A store, one paid tenant with a queued provision job, and a JobRunner without the app: for
// driving runJob and stop() by hand, with the attempt cap and the health deadline in seconds
// (fractions allowed here, unlike in the environment).
import { pino } from 'pino'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import { JobRunner } from '../../api/provisioning/jobs.ts'
import { SqliteStore } from '../../api/store/sqlite.ts'
import type { Job, Store } from '../../api/store/store.ts'
import type { FastifyInstance } from 'fastify'
import { captureLogger, testConfig } from './build-app.ts'

interface Teardown { teardown: (fn: () => unknown) => void }

export interface DirectRunnerOptions {
  executor?: FakeExecutor
  capS?: number
  maxAttempts?: number
  healthS?: number
  pollIntervalMs?: number
  /** Collects the runner's log lines. */
  logLines?: Array<Record<string, unknown>>
  /** Stands between the runner and the store (to hold or observe its calls). */
  wrap?: (store: SqliteStore) => Store
}

export async function directRunner (t: Teardown, opts: DirectRunnerOptions = {}): Promise<{ store: SqliteStore, runner: JobRunner, job: Job, id: string, executor: FakeExecutor }> {
  const config = {
    ...testConfig({}, t),
    provisionAttemptTimeoutS: opts.capS ?? 300,
    provisionMaxAttempts: opts.maxAttempts ?? 3,
    provisionHealthTimeoutS: opts.healthS ?? 1800
  }
  const executor = opts.executor ?? new FakeExecutor()
  const store = new SqliteStore({ path: ':memory:' })
  t.teardown(() => store.close())
  const log = opts.logLines !== undefined ? captureLogger(config, opts.logLines) : pino({ level: 'silent' })
  const runner = new JobRunner({ store: opts.wrap?.(store) ?? store, executor, config, log, pollIntervalMs: opts.pollIntervalMs ?? 5, idleIntervalMs: 60_000 })
  t.teardown(() => runner.stop())
  const now = new Date().toISOString()
  const id = 'd'.repeat(32)
  await store.insertTenant({
    id, name: 'Direct', email: '', plan: 'solo', slug: 'direct-dddddd', fqdn: 'direct-dddddd.ctfhive.us', billing: 'paid', infra: 'provisioning', subscriptionId: null, customerId: null,
    billingAt: 1, planAt: 0, error: null, serverId: null, ipv4: null, dnsRecordId: null, createdAt: now, updatedAt: now, paidAt: now, readyAt: null, canceledAt: null, softCancelFrom: null, billingState: null, adminEmail: null
  })
  const job = await store.enqueueJob({ kind: 'provision', tenant: id, runAfter: 0 })
  return { store, runner, job, id, executor }
}

/** Claims the next due job as `runner` and runs one attempt of it. */
export async function runOnce (store: Store, runner: JobRunner): Promise<Job> {
  const claimed = await store.claimNextJob(runner.owner, Date.now(), runner.leaseMs)
  if (claimed === undefined) throw new Error('no job was due')
  await runner.runJob(claimed)
  return claimed
}

/** Claims and runs one due job of the app's runner (backoffs and postponements ignored: "due" is a minute from now); false when none. */
export async function runOne (app: FastifyInstance, store: Store): Promise<boolean> {
  const job = await store.claimNextJob(app.jobs.owner, Date.now() + 60_000, app.jobs.leaseMs)
  if (job === undefined) return false
  await app.jobs.runJob(job)
  return true
}

/** Runs due jobs one at a time until none is left (at most 50). */
export async function runAll (app: FastifyInstance, store: Store): Promise<void> {
  for (let i = 0; i < 50 && await runOne(app, store); i++);
}
