import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServer } from '../tests/helpers/server-process.ts'
import { drive } from './load.ts'
import { webhookBodies } from './stripe-bodies.ts'
import { createPaidTenants } from './tenants.ts'
const SECRET = 'whsec_diag'
const path = join(mkdtempSync(join(tmpdir(), 'diag-')), 'd.db')
const prof = process.env.PROF
const s = await startServer({ env: { DATABASE_URL: `sqlite:${path}`, STRIPE_WEBHOOK_SECRET: SECRET, LOG_LEVEL: 'warn' }, nodeArgs: prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [] })
const tenants = await createPaidTenants({ baseUrl: s.url, secret: SECRET, count: 256, runTag: 'd' })
const next = webhookBodies({ secret: SECRET, tenants, runTag: 'd' })
await drive({ urls: [s.url], path: '/billing/webhook', connections: 64, durationS: 2, next })
let st
if (process.env.STRACE) {
  st = spawn('strace', ['-f', ...process.env.STRACE.split(' '), '-p', String(s.child.pid)], { stdio: ['ignore', 'inherit', 'inherit'] })
  await new Promise((r) => setTimeout(r, 500))
}
const r = await drive({ urls: [s.url], path: '/billing/webhook', connections: Number(process.env.CONN ?? 64), durationS: 5, next })
console.log({ rps: r.rps, p50: r.p50, p99: r.p99, max: r.max, non2xx: r.non2xx, acked: r.acked.length })
if (st) { st.kill('SIGINT'); await new Promise((r) => st.once('exit', r)) }
await s.stop()
