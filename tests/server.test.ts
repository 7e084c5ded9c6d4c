// api/server.ts as a real process: SIGTERM stops accepting, lets an in-flight request finish
// (its effect committed), gives the worker's job leases back and exits 0; a second SIGTERM
// during that drain exits at once. With a Linode token, the start checks the settings.
import t from 'tap'
import { once } from 'node:events'
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { signPayload } from '../api/billing/signature.ts'
import { openStore } from '../api/store/index.ts'
import { appendAudit, verifyStoredChain } from '../api/provisioning/audit.ts'
import { startFakeLinode } from './helpers/fake-linode.ts'
import { makeTenant } from './store/contract.ts'
import { freePort, startServer, type ServerProcess } from './helpers/server-process.ts'
import { until } from './helpers/until.ts'
import { usePostgres } from './helpers/postgres.ts'
import { sharedTmpdir } from './helpers/shared-tmp.ts'
import { reapWithThisProcess } from './helpers/child-reaper.ts'
import { checkoutSession, makeEvent } from './helpers/stripe-events.ts'

const SECRET = 'whsec_test_graceful_shutdown_0123456789'

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => { setTimeout(resolve, ms) })
}

/** A Linode API that takes every request and never answers: a provisioning job stays running. */
async function hangingLinode (t: Teardown): Promise<{ url: string, firstRequest: Promise<string>, settingsCheck: Promise<string> }> {
  let checked: (path: string) => void = () => {}
  const settingsCheck = new Promise<string>((resolve) => { checked = resolve })
  let seen: (path: string) => void = () => {}
  const firstRequest = new Promise<string>((resolve) => { seen = resolve })
  const held: ServerResponse[] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    held.push(res)
    // The start's settings check reads /profile first (and, hanging there, nothing else); the
    // job's first call looks up the Cloud Firewall or a server.
    if (req.url?.startsWith('/v4/linode/instances') === true || req.url?.startsWith('/v4/networking/firewalls') === true) seen(`${req.method} ${req.url}`)
    else checked(`${req.method} ${req.url}`)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v4`, firstRequest, settingsCheck }
}
interface Teardown { teardown (fn: () => unknown): void }

interface SlowRequest {
  /** Sends the rest of the body. */
  finish (): void
  /** Everything the server wrote back, once it closed the connection. */
  readonly reply: Promise<string>
}

/**
 * A signed webhook POST whose body is sent in two parts. Resolves once the server has read the
 * request head and started on it (its `100 Continue`), so the request is in flight.
 */
async function slowWebhook (port: number, event: unknown, opts: { keepAlive?: boolean } = {}): Promise<SlowRequest> {
  const body = Buffer.from(JSON.stringify(event))
  const socket: Socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  let received = ''
  socket.on('data', (chunk: Buffer) => { received += chunk.toString('utf8') })
  const reply = new Promise<string>((resolve) => { socket.once('close', () => { resolve(received.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, '')) }) })
  socket.write([
    'POST /billing/webhook HTTP/1.1',
    `Host: 127.0.0.1:${port}`,
    'Content-Type: application/json',
    `Stripe-Signature: ${signPayload(SECRET, body)}`,
    `Content-Length: ${body.length}`,
    'Expect: 100-continue',
    // A proxy's pooled connection asks for nothing: HTTP/1.1 keeps it alive.
    ...(opts.keepAlive === true ? [] : ['Connection: close']),
    '', ''
  ].join('\r\n'))
  while (!received.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) {
    if (socket.destroyed) throw new Error(`the server closed the connection: ${received}`)
    await once(socket, 'data')
  }
  const half = Math.floor(body.length / 2)
  socket.write(body.subarray(0, half))
  return {
    finish: () => { socket.write(body.subarray(half)) },
    reply
  }
}

/** Opens a fresh connection: 'refused' once the server no longer listens, else the HTTP status it answers. */
function probe (port: number): Promise<'refused' | string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let data = ''
    socket.on('error', (err: NodeJS.ErrnoException) => { resolve(err.code === 'ECONNREFUSED' ? 'refused' : `error ${err.code}`) })
    socket.on('connect', () => { socket.end(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`) })
    socket.on('data', (chunk: Buffer) => { data += chunk.toString('utf8') })
    socket.on('close', () => { resolve(data.split('\r\n')[0] ?? '') })
  })
}

