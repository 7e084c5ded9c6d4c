import { randomBytes } from 'node:crypto'
import t from 'tap'
import { spawn } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { connect } from 'node:net'
import { once } from 'node:events'
import { createLogger, maskUrl, serializeRequest } from '../api/logger.ts'
import { StripeError } from '../api/billing/stripe-client.ts'
import { loadConfig } from '../api/config.ts'
import { buildTestApp } from './helpers/build-app.ts'
import { deliver, invoice, makeEvent } from './helpers/stripe-events.ts'
import { reapWithThisProcess } from './helpers/child-reaper.ts'

t.test('logs carry request ids and never secrets', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const secrets = { SECRET_KEY: 'secret-key-value-0123456789abcdef', PROVISION_AUDIT_SECRET: 'audit-secret-value-0123456789', ADMIN_TOKEN: 'admin-token-value-42' }
  const { app } = await buildTestApp(t, { logLines: lines, env: secrets })
  const r = await app.inject({
    method: 'POST',
    url: '/billing/checkout',
    headers: { authorization: 'Bearer very-private-token', cookie: 'session=abc123secret', 'x-request-id': 'req-from-proxy-1' },
    payload: { plan: 'solo', name: `Leak ${secrets.SECRET_KEY}` }
  })
  t.equal(r.headers['x-request-id'], 'req-from-proxy-1', 'the proxy’s request id is kept and echoed')
  const w = await deliver(app, makeEvent('invoice.paid', invoice({ subscription: 'sub_log' })), { secret: 'whsec_wrong' })
  t.equal(w.statusCode, 400)
  app.log.info({ config: app.config }, 'a careless line logging the whole config')
  const text = lines.map((l) => JSON.stringify(l)).join('\n')
  t.ok(lines.some((l) => l.reqId === 'req-from-proxy-1'), 'request lines carry the id')
  for (const needle of ['very-private-token', 'abc123secret', 'whsec_test_secret_for_ctfhive_tests', ...Object.values(secrets)]) {
    t.notOk(text.includes(needle), `no ${needle.slice(0, 12)}… in the logs`)
  }
  t.ok(text.includes('[Redacted]'), 'redaction happened')
  const generated = await app.inject('/healthz')
  t.match(generated.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'a generated id otherwise')
})

t.test('fields named password, root_pass, token or secret are redacted at depths 1 to 3', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, cb) { lines.push(String(chunk)); cb() } })
  const log = createLogger(loadConfig({ LOG_LEVEL: 'info' }), stream)
  for (const name of ['password', 'root_pass', 'token', 'secret']) {
    // Not configured secrets, so only redaction by path can hide them.
    const leak = (depth: number): string => `leak-${name}-at-depth-${depth}`
    log.info({
      [name]: leak(1),
      body: { [name]: leak(2), label: 'kept' },
      list: [{ [name]: leak(3) }],
      job: { payload: { [name]: leak(3) } }
    }, 'a line with secrets in it')
    const line = JSON.parse(lines.at(-1)!)
    t.notOk(lines.at(-1)!.includes(`leak-${name}`), `no ${name} in the line`)
    t.equal(line[name], '[Redacted]', `${name} at depth 1`)
    t.equal(line.body[name], '[Redacted]', `${name} at depth 2`)
    t.equal(line.list[0][name], '[Redacted]', `${name} in an array item`)
    t.equal(line.job.payload[name], '[Redacted]', `${name} at depth 3`)
    t.equal(line.body.label, 'kept', 'other fields are kept')
  }
})

t.test('headers that carry credentials are redacted wherever a line logs headers', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, cb) { lines.push(String(chunk)); cb() } })
  const log = createLogger(loadConfig({ LOG_LEVEL: 'info' }), stream)
  // The request serializer logs no headers today; these paths guard a line that one day does.
  const headers = { authorization: 'Bearer leak-auth', 'stripe-signature': 't=1,v1=leak-signature', cookie: 'sid=leak-cookie', accept: 'kept' }
  log.info({ req: { headers }, headers, res: { headers: { 'set-cookie': 'sid=leak-set-cookie' } } }, 'a line with headers')
  const line = JSON.parse(lines.at(-1)!)
  t.notOk(lines.at(-1)!.includes('leak-'), 'no credential in the line')
  t.equal(line.req.headers, undefined, "a request's headers are not logged at all (its serializer)")
  t.same(line.headers, { authorization: '[Redacted]', 'stripe-signature': '[Redacted]', cookie: '[Redacted]', accept: 'kept' }, 'headers logged as such are redacted')
  t.equal(line.res.headers['set-cookie'], '[Redacted]')
})

