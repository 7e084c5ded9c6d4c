// LinodeApi against a misbehaving upstream: Retry-After as an HTTP-date or on a 503 (maintenance),
// one too long to wait here (carried to the job runner), a body that trickles, one that never ends.
import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { LinodeApi, LinodeApiError } from '../../api/provisioning/linode-api.ts'
import { caught } from '../helpers/caught.ts'

interface T { teardown: (fn: () => unknown) => void }

async function upstream (t: T, handler: (req: IncomingMessage, res: ServerResponse, hit: number) => void): Promise<{ api: LinodeApi, sleeps: number[] }> {
  let hits = 0
  const server = createServer((req, res) => { handler(req, res, ++hits) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const sleeps: number[] = []
  const api = new LinodeApi({
    token: 'tok-0123456789abcdef',
    apiBase: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v4`,
    sleep: async (ms) => { sleeps.push(ms) },
    maxAttempts: 5,
    requestTimeoutMs: 500,
    maxRetryAfterMs: 60_000
  })
  return { api, sleeps }
}

const refuse = (res: ServerResponse, status: number, headers: Record<string, string>): void => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers })
  res.end(JSON.stringify({ errors: [{ reason: 'Too Many Requests' }] }))
}
const ok = (res: ServerResponse): void => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end('{"username":"x"}')
}

t.test('a Retry-After given as an HTTP-date is waited out', async (t) => {
  const { api, sleeps } = await upstream(t, (_req, res, hit) => {
    if (hit === 1) refuse(res, 429, { 'retry-after': new Date(Date.now() + 30_000).toUTCString() })
    else ok(res)
  })
  t.same(await api.call('GET', '/profile'), { username: 'x' })
  t.equal(sleeps.length, 1)
  t.ok(sleeps[0]! > 25_000 && sleeps[0]! <= 30_000, `about 30 s (${sleeps[0]} ms)`)
})

t.test('a 503 with Retry-After (maintenance) is waited out as asked', async (t) => {
  const { api, sleeps } = await upstream(t, (_req, res, hit) => {
    if (hit === 1) refuse(res, 503, { 'retry-after': '30', 'x-maintenance-mode': 'all' })
    else ok(res)
  })
  t.same(await api.call('GET', '/profile'), { username: 'x' })
  t.same(sleeps, [30_000])
})

t.test('a Retry-After longer than the cap ends the call, the wait carried on the error', async (t) => {
  const { api, sleeps } = await upstream(t, (_req, res) => { refuse(res, 429, { 'retry-after': '480' }) })
  const err = await caught(api.call('GET', '/profile'))
  t.ok(err instanceof LinodeApiError)
  t.match(err, { status: 429, retryable: true, retryAfterMs: 480_000 })
  t.same(sleeps, [], 'not slept here: the job runner waits')
  // And on a 503 that a create must not repeat blind.
  const m = await upstream(t, (_req, res) => { refuse(res, 503, { 'retry-after': '20' }) })
  t.match(await caught(m.api.call('POST', '/linode/instances', { body: {}, retry: 'rejected-only' })), { status: 503, retryAfterMs: 20_000 })
  t.same(m.sleeps, [])
})

t.test('a body that trickles is cut off at the request timeout, not only between chunks', async (t) => {
  const timers = new Set<NodeJS.Timeout>()
  t.teardown(() => { for (const x of timers) clearInterval(x) })
  const { api } = await upstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.write('{"data":[')
    const x = setInterval(() => res.write(' '), 100)
    timers.add(x)
    res.on('close', () => { clearInterval(x) })
  })
  const started = Date.now()
  const err = await caught(api.call('GET', '/linode/instances/1', { retry: 'rejected-only', signal: AbortSignal.timeout(5000) }))
  t.ok(Date.now() - started < 2000, `ended after ${Date.now() - started} ms (timeout 500 ms)`)
  t.match(err, { name: 'LinodeApiError', status: 0, retryable: true })
})

t.test('an endless body is read up to a cap, not into memory without bound', async (t) => {
  const { api } = await upstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.write('{"a":"')
    const chunk = Buffer.alloc(1 << 20, 0x20)
    const pump = (): void => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', pump)
    }
    pump()
  })
  const err = await caught(api.call('GET', '/linode/instances/1', { signal: AbortSignal.timeout(5000) }))
  t.match(err, { name: 'LinodeApiError', retryable: true, message: /a reply larger than \d+ bytes/ })
})