/** Probes until the listener is gone; returns what the probes saw on the way. */
async function untilRefused (port: number, server: ServerProcess): Promise<string[]> {
  const seen: string[] = []
  for (let i = 0; i < 400; i++) {
    const result = await probe(port)
    if (result === 'refused') return seen
    seen.push(result)
    if (server.child.exitCode !== null) break
    await sleep(25)
  }
  throw new Error(`the server kept accepting connections: ${seen.slice(-3).join(' | ')}\n${server.output()}`)
}

function paidCheckout (name: string): unknown {
  return makeEvent('checkout.session.completed', checkoutSession({ plan: 'solo', name, paymentStatus: 'paid', subscription: `sub_${name.replace(/\W/g, '')}` }))
}

t.test('SIGTERM: stops accepting, finishes the in-flight request, releases job leases, exits 0', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-shutdown-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const dbFile = join(dir, 'ctfhive.db')
  const linode = await hangingLinode(t)
  const server = await startServer({
    env: {
      DATABASE_URL: `sqlite:${dbFile}`,
      STRIPE_WEBHOOK_SECRET: SECRET,
      LINODE_API_TOKEN: 'test-token-for-shutdown',
      LINODE_API_BASE: linode.url,
      WEBHOOK_WAIT_MS: '0',
      BASE_DOMAIN: 'ctfhive.test'
    }
  })
  t.teardown(() => server.kill())
  const owner = `worker-${server.child.pid}-`
  t.equal(await linode.settingsCheck, 'GET /v4/profile', 'the start checks the Linode settings (that check hangs too)')

  // A paid checkout queues provisioning; the worker takes the job, and Linode never answers.
  const first = await slowWebhook(server.port, paidCheckout('Running Job CTF'))
  first.finish()
  t.match(await first.reply, /^HTTP\/1\.1 200 /, 'the first webhook is answered')
  t.match(await linode.firstRequest, /^(GET|POST) \/v4\//, 'the provisioning job is running')
  const db = new DatabaseSync(dbFile, { readOnly: true })
  t.teardown(() => { db.close() })
  const leased = db.prepare('SELECT id, status, lease_owner FROM jobs').all() as Array<{ id: number, status: string, lease_owner: string | null }>
  t.equal(leased.length, 1)
  t.equal(leased[0]!.status, 'running')
  t.ok(leased[0]!.lease_owner?.startsWith(owner), `leased by this process (${leased[0]!.lease_owner})`)

  // A second webhook is in flight (head read, half the body sent) when SIGTERM arrives.
  const inFlight = await slowWebhook(server.port, paidCheckout('In Flight CTF'))
  server.child.kill('SIGTERM')
  // Until the signal lands a probe may still be served; from then on none is: 503 while the
  // job runner stops, then the listener is closed (a connection caught in between is reset).
  const probes = (await untilRefused(server.port, server)).map((p) => p.startsWith('HTTP/1.1 ') ? p.slice(9, 12) : p)
  t.match(probes.join(' '), /^(200 ?)*((503|error ECONNRESET) ?)*$/, `new connections refused; on the way: ${probes.join(', ') || 'nothing'}`)
  t.equal(server.child.exitCode, null, 'still running while a request is in flight')

  inFlight.finish()
  const reply = await inFlight.reply
  t.match(reply, /^HTTP\/1\.1 200 /, 'the in-flight request is answered')
  t.match(JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)), { status: 'ok', type: 'checkout.session.completed' })
  t.same(await server.exited, { code: 0, signal: null }, 'exit 0')

  const tenants = db.prepare('SELECT name FROM tenants ORDER BY name').all() as Array<{ name: string }>
  t.same(tenants.map((r) => r.name), ['In Flight CTF', 'Running Job CTF'], "the in-flight request's effect is committed")
  const jobs = db.prepare('SELECT id, status, lease_owner, lease_until FROM jobs ORDER BY id').all() as Array<{ id: number, status: string, lease_owner: string | null, lease_until: number }>
  t.same(jobs.filter((j) => j.lease_owner?.startsWith(owner) === true), [], 'no job holds this worker\'s lease')
  t.match(jobs[0], { id: leased[0]!.id, status: 'running', lease_owner: null, lease_until: 0 }, 'the running job is free for another worker at once')
})

