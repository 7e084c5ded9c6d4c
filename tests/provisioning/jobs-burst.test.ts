// A burst of checkouts, time scaled 1:200 (the 300 s attempt cap is 1.5 s, the 1800 s health
// window 9 s, a first boot that answers its health check 400 s after its create 2 s), two
// creation slots as shipped: a job that only waits for its health check holds none of them
// and waits behind no new buyer's server, so each tenant is ready soon after its server is.
import t from 'tap'
import { pino } from 'pino'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import { JobRunner } from '../../api/provisioning/jobs.ts'
import type { ServerSpec } from '../../api/provisioning/executor.ts'
import { SqliteStore } from '../../api/store/sqlite.ts'
import { testConfig } from '../helpers/build-app.ts'

const SCALE = 200
const BOOT_MS = 400_000 / SCALE

/** Healthy BOOT_MS after its server was made; a create takes a little while. */
class SlowBoot extends FakeExecutor {
  readonly born = new Map<string, number>()
  override async createOrAdopt (spec: ServerSpec, signal?: AbortSignal): ReturnType<FakeExecutor['createOrAdopt']> {
    await new Promise((resolve) => setTimeout(resolve, 20))
    const r = await super.createOrAdopt(spec, signal)
    if (!this.born.has(spec.fqdn)) this.born.set(spec.fqdn, Date.now())
    return r
  }

  override async checkHealth (fqdn: string, signal?: AbortSignal): Promise<boolean> {
    await super.checkHealth(fqdn, signal)
    return Date.now() - (this.born.get(fqdn) ?? Infinity) >= BOOT_MS
  }
}

t.test('in a burst of checkouts, each tenant is ready soon after its server is healthy, not after the whole queue', async (t) => {
  const n = 16
  const config = { ...testConfig({}, t), provisionAttemptTimeoutS: 300 / SCALE, provisionMaxAttempts: 5, provisionHealthTimeoutS: 1800 / SCALE }
  const store = new SqliteStore({ path: ':memory:' })
  t.teardown(() => store.close())
  const executor = new SlowBoot()
  const runner = new JobRunner({ store, executor, config, log: pino({ level: 'silent' }), pollIntervalMs: 3000 / SCALE, idleIntervalMs: 5000 / SCALE, leaseMs: 1000 + 300_000 / SCALE })
  t.teardown(() => runner.stop())
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const id = String(i).padStart(2, '0').repeat(16)
    const now = new Date().toISOString()
    const slug = `burst${i}-${id.slice(0, 6)}`
    await store.insertTenant({
      id, name: `Burst ${i}`, email: '', plan: 'solo', slug, fqdn: `${slug}.ctfhive.us`, billing: 'paid', infra: 'provisioning', subscriptionId: null, customerId: null,
      billingAt: 1, planAt: 0, error: null, serverId: null, ipv4: null, dnsRecordId: null, createdAt: now, updatedAt: now, paidAt: now, readyAt: null, canceledAt: null, softCancelFrom: null, billingState: null, adminEmail: null
    })
    await store.enqueueJob({ kind: 'provision', tenant: id, runAfter: 0 })
    ids.push(id)
  }
  runner.start()
  const ended = new Map<string, { infra: string, at: number, fqdn: string }>()
  const started = Date.now()
  while (ended.size < n && Date.now() - started < 30_000) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    for (const id of ids) {
      if (ended.has(id)) continue
      const tenant = await store.getTenant(id)
      if (tenant?.infra === 'ready' || tenant?.infra === 'failed') ended.set(id, { infra: tenant.infra, at: Date.now(), fqdn: tenant.fqdn ?? '' })
    }
  }
  t.equal(ended.size, n, 'every tenant ended')
  t.same([...ended.values()].filter((e) => e.infra !== 'ready').map((e) => e.fqdn), [], 'none failed')
  // Within a minute and a half (scaled) of its server's health check passing: the health polls
  // every 3 s and a new buyer's create or two may come first.
  const late = [...ended.values()].map((e) => ({ fqdn: e.fqdn, after: e.at - (executor.born.get(e.fqdn) ?? 0) - BOOT_MS })).filter((e) => e.after > 90_000 / SCALE)
  t.same(late, [], 'no tenant waited behind the queue once its server was healthy')
})
