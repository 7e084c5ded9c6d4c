// api/server.ts's drain cut-off as a real process: a request still in flight 10 s into a
// SIGTERM (its handler waiting on a Stripe that does not answer, or its body still arriving)
// gets a 503 shutting_down with Connection: close, not a dropped connection, and a log line
// that names it without its query.
import t from 'tap'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServer } from './helpers/server-process.ts'

const SESSION_ID = 'cs_test_drainSecretSession0123456789'

interface Teardown { teardown (fn: () => unknown): void }

/** A Stripe API that takes every request and never answers; resolves `seen` on the first. */
async function silentStripe (t: Teardown): Promise<{ url: string, seen: Promise<string> }> {
  let saw: (path: string) => void = () => {}
  const seen = new Promise<string>((resolve) => { saw = resolve })
  const held: ServerResponse[] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    held.push(res)
    saw(`${req.method} ${req.url}`)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

interface RawReply { status: number, headers: Record<string, string>, body: string }

/** Sends `head` (and `body`) on a connection of its own; resolves with what came back once it closed. */
async function rawRequest (port: number, head: string[], body = ''): Promise<{ sent: Promise<void>, reply: Promise<RawReply> }> {
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  let received = ''
  socket.on('data', (chunk: Buffer) => { received += chunk.toString('utf8') })
  socket.on('error', () => {})
  const reply = once(socket, 'close').then(() => {
    const end = received.indexOf('\r\n\r\n')
    const [statusLine = '', ...lines] = received.slice(0, end < 0 ? received.length : end).split('\r\n')
    const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]))
    return { status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1] ?? 0), headers, body: end < 0 ? '' : received.slice(end + 4) }
  })
  const sent = new Promise<void>((resolve) => { socket.write([...head, '', ''].join('\r\n') + body, () => { resolve() }) })
  return { sent, reply }
}

function logLines (output: string): Array<Record<string, unknown>> {
  return output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
}

t.test('SIGTERM: a request still in flight at the cut-off gets 503 shutting_down and a log line naming it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-drain-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const stripe = await silentStripe(t)
  const server = await startServer({
    env: {
      DATABASE_URL: `sqlite:${join(dir, 'ctfhive.db')}`,
      STRIPE_SECRET_KEY: 'sk_test_drain_0123456789abcdef',
      STRIPE_API_BASE: stripe.url
    }
  })
  t.teardown(() => server.kill())

  // The return from Checkout asks Stripe for its session: with no answer, its handler waits
  // about 20 s (two attempts of 10 s), well past the cut-off 10 s after the signal.
  const waiting = await rawRequest(server.port, [
    `GET /billing/success?session_id=${SESSION_ID} HTTP/1.1`,
    `Host: 127.0.0.1:${server.port}`,
    'Accept: application/json',
    'X-Request-Id: drain-waiting-1'
  ])
  t.match(await stripe.seen, `GET /v1/checkout/sessions/${SESSION_ID}`, 'the handler waits on Stripe')
  // And one whose body is still arriving.
  const stalled = await rawRequest(server.port, [
    'POST /billing/checkout?token=drainSecretToken0123456789 HTTP/1.1',
    `Host: 127.0.0.1:${server.port}`,
    'Content-Type: application/json',
    'Content-Length: 100',
    'X-Request-Id: drain-stalled-2'
  ], '{"plan":')
  await stalled.sent
  server.child.kill('SIGTERM')

  for (const [name, id, request] of [['waiting on Stripe', 'drain-waiting-1', waiting], ['its body still arriving', 'drain-stalled-2', stalled]] as const) {
    const r = await request.reply
    t.equal(r.status, 503, `${name}: 503, not a dropped connection`)
    t.match(r.headers['content-type'], /^application\/json/, `${name}: JSON`)
    t.same(JSON.parse(r.body), { error: 'shutting_down', message: 'The server shut down before it finished this request; retry it.' }, `${name}: our error body`)
    t.equal(r.headers.connection, 'close', `${name}: Connection: close`)
    t.equal(r.headers['retry-after'], '5', `${name}: when to retry`)
    t.equal(r.headers['x-request-id'], id, `${name}: its request id`)
  }

  t.same(await server.exited, { code: 0, signal: null }, 'exit 0')
  const output = server.output()
  t.notMatch(output, /killed by timeout/, 'within the grace')
  const lines = logLines(output)
  t.match(lines.filter((l) => String(l.msg).startsWith('request cut off by the shutdown')), [
    { level: 40, reqId: 'drain-waiting-1', method: 'GET', url: '/billing/success', msg: 'request cut off by the shutdown: answered 503 shutting_down' },
    { level: 40, reqId: 'drain-stalled-2', method: 'POST', url: '/billing/checkout', msg: 'request cut off by the shutdown: answered 503 shutting_down' }
  ], 'one warn line for each, naming its id, method and path')
  t.notMatch(output, /drainSecretSession|drainSecretToken/, 'no query (a session id, a welcome token) in the log')
})