t.test('SIGTERM with a kept-alive request in flight: its answer closes the connection, and the drain ends', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-shutdown-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const server = await startServer({ env: { DATABASE_URL: `sqlite:${join(dir, 'ctfhive.db')}`, STRIPE_WEBHOOK_SECRET: SECRET, WEBHOOK_WAIT_MS: '0' } })
  t.teardown(() => server.kill())

  // As through a proxy: the connection is kept alive, and the client never closes it itself.
  const inFlight = await slowWebhook(server.port, paidCheckout('Kept Alive CTF'), { keepAlive: true })
  server.child.kill('SIGTERM')
  await untilRefused(server.port, server)
  t.equal(server.child.exitCode, null, 'still running while the request is in flight')
  inFlight.finish()
  // Resolves once the connection is closed: by the server after this answer, or only when
  // the process ends (after the 72 s keep-alive, or killed by the drain's 15 s grace).
  const reply = await inFlight.reply
  const head = reply.slice(0, reply.indexOf('\r\n\r\n'))
  t.match(head, /^HTTP\/1\.1 200 /, 'the in-flight request is answered')
  t.match(head, /\r\nconnection: close(\r\n|$)/i, 'with Connection: close')
  t.notMatch(head, /keep-alive/i, 'not kept alive')
  t.same(await server.exited, { code: 0, signal: null }, 'exit 0')
  t.notMatch(server.output(), /killed by timeout/, 'the drain ended by itself, not by its grace timeout')
})

t.test('SIGTERM with a request that never finishes arriving: cut off after 10 s, the store closed, exit 0', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-shutdown-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const dbFile = join(dir, 'ctfhive.db')
  const server = await startServer({ env: { DATABASE_URL: `sqlite:${dbFile}`, STRIPE_WEBHOOK_SECRET: SECRET, WEBHOOK_WAIT_MS: '0' } })
  t.teardown(() => server.kill())
  // Headers and half a body, then nothing: a stalled client, on every deploy.
  const stalled = await slowWebhook(server.port, paidCheckout('Stalled CTF'))
  server.child.kill('SIGTERM')
  t.same(await server.exited, { code: 0, signal: null }, 'exit 0, not the grace timeout\'s exit 1')
  t.notMatch(server.output(), /killed by timeout/)
  t.match(server.output(), /requests still in flight after 10 s of shutdown are cut off/)
  await stalled.reply.catch(() => '')
  t.notOk(existsSync(`${dbFile}-wal`), 'the store was closed (its WAL checkpointed and removed)')
})

t.test('with a Linode token the start checks the settings and logs what would fail every tenant', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-linode-check-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const linode = await startFakeLinode(t, { domains: ['ctfhive.test'] })
  // A tenant made under an older BASE_DOMAIN, its server still running: that zone is checked too.
  const made = await openStore({ databaseUrl: `sqlite:${join(dir, 'ctfhive.db')}`, pg: { poolSize: 1, statementTimeoutMs: 1000 } })
  await made.insertTenant(makeTenant({ infra: 'ready', fqdn: 'spring-abc123.old-hive.test' }))
  await made.close()
  const server = await startServer({
    env: {
      DATABASE_URL: `sqlite:${join(dir, 'ctfhive.db')}`,
      STRIPE_WEBHOOK_SECRET: SECRET,
      LINODE_API_TOKEN: linode.token,
      LINODE_API_BASE: linode.url,
      LINODE_REGION: 'ap-south',
      LINODE_PLAN: 'per-plan',
      BASE_DOMAIN: 'ctfhive.test'
    }
  })
  t.teardown(() => server.kill())
  // The lines come one write each, the region's first: wait for the whole last one.
  const last = /"check":"DNS zone old-hive\.test".*\n/
  await until(async () => last.test(server.output()), 'the check logged')
  const lines = server.output().split('\n').slice(0, -1).filter((l) => l.includes('linode-check')).map((l) => JSON.parse(l))
  t.match(lines, [
    { level: 50, component: 'linode-check', check: 'region', got: 'lacks Metadata (LINODE_REGION)', msg: /provisioning will fail until it is fixed/ },
    { level: 40, check: 'type g6-standard-1 (solo)' },
    { level: 40, check: 'DNS zone old-hive.test', got: /^no zone: tenants made under it/ }
  ])
  t.notMatch(server.output(), linode.token, 'no token in the log')
  t.equal((await fetch(`${server.url}/readyz`)).status, 200, 'the server serves anyway')
  await server.stop()
  t.same(await server.exited, { code: 0, signal: null })
})

