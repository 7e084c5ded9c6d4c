// `npm run bench`: signed Stripe webhook deliveries against the real server process on its
// durable stores, beside a bare Fastify POST route measured in the same run on the same
// machine. Prints req/s, latency and the ratio to the bare route, then checks that every
// event answered 2xx is in stripe_events, and writes the figures to bench/RESULTS.md.
//
// Knobs (environment): BENCH_DURATION_S (10), BENCH_WARMUP_S (2), BENCH_CONNECTIONS (64),
// BENCH_TENANTS (256), BENCH_SCENARIOS (bare,sqlite,pg1,pg2), BENCH_CPU_PROF=<dir> (profile
// the app processes), BENCH_SQLITE_PROBE=1 (commit batch sizes and statement times of the SQLite
// writer), BENCH_RESULTS=0 (do not write RESULTS.md), PG_POOL_SIZE (passed to the app).
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startServer, type ServerProcess } from '../tests/helpers/server-process.ts'
import { checkPostgres, checkSqlite, type AckCheck } from './acked-check.ts'
import { drive, type LoadResult } from './load.ts'
import { startBenchPostgres, type BenchPostgres } from './postgres-server.ts'
import { webhookBodies, type BenchTenant, type SignedBody } from './stripe-bodies.ts'
import { createPaidTenants } from './tenants.ts'

const SECRET = 'whsec_bench_secret_for_ctfhive_benchmarks'
const num = (name: string, fallback: number): number => {
  const n = Number(process.env[name] ?? fallback)
  return Number.isFinite(n) && n > 0 ? n : fallback
}
const DURATION_S = num('BENCH_DURATION_S', 10)
const WARMUP_S = num('BENCH_WARMUP_S', 2)
const CONNECTIONS = num('BENCH_CONNECTIONS', 64)
const TENANTS = num('BENCH_TENANTS', 256)
const SCENARIOS = new Set((process.env.BENCH_SCENARIOS ?? 'bare,sqlite,pg1,pg2').split(',').map((s) => s.trim()))
const CPU_PROF = process.env.BENCH_CPU_PROF
const SQLITE_PROBE = process.env.BENCH_SQLITE_PROBE === '1'
const RUN_TAG = Date.now().toString(36)

interface Row {
  name: string
  load: LoadResult
  /** CPU time (user + system) of the server process(es) per 2xx answer, µs; Linux only. */
  cpuUs?: number
  check?: AckCheck
  note?: string
}

const rows: Row[] = []
const notes: string[] = []
const workDir = mkdtempSync(join(tmpdir(), 'ctfhive-bench-'))

function log (line: string): void {
  process.stderr.write(`${line}\n`)
}

function appEnv (databaseUrl: string): Record<string, string> {
  const env: Record<string, string> = { DATABASE_URL: databaseUrl, STRIPE_WEBHOOK_SECRET: SECRET, LOG_LEVEL: 'warn', WEBHOOK_WAIT_MS: '2000' }
  if (process.env.PG_POOL_SIZE !== undefined) env.PG_POOL_SIZE = process.env.PG_POOL_SIZE
  return env
}

