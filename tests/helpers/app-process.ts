// A real app process for multi-process tests: config from the environment, the store from
// DATABASE_URL, a FakeExecutor, 127.0.0.1 on a free port. Prints `{"port","pid"}` on stdout
// once listening; logs go to stderr. SIGTERM closes app and store.
// Test-only knobs (environment):
//   CTFHIVE_FAKE_HEALTH_DELAY_MS  health checks answer false for this long after start
//   CTFHIVE_JOB_LEASE_MS          the job lease, instead of attempt cap + 30 s
//   CTFHIVE_JOB_OWNER             the job runner's owner name
//   CTFHIVE_JOB_POLL_MS / CTFHIVE_JOB_IDLE_MS   job runner poll and idle intervals
import { buildApp } from '../../api/app.ts'
import { loadConfig } from '../../api/config.ts'
import { createLogger } from '../../api/logger.ts'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import { openStore } from '../../api/store/index.ts'

function envInt (name: string): number | undefined {
  const raw = process.env[name]
  return raw === undefined || raw === '' ? undefined : Number(raw)
}

/** A FakeExecutor whose servers stay unhealthy for a while, like a server still booting. */
class BootingFakeExecutor extends FakeExecutor {
  private readonly healthyAt: number

  constructor (delayMs: number) {
    super()
    this.healthyAt = Date.now() + delayMs
  }

  override async checkHealth (fqdn: string): Promise<boolean> {
    const healthy = await super.checkHealth(fqdn)
    return healthy && Date.now() >= this.healthyAt
  }
}

const config = loadConfig({ ...process.env, HOST: '127.0.0.1', PORT: '0' })
const logger = createLogger(config, process.stderr)
const store = await openStore(config)
const pollIntervalMs = envInt('CTFHIVE_JOB_POLL_MS')
const idleIntervalMs = envInt('CTFHIVE_JOB_IDLE_MS')
const owner = process.env.CTFHIVE_JOB_OWNER
const leaseMs = envInt('CTFHIVE_JOB_LEASE_MS')
const app = await buildApp(config, {
  store,
  logger,
  executor: new BootingFakeExecutor(envInt('CTFHIVE_FAKE_HEALTH_DELAY_MS') ?? 0),
  jobs: {
    ...(pollIntervalMs !== undefined ? { pollIntervalMs } : {}),
    ...(idleIntervalMs !== undefined ? { idleIntervalMs } : {}),
    ...(owner !== undefined ? { owner } : {}),
    ...(leaseMs !== undefined ? { leaseMs } : {}),
    backoffMs: () => 50
  }
})

let closing = false
process.on('SIGTERM', () => {
  if (closing) process.exit(1)
  closing = true
  app.close().then(() => store.close()).then(() => process.exit(0), () => process.exit(1))
})

await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
const port = typeof address === 'object' && address !== null ? address.port : 0
process.stdout.write(`${JSON.stringify({ port, pid: process.pid })}\n`)