t.test('a secret that begins with another is scrubbed whole', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, cb) { lines.push(String(chunk)); cb() } })
  // A rotated webhook secret that extends the old one, listed after it.
  const log = createLogger(loadConfig({ STRIPE_WEBHOOK_SECRET: 'whsec_oldsecret,whsec_oldsecret_rotated_2026' }), stream)
  log.info('secrets: whsec_oldsecret_rotated_2026 and whsec_oldsecret')
  const msg = JSON.parse(lines[0]!).msg as string
  t.equal(msg, 'secrets: [Redacted] and [Redacted]')
})

t.test('a secret with quotes or backslashes is scrubbed as the line escapes it', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, cb) { lines.push(String(chunk)); cb() } })
  const secret = 'abc"def\\ghi-0123456789-quoted-secret'
  const log = createLogger(loadConfig({ SECRET_KEY: secret }), stream)
  log.info({ detail: `careless ${secret}` }, 'a field')
  t.equal(JSON.parse(lines[0]!).detail, 'careless [Redacted]')
  t.notMatch(lines[0]!, 'quoted-secret', 'no part of it in the written line')
})

t.test("a logged error keeps its own type (Stripe's) beside its class", async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, cb) { lines.push(String(chunk)); cb() } })
  const log = createLogger(loadConfig({ LOG_LEVEL: 'info' }), stream)
  log.error({ err: new StripeError('No such price', { type: 'invalid_request_error', code: 'resource_missing', statusCode: 400 }) }, 'stripe checkout failed')
  log.error({ err: new Error('plain') }, 'plain')
  const [stripe, plain] = lines.map((l) => JSON.parse(l))
  t.match(stripe.err, { type: 'StripeError', error_type: 'invalid_request_error', code: 'resource_missing', message: 'No such price' })
  t.equal(plain.err.error_type, undefined, 'nothing added to an error without a type of its own')
  t.equal(plain.err.type, 'Error')
  // Not every err is an Error; its own type is kept all the same, and the object left alone.
  const odd: Record<string, unknown> = { type: 'odd', message: 'not an Error' }
  log.error({ err: odd }, 'odd')
  t.match(JSON.parse(lines[2]!).err, { message: 'not an Error', error_type: 'odd' })
  t.notOk('error_type' in odd, "the caller's object is left as it was")
})

t.test('logged URLs keep path and query but not the welcome token or the checkout session', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const { app } = await buildTestApp(t, { logLines: lines })
  const token = randomBytes(20).toString('hex')
  const id = randomBytes(16).toString('hex')
  await app.inject(`/tenants/${id}/credentials?token=${token}`)
  await app.inject(`/welcome?tenant=${id}&token=${token}&ref=mail`)
  await app.inject('/billing/success?session_id=cs_test_a1b2c3d4e5f6g7h8')
  const urls = lines.flatMap((l) => (l.req as { url?: string } | undefined)?.url ?? [])
  t.same(urls, [
    `/tenants/${id}/credentials?token=[Redacted]`,
    `/welcome?tenant=${id}&token=[Redacted]&ref=mail`,
    '/billing/success?session_id=[Redacted]'
  ])
  const text = lines.map((l) => JSON.stringify(l)).join('\n')
  t.notOk(text.includes(token), 'no welcome token in the logs')
  t.notOk(text.includes('a1b2c3d4e5f6g7h8'), 'no checkout session id in the logs')

  // Naming a req serializer replaces pino's defaults; errors must still log in full.
  app.log.error({ err: new Error('boom') }, 'failed')
  const err = lines.at(-1)!.err as { message?: string, stack?: string }
  t.equal(err.message, 'boom')
  t.match(err.stack, /^Error: boom\n/)
})