t.test('a second SIGTERM during the drain exits at once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-shutdown-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const server = await startServer({ env: { DATABASE_URL: `sqlite:${join(dir, 'ctfhive.db')}`, STRIPE_WEBHOOK_SECRET: SECRET } })
  t.teardown(() => server.kill())

  // The drain waits on this request, whose body never completes.
  const stuck = await slowWebhook(server.port, paidCheckout('Stuck CTF'))
  server.child.kill('SIGTERM')
  await untilRefused(server.port, server)
  t.equal(server.child.exitCode, null, 'the first SIGTERM waits for the in-flight request')
  server.child.kill('SIGTERM')
  const exit = await server.exited
  t.not(exit.code, 0, `a non-zero exit (${exit.code})`)
  t.match(server.output(), /second SIGTERM, exiting/, 'ended by the second signal')
  t.notMatch(server.output(), /killed by timeout/, 'not by the drain timeout')
  t.notMatch(await stuck.reply, /^HTTP\/1\.1 \d/, 'the stuck request got no answer')
})

t.test('a store that cannot be opened stops the start with one line, no stack, no password', async (t) => {
  const { spawnSync } = await import('node:child_process')
  const r = spawnSync(process.execPath, ['api/server.ts'], {
    cwd: new URL('..', import.meta.url),
    // Port 1 refuses at once: nothing listens there.
    env: { PATH: process.env.PATH ?? '', DATABASE_URL: 'postgres://ctfhive:pw-must-not-show@127.0.0.1:1/ctfhive', LOG_LEVEL: 'silent' },
    encoding: 'utf8',
    timeout: 60_000
  })
  t.equal(r.status, 1, 'exit 1')
  const lines = r.stderr.trim().split('\n')
  t.equal(lines.length, 1, `one line: ${r.stderr}`)
  t.match(lines[0], /^ctfhive: could not open the store: could not connect to PostgreSQL: .*ECONNREFUSED/)
  t.notMatch(r.stderr, /pw-must-not-show/)
})

/**
 * api/server.ts on a SQLite DATABASE_URL, run to its exit; as `user` when given (we are root).
 * A server that starts instead is killed after 30 s (status null).
 */
function sqliteServerRun (databaseUrl: string, user?: string): { status: number | null, stderr: string } {
  const env = { PATH: process.env.PATH ?? '', DATABASE_URL: databaseUrl, LOG_LEVEL: 'silent', PORT: '0' }
  // Without tap's NODE_OPTIONS hook, which the other user may not write its records for.
  const [cmd, args] = user === undefined ? [process.execPath, ['api/server.ts']] : ['runuser', ['-u', user, '--', 'env', '-u', 'NODE_OPTIONS', process.execPath, 'api/server.ts']]
  const r = spawnSync(cmd, args, { cwd: new URL('..', import.meta.url), env, encoding: 'utf8', timeout: 30_000 })
  return { status: r.status, stderr: r.stderr }
}

