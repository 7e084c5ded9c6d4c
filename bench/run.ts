// `npm run bench`: signed Stripe webhook deliveries against the real server process on its
// durable stores, beside a bare Fastify POST route measured in the same run on the same
// machine. Prints req/s, latency and the ratio to the bare route, then checks that every
// event answered 2xx is in stripe_events, and writes the figures to bench/RESULTS.md.
//
// Knobs (environment): BENCH_ROUNDS (3), BENCH_DURATION_S (8, per round), BENCH_WARMUP_S (2), BENCH_CONNECTIONS (64),
// BENCH_TENANTS (256), BENCH_SCENARIOS (bare,sqlite,pg1,pg2), BENCH_CPU_PROF=<dir> (V8 CPU
// profiles of the servers), BENCH_SQLITE_PROBE=1 (commit batch sizes and statement times of the SQLite
// writer), BENCH_RESULTS=0 (do not write RESULTS.md), PG_POOL_SIZE (passed to the app).
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startServer, type ServerProcess } from '../tests/helpers/server-process.ts'
import { checkPostgres, checkSqlite, type AckCheck } from './acked-check.ts'
import { drive } from './load.ts'
import { startBenchPostgres, type BenchPostgres } from './postgres-server.ts'
import { ceilingLine, probeSummary, roundsLine, table, targets, type Row } from './report.ts'
import { webhookBodies, type BenchTenant, type SignedBody } from './stripe-bodies.ts'
import { createPaidTenants } from './tenants.ts'

const SECRET = 'whsec_bench_secret_for_ctfhive_benchmarks'
const num = (name: string, fallback: number): number => {
  const n = Number(process.env[name] ?? fallback)
  return Number.isFinite(n) && n > 0 ? n : fallback
}
const DURATION_S = num('BENCH_DURATION_S', 8)
const ROUNDS = num('BENCH_ROUNDS', 3)
const WARMUP_S = num('BENCH_WARMUP_S', 2)
const CONNECTIONS = num('BENCH_CONNECTIONS', 64)
const TENANTS = num('BENCH_TENANTS', 256)
const SCENARIOS = new Set((process.env.BENCH_SCENARIOS ?? 'bare,sqlite,pg1,pg2').split(',').map((s) => s.trim()))
const CPU_PROF = process.env.BENCH_CPU_PROF
const SQLITE_PROBE = process.env.BENCH_SQLITE_PROBE === '1'
const RUN_TAG = Date.now().toString(36)

/** A server under test: started once, loaded once per round, checked at the end. */
interface Target {
  row: Row
  urls: string[]
  path: string
  pids: Array<number | undefined>
  next: () => SignedBody
  /** Event ids answered 2xx, warm-up included. */
  acked: string[]
  /** Stops the server(s) and checks what they stored. */
  finish: () => Promise<void>
}

const notes: string[] = []
const workDir = mkdtempSync(join(tmpdir(), 'ctfhive-bench-'))
const windows: Array<[number, number]> = []

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