t.test('maskUrl masks secret parameters however they are spelled, and nothing else', async (t) => {
  t.equal(maskUrl('/healthz'), '/healthz')
  t.equal(maskUrl('/x?a=1&b=2'), '/x?a=1&b=2')
  t.equal(maskUrl('/x?Token=a&%74oken=b&session%5Fid=c&token&q=token&plan=solo'),
    '/x?Token=[Redacted]&%74oken=[Redacted]&session%5Fid=[Redacted]&token&q=token&plan=solo')
  t.equal(maskUrl('/welcome?tenant=t&token[]=a&token%00=b&;token=c&tokens=d&a=b?token=e&q=x%3Fsession_id%3Dcs_f'),
    '/welcome?tenant=t&token[]=[Redacted]&token%00=[Redacted]&;token=[Redacted]&tokens=[Redacted]&a=[Redacted]&q=[Redacted]',
    'a mangled link still carries a working secret: names that contain one and values that hold one are masked')
  t.equal(maskUrl('/x?token=a&token=b'), '/x?token=[Redacted]&token=[Redacted]', 'every occurrence')
  t.equal(maskUrl('/x?%zz=1&token=a'), '/x?%zz=1&token=[Redacted]', 'a malformed name is kept as it is')
  // A link whose "?" got encoded carries its secrets in the path.
  const tok = 'a'.repeat(40)
  t.equal(maskUrl(`/welcome%3Ftenant=${'b'.repeat(32)}&token=${tok}`), '/welcome%3F[Redacted]')
  t.equal(maskUrl(`/tenants/${'b'.repeat(32)}/credentials%3ftoken=${tok}`), `/tenants/${'b'.repeat(32)}/credentials%3f[Redacted]`)
  t.equal(maskUrl('/billing/success%3Fsession_id=cs_test_x?plan=solo'), '/billing/success%3F[Redacted]?plan=solo')
  t.equal(maskUrl(`/welcome;token=${tok}/x`), '/[Redacted]/x', 'no encoded "?": the whole segment')
  t.equal(maskUrl('/docs/tokens/session-ids/'), '/docs/tokens/session-ids/', 'a path that only names them is kept')
  const req = serializeRequest({ method: 'GET', url: '/welcome?token=abc', ip: '203.0.113.9', host: 'h', headers: {}, socket: { remotePort: 4000 } })
  t.same(req, { method: 'GET', url: '/welcome?token=[Redacted]', version: undefined, host: 'h', remoteAddress: '203.0.113.9', remotePort: 4000 })
})

t.test('one access line per request, at its end, with the request and the answer; an aborted one has its own', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const { app } = await buildTestApp(t, { logLines: lines })
  const r = await app.inject({ method: 'GET', url: '/openapi.json', headers: { 'x-request-id': 'access-line-1' } })
  t.equal(r.statusCode, 200)
  const mine = lines.filter((l) => l.reqId === 'access-line-1')
  t.same(mine.map((l) => l.msg), ['request completed'], 'one line, not two')
  t.match(mine[0], { level: 30, req: { method: 'GET', url: '/openapi.json' }, res: { statusCode: 200 }, responseTime: Number })

  // A client that sends half a body and leaves: no answer ends it, the abort hook writes its line.
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write('POST /billing/checkout HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: access-line-2\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"plan":')
  await new Promise((resolve) => setTimeout(resolve, 50))
  socket.destroy()
  const deadline = Date.now() + 5000
  while (!lines.some((l) => l.reqId === 'access-line-2') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  t.match(lines.filter((l) => l.reqId === 'access-line-2'), [{ msg: 'request aborted', req: { method: 'POST', url: '/billing/checkout' } }])
})