function nodeArgs (probe = false): string[] {
  return [
    ...(CPU_PROF !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`] : []),
    ...(probe ? ['--import', fileURLToPath(new URL('./sqlite-probe.ts', import.meta.url))] : [])
  ]
}

/** Seconds of CPU (user + system, all threads) a process has used, from /proc; undefined elsewhere. */
function cpuSeconds (pid: number | undefined): number | undefined {
  if (pid === undefined || !existsSync(`/proc/${pid}/stat`)) return undefined
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

function totalCpu (pids: Array<number | undefined>): number | undefined {
  let sum = 0
  for (const pid of pids) {
    const s = cpuSeconds(pid)
    if (s === undefined) return undefined
    sum += s
  }
  return sum
}

async function startBare (): Promise<{ url: string, child: ChildProcess }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./bare-server.ts', import.meta.url))], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const m = /listening (\d+)/.exec(out)
      if (m !== null) resolve(Number(m[1]))
    })
    child.once('exit', (code) => { reject(new Error(`bare server exited (${code})`)) })
  })
  return { url: `http://127.0.0.1:${port}`, child }
}

/** Warm-up, then the measured run; every 2xx of both is checked afterwards. */
async function measure (urls: string[], path: string, pids: Array<number | undefined>, next: () => SignedBody): Promise<{ load: LoadResult, acked: string[], cpuUs?: number }> {
  const warm = await drive({ urls, path, connections: CONNECTIONS, durationS: WARMUP_S, next })
  const cpu0 = totalCpu(pids)
  const load = await drive({ urls, path, connections: CONNECTIONS, durationS: DURATION_S, next })
  const cpu1 = totalCpu(pids)
  const cpuUs = cpu0 === undefined || cpu1 === undefined || load.acked.length === 0 ? undefined : (cpu1 - cpu0) * 1e6 / load.acked.length
  return { load, acked: [...warm.acked, ...load.acked], cpuUs }
}

async function benchBare (): Promise<void> {
  log('· bare Fastify route')
  const bare = await startBare()
  try {
    // The same body factory as the webhook scenarios, so the client does the same work.
    const fake: BenchTenant[] = Array.from({ length: TENANTS }, (_, i) => ({ tenantId: i.toString(16).padStart(32, '0'), subscriptionId: `sub_bare_${i}` }))
    const next = webhookBodies({ secret: SECRET, tenants: fake, runTag: `${RUN_TAG}bare` })
    const { load, cpuUs } = await measure([bare.url], '/webhook', [bare.child.pid], next)
    rows.push({ name: 'bare Fastify POST (JSON, {ok:true})', load, cpuUs })
  } finally {
    bare.child.kill('SIGTERM')
  }
}

async function benchWebhook (name: string, databaseUrl: string, instances: number, check: (prefix: string, acked: string[]) => AckCheck | Promise<AckCheck>): Promise<void> {
  log(`· ${name}`)
  const tag = `${RUN_TAG}${rows.length}`
  const probe = SQLITE_PROBE && databaseUrl.startsWith('sqlite:')
  const probeOut = join(workDir, `probe-${tag}.json`)
  const env = { ...appEnv(databaseUrl), ...(probe ? { BENCH_SQLITE_PROBE_OUT: probeOut } : {}) }
  const servers: ServerProcess[] = []
  try {
    for (let i = 0; i < instances; i++) servers.push(await startServer({ env, nodeArgs: nodeArgs(probe) }))
    const tenants = await createPaidTenants({ baseUrl: servers[0]!.url, secret: SECRET, count: TENANTS, runTag: tag })
    const next = webhookBodies({ secret: SECRET, tenants, runTag: tag })
    const { load, acked, cpuUs } = await measure(servers.map((s) => s.url), '/billing/webhook', servers.map((s) => s.child.pid), next)
    // Graceful stop first, so the check reads what the app left behind, not what it is doing.
    await Promise.all(servers.map((s) => s.stop()))
    rows.push({ name, load, cpuUs, check: await check(`evt_bench_${tag}_`, acked) })
    if (probe && existsSync(probeOut)) notes.push(...probeSummary(probeOut))
  } finally {
    await Promise.all(servers.map((s) => s.kill()))
  }
}

/** What the SQLite probe saw over the app's whole life (set-up and warm-up included). */
function probeSummary (file: string): string[] {
  const { batchSizes, stats } = JSON.parse(readFileSync(file, 'utf8')) as { batchSizes: number[], stats: Array<{ key: string, n: number, ms: number, maxMs: number }> }
  const sorted = [...batchSizes].sort((a, b) => a - b)
  const q = (p: number): number => sorted[Math.floor(p * (sorted.length - 1))] ?? 0
  const units = batchSizes.reduce((a, b) => a + b, 0)
  const top = [...stats].sort((a, b) => b.ms - a.ms).slice(0, 7)
  return [
    `SQLite probe: ${fmt(batchSizes.length)} commits (one fsync each) for ${fmt(units)} transactions: ${(units / Math.max(1, batchSizes.length)).toFixed(1)} per commit (p50 ${q(0.5)}, p90 ${q(0.9)}, max ${q(1)})`,
    ...top.map((s) => `  ${fmt(s.ms).padStart(6)} ms  ${fmt(s.n).padStart(8)} × ${(s.ms * 1000 / s.n).toFixed(1).padStart(6)} µs (max ${s.maxMs.toFixed(1)} ms)  ${s.key}` +
      (units > 0 ? `  → ${(s.ms * 1000 / units).toFixed(1)} µs per transaction` : ''))
  ]
}

function fmt (n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function table (): string[] {
  const bare = rows.find((r) => r.name.startsWith('bare'))?.load.rps
  const head = ['scenario', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors', 'ratio vs bare', 'server CPU µs/req', 'acked events stored']
  const body = rows.map((r) => [
    r.name,
    fmt(r.load.rps),
    fmt(r.load.p50, 1),
    fmt(r.load.p99, 1),
    fmt(r.load.non2xx),
    fmt(r.load.errors),
    bare === undefined ? 'n/a' : `${(r.load.rps / bare).toFixed(2)}×`,
    r.cpuUs === undefined ? 'n/a' : fmt(r.cpuUs),
    r.check === undefined ? '—' : `${fmt(r.check.acked - r.check.missing - r.check.wrongOutcome)} / ${fmt(r.check.acked)}`
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)))
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`
  return [line(head), `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...body.map(line)]
}

function targets (): string[] {
  const bare = rows.find((r) => r.name.startsWith('bare'))?.load.rps
  const sqlite = rows.find((r) => r.name.startsWith('webhook, SQLite'))
  if (sqlite === undefined || bare === undefined) return ['targets: not evaluated (needs the bare and SQLite scenarios)']
  const ratio = sqlite.load.rps / bare
  const c = sqlite.check!
  const mark = (ok: boolean): string => (ok ? 'PASS' : 'MISS')
  return [
    `${mark(ratio >= 0.5)}  throughput ≥ 0.5× bare: ${ratio.toFixed(2)}×`,
    `${mark(sqlite.load.p99 <= 25)}  p99 ≤ 25 ms: ${fmt(sqlite.load.p99, 1)} ms`,
    `${mark(sqlite.load.non2xx === 0 && sqlite.load.errors === 0)}  zero non-2xx: ${sqlite.load.non2xx} non-2xx, ${sqlite.load.errors} socket errors or timeouts`,
    `${mark(c.missing === 0 && c.wrongOutcome === 0)}  every acked event stored: ${c.acked - c.missing - c.wrongOutcome} of ${c.acked} (${c.stored} bench events in stripe_events)`
  ]
}

async function main (): Promise<void> {
  const started = Date.now()
  const machine = `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'cpu'}, Node ${process.version}, ${process.platform}`
  log(`CTFHive webhook benchmark — ${machine}`)
  log(`${CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${DURATION_S} s per scenario, ${TENANTS} existing tenants, ~3.4 KB signed invoice.paid bodies, unique event ids`)

  if (SCENARIOS.has('bare')) await benchBare()
  if (SCENARIOS.has('sqlite')) {
    const path = join(workDir, 'bench.db')
    await benchWebhook('webhook, SQLite (WAL, synchronous=FULL, group commit)', `sqlite:${path}`, 1, (prefix, acked) => checkSqlite(path, prefix, acked))
  }
  if (SCENARIOS.has('pg1') || SCENARIOS.has('pg2')) {
    let pg: BenchPostgres | undefined
    try {
      pg = await startBenchPostgres()
    } catch (err) {
      notes.push(`PostgreSQL scenarios skipped: the server did not start (${(err as Error).message.split('\n')[0]})`)
    }
    if (pg === undefined && notes.length === 0) notes.push('PostgreSQL scenarios skipped: no PostgreSQL binaries under /usr/lib/postgresql/*/bin')
    if (pg !== undefined) {
      const url = pg.url
      notes.push(`PostgreSQL: ${pg.version}; pool ${process.env.PG_POOL_SIZE ?? 10} connections per app instance`)
      try {
        if (SCENARIOS.has('pg1')) await benchWebhook('webhook, PostgreSQL, 1 instance', url, 1, (prefix, acked) => checkPostgres(url, prefix, acked))
        if (SCENARIOS.has('pg2')) await benchWebhook('webhook, PostgreSQL, 2 instances', url, 2, (prefix, acked) => checkPostgres(url, prefix, acked))
      } finally {
        pg.stop()
      }
    }
  }

  const out = [
    '',
    ...table(),
    '',
    ...targets(),
    ...notes,
    ...rows.flatMap((r) => [
      ...(r.load.failures.length > 0 ? [`${r.name}: first non-2xx: ${r.load.failures.map((f) => `${f.status} ${f.body}`).join(' | ')}`] : []),
      ...(r.check !== undefined && r.check.examples.length > 0 ? [`${r.name}: acked but not stored: ${r.check.examples.join(', ')}`] : [])
    ]),
    `(${((Date.now() - started) / 1000).toFixed(0)} s)`
  ]
  process.stdout.write(`${out.join('\n')}\n`)

  if (process.env.BENCH_RESULTS !== '0' && rows.length > 0) {
    writeFileSync(new URL('./RESULTS.md', import.meta.url), [
      '# Benchmark results',
      '',
      `Last run: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC — ${machine}. Load generator (autocannon) on the same machine.`,
      `${CONNECTIONS} connections, ${WARMUP_S} s warm-up then ${DURATION_S} s measured per scenario; signed \`invoice.paid\` renewals`,
      `(~3.4 KB, unique event ids) for ${TENANTS} existing tenants, correlated by subscription metadata. The app runs as`,
      'its own process (`node api/server.ts`, LOG_LEVEL=warn); the bare route is a Fastify POST that parses the same JSON',
      'and answers `{ok:true}`, in a process of its own. Reproduce with `npm run bench`.',
      '',
      ...table(),
      '',
      '"acked events stored": events answered 2xx (warm-up included) found in `stripe_events` with outcome `ok`,',
      'read from the database after the app stopped. "server CPU µs/req": user + system CPU of the app process(es)',
      'per 2xx answer during the measured run (PostgreSQL\'s own processes not included). "errors": socket errors',
      'and timeouts seen by the load generator.',
      '',
      ...targets().map((t) => `- ${t}`),
      ...notes.map((n) => `- ${n}`),
      ''
    ].join('\n'))
  }
  const lost = rows.some((r) => r.check !== undefined && (r.check.missing > 0 || r.check.wrongOutcome > 0))
  if (lost) process.exitCode = 1
}

try {
  await main()
} finally {
  rmSync(workDir, { recursive: true, force: true })
}