/** Seconds of CPU (user + system) a process (all threads) or its main thread has used, from /proc; undefined elsewhere. */
function cpuSeconds (pid: number | undefined, mainThread = false): number | undefined {
  const file = mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`
  if (pid === undefined || !existsSync(file)) return undefined
  const fields = readFileSync(file, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

function totalCpu (pids: Array<number | undefined>, mainThread = false): number | undefined {
  let sum = 0
  for (const pid of pids) {
    const s = cpuSeconds(pid, mainThread)
    if (s === undefined) return undefined
    sum += s
  }
  return sum
}

async function startBare (): Promise<{ url: string, child: ChildProcess }> {
  const child = spawn(process.execPath, [...nodeArgs(), fileURLToPath(new URL('./bare-server.ts', import.meta.url))], { stdio: ['ignore', 'pipe', 'inherit'] })
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

async function bareTarget (): Promise<Target> {
  const bare = await startBare()
  // The same body factory as the webhook scenarios, so the client does the same work.
  const fake: BenchTenant[] = Array.from({ length: TENANTS }, (_, i) => ({ tenantId: i.toString(16).padStart(32, '0'), subscriptionId: `sub_bare_${i}` }))
  return {
    row: { name: 'bare Fastify POST (JSON, {ok:true})', rounds: [] },
    urls: [bare.url],
    path: '/webhook',
    pids: [bare.child.pid],
    next: webhookBodies({ secret: SECRET, tenants: fake, runTag: `${RUN_TAG}bare` }),
    acked: [],
    finish: async () => { bare.child.kill('SIGTERM') }
  }
}

async function webhookTarget (name: string, databaseUrl: string, instances: number, check: (prefix: string, acked: string[]) => AckCheck | Promise<AckCheck>): Promise<Target> {
  const tag = `${RUN_TAG}${name.replace(/[^a-z0-9]/gi, '').slice(-8)}${instances}`
  const probe = SQLITE_PROBE && databaseUrl.startsWith('sqlite:')
  const probeOut = join(workDir, `probe-${tag}.json`)
  const env = { ...appEnv(databaseUrl), ...(probe ? { BENCH_SQLITE_PROBE_OUT: probeOut } : {}) }
  const servers: ServerProcess[] = []
  try {
    for (let i = 0; i < instances; i++) servers.push(await startServer({ env, nodeArgs: nodeArgs(probe) }))
    const tenants = await createPaidTenants({ baseUrl: servers[0]!.url, secret: SECRET, count: TENANTS, runTag: tag })
    const target: Target = {
      row: { name, rounds: [] },
      urls: servers.map((s) => s.url),
      path: '/billing/webhook',
      pids: servers.map((s) => s.child.pid),
      next: webhookBodies({ secret: SECRET, tenants, runTag: tag }),
      acked: [],
      finish: async () => {
        try {
          // Graceful stop first, so the check reads what the app left behind, not what it is doing.
          await Promise.all(servers.map((s) => s.stop()))
          target.row.check = await check(`evt_bench_${tag}_`, target.acked)
          if (probe && existsSync(probeOut)) notes.push(...probeSummary(probeOut, windows))
        } finally {
          await Promise.all(servers.map((s) => s.kill()))
        }
      }
    }
    return target
  } catch (err) {
    await Promise.all(servers.map((s) => s.kill()))
    throw err
  }
}

/** One measured round on one target (CPU read from /proc around it). */
async function measure (t: Target): Promise<void> {
  const cpu0 = totalCpu(t.pids)
  const main0 = totalCpu(t.pids, true)
  const load0 = process.cpuUsage()
  const startedAt = Date.now()
  const load = await drive({ urls: t.urls, path: t.path, connections: CONNECTIONS, durationS: DURATION_S, next: t.next })
  windows.push([startedAt, Date.now()])
  const loadCpu = process.cpuUsage(load0)
  const cpu1 = totalCpu(t.pids)
  const main1 = totalCpu(t.pids, true)
  // Not push(...acked): a fast bare round answers more ids than a call can take as arguments.
  for (const id of load.acked) t.acked.push(id)
  t.row.rounds.push({
    load,
    cpuS: cpu0 === undefined || cpu1 === undefined ? undefined : cpu1 - cpu0,
    mainS: main0 === undefined || main1 === undefined ? undefined : main1 - main0,
    loadS: (loadCpu.user + loadCpu.system) / 1e6
  })
}

async function main (): Promise<void> {
  const started = Date.now()
  const machine = `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'cpu'}, Node ${process.version}, ${process.platform}`
  log(`CTFHive webhook benchmark — ${machine}`)
  log(`${CONNECTIONS} connections; ${ROUNDS} rounds of ${DURATION_S} s per scenario, scenarios alternating, after a ${WARMUP_S} s warm-up; ${TENANTS} existing tenants, ~3.4 KB signed invoice.paid bodies, unique event ids`)

  const all: Target[] = []
  let pg: BenchPostgres | undefined
  try {
    if (SCENARIOS.has('bare')) all.push(await bareTarget())
    if (SCENARIOS.has('sqlite')) {
      const path = join(workDir, 'bench.db')
      all.push(await webhookTarget('webhook, SQLite (WAL, synchronous=FULL, group commit)', `sqlite:${path}`, 1, (prefix, acked) => checkSqlite(path, prefix, acked)))
    }
    if (SCENARIOS.has('pg1') || SCENARIOS.has('pg2')) {
      try {
        pg = await startBenchPostgres()
      } catch (err) {
        notes.push(`PostgreSQL scenarios skipped: the server did not start (${(err as Error).message.split('\n')[0]})`)
      }
      if (pg !== undefined) {
        const url = pg.url
        notes.push(`PostgreSQL: ${pg.version}; pool ${process.env.PG_POOL_SIZE ?? 10} connections per app instance`)
        if (SCENARIOS.has('pg1')) all.push(await webhookTarget('webhook, PostgreSQL, 1 instance', url, 1, (prefix, acked) => checkPostgres(url, prefix, acked)))
        if (SCENARIOS.has('pg2')) all.push(await webhookTarget('webhook, PostgreSQL, 2 instances', url, 2, (prefix, acked) => checkPostgres(url, prefix, acked)))
      }
    }
    for (const t of all) {
      log(`· warm-up: ${t.row.name}`)
      for (const id of (await drive({ urls: t.urls, path: t.path, connections: CONNECTIONS, durationS: WARMUP_S, next: t.next })).acked) t.acked.push(id)
    }
    // Alternating rounds: the machine's speed drifts by tens of percent over a minute here,
    // and each ratio compares two runs made seconds apart.
    for (let round = 1; round <= ROUNDS; round++) {
      for (const t of all) {
        log(`· round ${round}/${ROUNDS}: ${t.row.name}`)
        await measure(t)
      }
    }
  } finally {
    for (const t of all) await t.finish()
    pg?.stop()
  }

  const rows = all.map((t) => t.row)
  const out = [
    '',
    ...table(rows),
    '',
    ...targets(rows),
    roundsLine(rows),
    ceilingLine(rows),
    ...notes,
    ...rows.flatMap((r) => [
      ...r.rounds.flatMap((x) => x.load.failures).slice(0, 3).map((f) => `${r.name}: a non-2xx answer: ${f.status} ${f.body}`),
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
      `${CONNECTIONS} connections; after a ${WARMUP_S} s warm-up, ${ROUNDS} rounds of ${DURATION_S} s per scenario with the scenarios alternating;`,
      `signed \`invoice.paid\` renewals (~3.4 KB, unique event ids) for ${TENANTS} existing tenants, correlated by subscription metadata.`,
      'The app runs as its own process (`node api/server.ts`, LOG_LEVEL=warn); the bare route is a Fastify POST that parses',
      'the same JSON and answers `{ok:true}`, in a process of its own. Reproduce with `npm run bench`.',
      '',
      ...table(rows),
      '',
      '"req/s": mean of the rounds. "ratio vs bare": each round\'s req/s over the bare route\'s in the same round, median',
      'of the rounds (this machine\'s speed drifts; alternating rounds cancel it). "p50": median round; "p99": worst round.',
      '"acked events stored": events answered 2xx (warm-up included) found in `stripe_events` with outcome `ok`, read from',
      'the database after the app stopped. "server CPU µs/req": user + system CPU of the app process(es), all threads, per',
      '2xx answer in the measured rounds (PostgreSQL\'s own processes not included); "main thread": the event loop\'s share;',
      '"load gen. CPU": the benchmark\'s own process, autocannon building and signing each request.',
      '"errors": socket errors and timeouts seen by the load generator.',
      '',
      ...targets(rows).map((t) => `- ${t}`),
      `- ${roundsLine(rows)}`,
      ...(ceilingLine(rows) === '' ? [] : [`- ${ceilingLine(rows)}`]),
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