t.test('a URL the router refuses (bad_url, uri_too_long) still gets its access line, with its id and the URL masked', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const { app } = await buildTestApp(t, { logLines: lines, env: { ADMIN_TOKEN: 'admin-token-for-logger-tests-0123456789' } })
  const token = randomBytes(20).toString('hex')
  const r = await app.inject({ method: 'GET', url: `/%zz?token=${token}`, headers: { 'x-request-id': 'bad-url-1' } })
  t.equal(r.statusCode, 400)
  t.equal(r.json().error, 'bad_url')
  t.equal(r.headers['x-request-id'], 'bad-url-1')
  const mine = lines.filter((l) => l.reqId === 'bad-url-1')
  t.same(mine.map((l) => l.msg), ['request completed'], 'one line')
  t.match(mine[0], { level: 30, req: { method: 'GET', url: '/%zz?token=[Redacted]' }, res: { statusCode: 400 }, responseTime: Number })
  t.notOk(JSON.stringify(lines).includes(token), 'no token in the logs')

  // A segment longer than the router takes (inject has no header limit to stop it first).
  const long = await app.inject({ method: 'POST', url: `/admin/tenants/${'a'.repeat(16 * 1024 + 1)}/retry`, headers: { 'x-request-id': 'bad-url-2' } })
  t.equal(long.statusCode, 414)
  t.match(lines.filter((l) => l.reqId === 'bad-url-2'), [{ msg: 'request completed', res: { statusCode: 414 } }])

  // On the wire too, where the response closes after it finishes: still one line.
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const wire = await fetch(`http://127.0.0.1:${port}/%zz`, { headers: { 'x-request-id': 'bad-url-3' } })
  t.equal(wire.status, 400)
  await wire.arrayBuffer()
  const deadline = Date.now() + 5000
  while (!lines.some((l) => l.reqId === 'bad-url-3') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.match(lines.filter((l) => l.reqId === 'bad-url-3'), [{ msg: 'request completed', res: { statusCode: 400 } }])
  t.equal(lines.filter((l) => l.reqId === 'bad-url-3').length, 1, 'one line')
})

const LOGGER = new URL('../api/logger.ts', import.meta.url).href
const CONFIG = new URL('../api/config.ts', import.meta.url).href

interface Ran { code: number | null, signal: NodeJS.Signals | null, out: string, err: string }

/**
 * Runs `script` (an ES module; `createLogger`, `stdoutDestination`, `loadConfig` and `once` in
 * scope) with stdout on `stdout` ('pipe' or a file descriptor), under `sh -c` so a limit can be
 * set first. A process still running after 30 s (a hung exit) is killed.
 */
async function runLogging (script: string, stdout: 'pipe' | number, shellPrefix = ''): Promise<Ran> {
  const code = `const { createLogger, stdoutDestination } = await import(${JSON.stringify(LOGGER)})
const { loadConfig } = await import(${JSON.stringify(CONFIG)})
const { once } = await import('node:events')
${script}`
  const child = spawn('sh', ['-c', `${shellPrefix} exec "$0" --input-type=module -e "$1"`, process.execPath, code], { stdio: ['ignore', stdout, 'pipe'] })
  reapWithThisProcess(child)
  let out = ''
  let err = ''
  child.stdout?.on('data', (chunk: Buffer) => { out += chunk.toString('utf8') })
  child.stderr?.on('data', (chunk: Buffer) => { err += chunk.toString('utf8') })
  const hung = setTimeout(() => { child.kill('SIGKILL') }, 30_000)
  const [exitCode, signal] = await once(child, 'close') as [number | null, NodeJS.Signals | null]
  clearTimeout(hung)
  return { code: exitCode, signal, out, err }
}

function count (text: string, pattern: RegExp): number {
  return text.split('\n').filter((line) => pattern.test(line)).length
}

t.test('a stdout that fails (a full disk: /dev/full) neither crashes the process nor hangs its exit', async (t) => {
  const full = openSync('/dev/full', 'w')
  t.teardown(() => { closeSync(full) })
  // Writes fail while it runs: one note on stderr, then an ordinary exit with the code it asked for.
  const running = await runLogging(`
const { symbols } = await import(${JSON.stringify(import.meta.resolve('pino'))})
const log = createLogger(loadConfig({}))
log.info('first')
await once(log[symbols.streamSym], 'error')
log.info('second')
await new Promise((resolve) => setTimeout(resolve, 100))
process.exit(3)`, full)
  t.same([running.code, running.signal], [3, null], 'exit 3, as asked, not killed after hanging')
  t.equal(count(running.err, /^ctfhive: log lines cannot be written to stdout \(ENOSPC\)/), 1, 'one note on stderr')
  t.notMatch(running.err, /uncaught|Error:|shutting down/i, 'no uncaught exception')

  // The first failure is the flush at exit itself.
  const atExit = await runLogging(`
const log = createLogger(loadConfig({}))
log.info('first')
log.info('second')
process.exit(3)`, full)
  t.same([atExit.code, atExit.signal], [3, null], 'exit 3 at once')
  t.match(atExit.err, /ctfhive: (the last log lines were dropped at exit: stdout failed|log lines cannot be written to stdout) \(ENOSPC\)/)
})