t.test('a SQLite DATABASE_URL that cannot work stops the start as a setting: one line naming DATABASE_URL and the file, exit 78', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-open-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'not-a-dir'), '')
  writeFileSync(join(dir, 'junk.db'), 'not a database, but long enough to have a header'.repeat(100))
  const other = join(dir, 'other-app.db')
  const db = new DatabaseSync(other)
  db.exec('CREATE TABLE users (name TEXT)')
  db.close()
  // Cut to half, as a copy that ran out of room leaves it: restarting reads the same damage.
  const damaged = join(dir, 'damaged.db')
  await (await openStore({ databaseUrl: `sqlite:${damaged}`, pg: { poolSize: 1, statementTimeoutMs: 0 } })).close()
  truncateSync(damaged, statSync(damaged).size / 2)
  const cases = [
    { what: 'a directory', path: dir, says: /unable to open database file \(SQLITE_CANTOPEN/ },
    { what: 'a damaged file', path: damaged, says: /database disk image is malformed \(SQLITE_CORRUPT: the file is damaged; restore it from a backup, see Backups/ },
    { what: 'its directory is a file', path: join(dir, 'not-a-dir', 'ctfhive.db'), says: /EEXIST.*\(its directory cannot be created/ },
    { what: 'not a database', path: join(dir, 'junk.db'), says: /file is not a database \(SQLITE_NOTADB/ },
    { what: "another application's database", path: other, says: /^ctfhive: configuration error: DATABASE_URL: this is not a CTFHive database: it holds other tables \(users\)/ }
  ]
  for (const c of cases) {
    const r = sqliteServerRun(`sqlite:${c.path}`)
    t.equal(r.status, 78, `${c.what}: exit 78 (EX_CONFIG), not restarted`)
    t.equal(r.stderr.trim().split('\n').length, 1, `${c.what}: one line, no stack: ${r.stderr}`)
    t.match(r.stderr, /^ctfhive: configuration error: DATABASE_URL: /, `${c.what}: names the setting`)
    if (c.path !== other) t.ok(r.stderr.startsWith(`ctfhive: configuration error: DATABASE_URL: ${c.path}: `), `${c.what}: names the file`)
    t.match(r.stderr, c.says, `${c.what}: says why`)
  }
  const check = new DatabaseSync(other)
  t.same(check.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((r) => r.name), ['users'], "the other application's database was left as it was")
  check.close()
})

t.test('a SQLite file or directory this user may not write stops the start as a setting, exit 78', async (t) => {
  // Root writes whatever the modes say: the server runs as nobody then.
  const root = process.getuid?.() === 0
  if (root && spawnSync('runuser', ['-u', 'nobody', '--', 'true']).status !== 0) {
    t.plan(0, 'running as root, and runuser -u nobody is not available')
    return
  }
  const user = root ? 'nobody' : undefined
  const dir = mkdtempSync(join(root ? sharedTmpdir() : tmpdir(), 'ctfhive-readonly-'))
  const file = join(dir, 'ctfhive.db')
  await (await openStore({ databaseUrl: `sqlite:${file}`, pg: { poolSize: 1, statementTimeoutMs: 0 } })).close()
  mkdirSync(join(dir, 'private'), { mode: 0o500 })
  // A directory the server may write, holding a file it may not (a restore copied in as root,
  // or chmod 444): SQLite opens that file read-only and would fail only at the first write.
  const open = join(dir, 'open')
  mkdirSync(open)
  chmodSync(open, 0o777)
  const restored = join(open, 'ctfhive.db')
  copyFileSync(file, restored)
  chmodSync(restored, root ? 0o644 : 0o444)
  chmodSync(file, 0o444)
  chmodSync(dir, 0o555)
  t.teardown(() => {
    chmodSync(dir, 0o755)
    chmodSync(join(dir, 'private'), 0o755)
    rmSync(dir, { recursive: true, force: true })
  })
  const cases = [
    { what: 'a read-only file', path: file, says: /: attempt to write a readonly database \(SQLITE_READONLY/ },
    { what: 'a file it may not write, in a directory it may', path: restored, says: /: attempt to write a readonly database \(SQLITE_READONLY/ },
    { what: 'a directory it may not create', path: join(dir, 'private', 'data', 'ctfhive.db'), says: /: EACCES: .*\(its directory cannot be created/ }
  ]
  for (const c of cases) {
    const r = sqliteServerRun(`sqlite:${c.path}`, user)
    t.equal(r.status, 78, `${c.what}: exit 78: ${r.stderr}`)
    t.equal(r.stderr.trim().split('\n').length, 1, `${c.what}: one line`)
    t.ok(r.stderr.startsWith(`ctfhive: configuration error: DATABASE_URL: ${c.path}: `), `${c.what}: names the setting and the file: ${r.stderr}`)
    t.match(r.stderr, c.says, `${c.what}: says why`)
  }
})

t.test('the database file replaced by mv under a running server: webhooks answer 500 (none is acknowledged into the old file), /readyz 503, one error line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-replaced-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const dbFile = join(dir, 'ctfhive.db')
  const server = await startServer({ env: { DATABASE_URL: `sqlite:${dbFile}`, STRIPE_WEBHOOK_SECRET: SECRET, WEBHOOK_WAIT_MS: '0' } })
  t.teardown(() => server.kill())
  const post = async (name: string): Promise<number> => {
    const body = JSON.stringify(paidCheckout(name))
    const r = await fetch(`${server.url}/billing/webhook`, { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': signPayload(SECRET, body) }, body })
    await r.arrayBuffer()
    return r.status
  }
  t.equal(await post('Before CTF'), 200, 'stored before the swap')
  // A restore done by mv while the server runs: a copy of the file, renamed over it.
  copyFileSync(dbFile, join(dir, 'restored.db'))
  renameSync(join(dir, 'restored.db'), dbFile)
  t.equal(await post('After CTF'), 500, 'a webhook after the swap is refused (Stripe retries it)')
  t.equal((await fetch(`${server.url}/readyz`)).status, 503, 'not ready')
  t.equal(await post('Later CTF'), 500, 'and so is the next')
  await server.stop()
  const lines = server.output().split('\n').filter((l) => l.includes('was replaced or removed while the server runs') && l.includes('"component":"store"'))
  t.equal(lines.length, 1, 'one error line from the store')
})

/** Starts api/server.ts on DATABASE_URL and waits for it to exit: its status and what it wrote to stderr. */
async function serverRun (databaseUrl: string): Promise<{ status: number | null, stderr: string }> {
  const child = spawn(process.execPath, ['api/server.ts'], {
    cwd: new URL('..', import.meta.url),
    env: { PATH: process.env.PATH ?? '', DATABASE_URL: databaseUrl, LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const [status] = await once(child, 'close') as [number | null]
  return { status, stderr }
}

/**
 * A PostgreSQL server that answers every start-up message with one FATAL ErrorResponse (the
 * wire protocol's 'E' message), as a real one does for a wrong password or database name.
 */
async function refusingPostgres (t: Teardown, code: string, message: string): Promise<number> {
  const { createServer: createTcpServer } = await import('node:net')
  const field = (type: string, value: string): Buffer => Buffer.concat([Buffer.from(type), Buffer.from(value), Buffer.from([0])])
  const fields = Buffer.concat([field('S', 'FATAL'), field('V', 'FATAL'), field('C', code), field('M', message), Buffer.from([0])])
  const length = Buffer.alloc(4)
  length.writeInt32BE(fields.length + 4)
  const reply = Buffer.concat([Buffer.from('E'), length, fields])
  const server = createTcpServer((socket) => {
    socket.once('data', () => { socket.end(reply) })
    socket.on('error', () => {})
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => { server.close(() => { resolve() }) }))
  return (server.address() as AddressInfo).port
}

t.test('PostgreSQL refusing the user, password or database stops the start as a setting: one line naming DATABASE_URL, exit 78', async (t) => {
  const cases = [
    { code: '28P01', message: 'password authentication failed for user "ctfhive"', says: /refused the user name or password \(SQLSTATE 28P01\)/ },
    { code: '3D000', message: 'database "ctfhive" does not exist', says: /the database it names does not exist on that server \(SQLSTATE 3D000\)/ },
    { code: '28000', message: 'no pg_hba.conf entry for host "127.0.0.1"', says: /no pg_hba.conf entry allows it/ }
  ]
  for (const c of cases) {
    const port = await refusingPostgres(t, c.code, c.message)
    // Not spawnSync: the refusing server answers from this process's event loop.
    const r = await serverRun(`postgres://ctfhive:pw-must-not-show@127.0.0.1:${port}/ctfhive`)
    t.equal(r.status, 78, `${c.code}: exit 78 (EX_CONFIG), not restarted`)
    const lines = r.stderr.trim().split('\n')
    t.equal(lines.length, 1, `${c.code}: one line: ${r.stderr}`)
    t.match(lines[0], /^ctfhive: configuration error: DATABASE_URL: /, `${c.code}: names the setting`)
    t.match(lines[0], c.says, `${c.code}: says what is wrong`)
    t.notMatch(r.stderr, /pw-must-not-show/, `${c.code}: no password`)
  }
})

t.test('a PostgreSQL user that may not create the schema (PostgreSQL 15 grants no CREATE on public) stops the start as a setting', async (t) => {
  const server = await usePostgres(t)
  if (server === undefined) return
  const url = new URL(await server.createDatabase())
  const role = `ctfhive_limited_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: server.adminUrl })
  await admin.connect()
  await admin.query(`CREATE ROLE ${role} LOGIN`)
  await admin.end()
  t.teardown(async () => {
    const c = new pg.Client({ connectionString: server.adminUrl })
    await c.connect()
    await c.query(`DROP ROLE IF EXISTS ${role}`).finally(() => c.end())
  })
  url.username = role
  const { status, stderr } = await serverRun(url.toString())
  t.equal(status, 78, 'exit 78 (EX_CONFIG)')
  t.equal(stderr.trim().split('\n').length, 1, `one line: ${stderr}`)
  t.match(stderr, /^ctfhive: configuration error: DATABASE_URL: its user may not create or change this database's tables .*\(SQLSTATE 42501\)/)
})

t.test('a HOST or PORT the server cannot listen on stops the start with one configuration line and exit 78', async (t) => {
  const { spawnSync } = await import('node:child_process')
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-listen-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // A port this process holds: the server's listen finds it taken.
  const taken = createServer()
  taken.listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => { taken.close() })
  const port = (taken.address() as AddressInfo).port
  const cases: Array<[Record<string, string>, RegExp]> = [
    // 192.0.2.0/24 is for documentation: no machine has it.
    [{ HOST: '192.0.2.1', PORT: '0' }, /^ctfhive: configuration error: HOST: 192\.0\.2\.1 is not an address of this machine \(EADDRNOTAVAIL\)/],
    // .invalid never resolves (RFC 6761).
    [{ HOST: 'ctfhive-listen-test.invalid', PORT: '0' }, /^ctfhive: configuration error: HOST: "ctfhive-listen-test\.invalid" resolves to no address \(ENOTFOUND\)/],
    [{ HOST: '127.0.0.1', PORT: String(port) }, new RegExp(`^ctfhive: configuration error: PORT: ${port} on 127\\.0\\.0\\.1 is already in use \\(EADDRINUSE\\)`)],
    // Refused by its shape, before the store opens.
    [{ HOST: 'not a host', PORT: '0' }, /^ctfhive: configuration error: HOST: must be an IP address/]
  ]
  for (const [env, line] of cases) {
    const r = spawnSync(process.execPath, ['api/server.ts'], {
      cwd: new URL('..', import.meta.url),
      env: { PATH: process.env.PATH ?? '', DATABASE_URL: `sqlite:${join(dir, 'ctfhive.db')}`, LOG_LEVEL: 'silent', ...env },
      encoding: 'utf8',
      timeout: 60_000
    })
    t.equal(r.status, 78, `${env.HOST}:${env.PORT}: exit 78, which the systemd unit does not restart`)
    const lines = r.stderr.trim().split('\n')
    t.equal(lines.length, 1, `one line: ${r.stderr}`)
    t.match(lines[0], line)
    t.equal(r.stdout, '', 'no log line either')
  }
})

t.test('a PROVISION_AUDIT_SECRET that is not the chain\'s key stops the start with one line; the chain\'s key, or an empty chain, starts', async (t) => {
  const { spawnSync } = await import('node:child_process')
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-audit-key-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const written = 'audit-key-the-chain-was-written-with-0123'
  const changed = 'audit-key-changed-since-0123456789abcdef'
  const DATABASE_URL = `sqlite:${join(dir, 'ctfhive.db')}`

  // An empty chain takes any key.
  const fresh = await startServer({ env: { DATABASE_URL, PROVISION_AUDIT_SECRET: changed } })
  t.teardown(() => fresh.kill())
  t.equal((await fetch(`${fresh.url}/readyz`)).status, 200, 'an empty chain: the server starts')
  await fresh.stop()

  // Entries written under the first key; the last is the one the next append chains to.
  const store = await openStore({ databaseUrl: DATABASE_URL, pg: { poolSize: 1, statementTimeoutMs: 1000 } })
  for (let i = 0; i < 3; i++) await appendAudit(store, written, 'a'.repeat(32), 'step', { i })
  await store.close()

  const r = spawnSync(process.execPath, ['api/server.ts'], {
    cwd: new URL('..', import.meta.url),
    env: { PATH: process.env.PATH ?? '', DATABASE_URL, PROVISION_AUDIT_SECRET: changed, LOG_LEVEL: 'silent' },
    encoding: 'utf8',
    timeout: 60_000
  })
  t.equal(r.status, 78, 'exit 78, as for a bad setting (EX_CONFIG)')
  const lines = r.stderr.trim().split('\n')
  t.equal(lines.length, 1, `one line: ${r.stderr}`)
  t.match(lines[0], /^ctfhive: configuration error: PROVISION_AUDIT_SECRET: is not the key .*audit chain.*must never change/)
  t.notMatch(r.stderr + r.stdout, changed, 'the key is not printed')
  const after = await openStore({ databaseUrl: DATABASE_URL, pg: { poolSize: 1, statementTimeoutMs: 1000 } })
  t.equal((await after.listAudit({})).length, 3, 'nothing was appended')
  t.match(await verifyStoredChain(after, written), { ok: true, entries: 3 }, 'the chain is intact under its key')
  await after.close()

  const right = await startServer({ env: { DATABASE_URL, PROVISION_AUDIT_SECRET: written } })
  t.teardown(() => right.kill())
  t.equal((await fetch(`${right.url}/readyz`)).status, 200, 'the chain\'s key: the server starts')
  await right.stop()
  t.same(await right.exited, { code: 0, signal: null })
})

t.test('npm start: the script becomes the server, so the SIGTERM npm passes on reaches it', async (t) => {
  const root = new URL('..', import.meta.url)
  const script = (JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { scripts: { start: string } }).scripts.start
  t.match(script, /(^|&& )exec node api\/server\.ts$/, 'the last command replaces the shell')
  // npm runs the script with `sh -c` and signals that process. The same line here, its builds
  // (not under test, and they would write into the checkout) replaced by `true`.
  const commands = script.split(' && ')
  const line = [...commands.slice(0, -1).map(() => 'true'), commands.at(-1)].join(' && ')
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-npm-start-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const port = await freePort()
  const child = spawn('sh', ['-c', line], {
    cwd: root,
    env: { PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', DATABASE_URL: `sqlite:${join(dir, 'ctfhive.db')}` },
    stdio: 'ignore',
    // Its own process group: whatever the shell leaves behind is killed with it below.
    detached: true
  })
  t.teardown(() => { try { process.kill(-child.pid!, 'SIGKILL') } catch {} })
  // And if this test process is ended (SIGINT, SIGTERM, tap's timeout) before that teardown.
  reapWithThisProcess(child, { group: true })
  const exited = once(child, 'exit')
  await until(async () => (await probe(port)).startsWith('HTTP/1.1 200 '), 'the server answers', 30_000)
  child.kill('SIGTERM')
  t.same(await exited, [0, null], 'the signalled process is the server, and it shut down cleanly')
  t.equal(await probe(port), 'refused', 'nothing is left listening')
})