t.test('lines logged just before exit are still written', async (t) => {
  const ran = await runLogging(`
const log = createLogger(loadConfig({}))
for (let i = 0; i < 5; i++) log.info('line ' + i)
process.exit(0)`, 'pipe')
  t.equal(ran.code, 0)
  t.same(ran.out.trim().split('\n').map((l) => JSON.parse(l).msg).sort(), ['line 0', 'line 1', 'line 2', 'line 3', 'line 4'])
  t.equal(ran.err, '')
})

t.test('while stdout fails, lines are held (up to a bound, the rest dropped) and written once it takes them again', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-log-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'out.log')
  // Past the process's file size limit (16 or 32 MiB, as the shell counts blocks), every
  // write fails EFBIG, like a full disk, until the file is truncated.
  writeFileSync(file, '')
  truncateSync(file, 64 * 1024 * 1024)
  const ran = await runLogging(`
// Node ignores SIGXFSZ, but tap's process tracking in the child listens and raises it again.
process.on('SIGXFSZ', () => {})
const fd = (await import('node:fs')).openSync(${JSON.stringify(file)}, 'a')
const dest = stdoutDestination(fd)
const log = createLogger(loadConfig({}), dest)
log.info('held')
await once(dest, 'error')
// More than the 4 MiB held: some are dropped.
for (let i = 0; i < 60; i++) log.info('big ' + i + ' ' + 'x'.repeat(100000))
// The first of them tried the held line again, and failed.
await once(dest, 'error')
;(await import('node:fs')).ftruncateSync(fd, 0)
log.info('after')
await once(dest, 'drain')
process.exit(0)`, 'pipe', 'ulimit -f 32768 &&')
  t.same([ran.code, ran.signal], [0, null])
  const msgs = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l).msg as string)
  t.equal(msgs[0], 'held', 'the held line is written first')
  t.equal(msgs.at(-1), 'after', 'and the next line after the held ones')
  const big = msgs.filter((m) => m.startsWith('big ')).length
  t.ok(big >= 30 && big < 60, `some big lines held (${big}), the others dropped`)
  t.equal(count(ran.err, /^ctfhive: log lines cannot be written to stdout \(EFBIG\)/), 1, 'one note when it fails')
  t.equal(count(ran.err, new RegExp(`^ctfhive: stdout takes log lines again after EFBIG; ${60 - big} were dropped$`)), 1, 'one when it takes them again, with the count dropped')
})

// A stdout slower than the lines come (a busy pino-pretty, a lagging journald) raises no error:
// lines past the bound are dropped all the same, and stderr says so.
t.test('a stdout that only lags: the lines dropped past the bound are told on stderr, with their count', async (t) => {
  const code = `const { createLogger, stdoutDestination } = await import(${JSON.stringify(LOGGER)})
const { loadConfig } = await import(${JSON.stringify(CONFIG)})
const { once } = await import('node:events')
const dest = stdoutDestination()
const log = createLogger(loadConfig({}), dest)
for (let i = 0; i < 200; i++) log.info('big ' + i + ' ' + 'x'.repeat(50000))
await once(dest, 'drain')
process.exit(0)`
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] })
  reapWithThisProcess(child)
  let out = ''
  let err = ''
  // Nothing is read until the child says it dropped lines: until then its pipe stays full.
  child.stdout.pause()
  child.stderr.on('data', (chunk: Buffer) => {
    err += chunk.toString('utf8')
    if (err.includes('cannot be written')) child.stdout.resume()
  })
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString('utf8') })
  const hung = setTimeout(() => { child.kill('SIGKILL') }, 30_000)
  const [exitCode] = await once(child, 'close') as [number | null]
  clearTimeout(hung)
  t.equal(exitCode, 0)
  const written = out.split('\n').filter((l) => l.startsWith('{')).length
  t.ok(written > 0 && written < 200, `some lines written (${written}), the others dropped`)
  t.equal(count(err, /^ctfhive: log lines cannot be written to stdout \(it takes them more slowly than they come\)/), 1, 'one note when lines start to be dropped')
  t.equal(count(err, new RegExp(`^ctfhive: stdout takes log lines again after it takes them more slowly than they come; ${200 - written} were dropped$`)), 1, 'one when it has caught up, with the count')
})
