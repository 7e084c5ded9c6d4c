import { once } from 'node:events'
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, storeWithOverrides, testConfig } from './helpers/build-app.ts'
import { buildTestSite } from './helpers/site-build.ts'
import { createExecutor } from '../api/provisioning/select.ts'
import { StoreError } from '../api/store/store.ts'
import { ERROR_CODES } from '../api/errors.ts'

t.test('health and readiness', async (t) => {
  const { app } = await buildTestApp(t)
  t.same((await app.inject('/healthz')).json(), { status: 'ok' })
  t.same((await app.inject('/readyz')).json(), { status: 'ready', store: 'sqlite' })
})

t.test('readyz is 503 when the store does not answer', async (t) => {
  const { store } = storeWithOverrides(t)
  store.ping = async () => { throw new Error('database is locked') }
  const { app } = await buildTestApp(t, { store })
  const r = await app.inject('/readyz')
  t.equal(r.statusCode, 503)
  t.same(r.json(), { error: 'not_ready', message: 'The store is not reachable.' })
  t.equal(r.headers['retry-after'], '5', 'says when to ask again')
})

t.test('readyz is 503 when the SQLite file is damaged under the running app', async (t) => {
  const { app, config } = await buildTestApp(t, { runJobs: false })
  const path = config.databaseUrl.replace(/^sqlite:/, '')
  const tenant = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo' } })).json().tenant_id as string
  t.equal((await app.inject(`/tenants/${tenant}/status`)).statusCode, 200)
  t.equal((await app.inject('/readyz')).statusCode, 200, 'ready while the file is sound')
  // The header and first pages zeroed, the WAL emptied: the file is no database any more.
  const fd = openSync(path, 'r+')
  try { writeSync(fd, Buffer.alloc(16 * 1024), 0, 16 * 1024, 0) } finally { closeSync(fd) }
  writeFileSync(`${path}-wal`, '')
  const r = await app.inject('/readyz')
  t.equal(r.statusCode, 503, 'readiness says so')
  t.same(r.json(), { error: 'not_ready', message: 'The store is not reachable.' })
  t.equal((await app.inject(`/tenants/${tenant}/status`)).json().error, 'store_unavailable', 'as the routes do')
})

t.test('openapi.json is generated from the route schemas', async (t) => {
  const { app } = await buildTestApp(t)
  const doc = (await app.inject('/openapi.json')).json()
  t.equal(doc.openapi.slice(0, 2), '3.')
  for (const path of ['/billing/checkout', '/billing/webhook', '/billing/success', '/tenants/{id}/status', '/healthz', '/readyz']) {
    t.ok(doc.paths[path], path)
  }
  const checkout = doc.paths['/billing/checkout'].post
  t.same(checkout.requestBody.content['application/json'].schema.required, ['plan'])
  t.ok(checkout.requestBody.content['application/x-www-form-urlencoded'], 'form bodies documented')
  t.ok(doc.paths['/tenants/{id}/status'].get.responses['200'].content['application/json'].schema.properties.state.anyOf)

  // Every answer a route really gives is declared, a redirect without a body.
  const success = doc.paths['/billing/success'].get.responses
  t.match(success['303'], { description: /welcome/, headers: { location: { schema: { type: 'string' } } } }, 'the return from Checkout redirects')
  t.notOk(success['303']?.content, 'a redirect has no body')
  t.ok(doc.paths['/billing/checkout'].post.responses['303'], 'a form post redirects too')
  t.ok(doc.paths['/tenants/{id}/status'].get.responses['5XX']?.content['application/json'], 'status: server errors')
  // The webhook's body is documented, though the route reads it as raw bytes (below).
  const webhookBody = doc.paths['/billing/webhook'].post.requestBody
  t.match(webhookBody, { required: true, description: /raw bytes/, content: { 'application/json': { schema: { required: ['id', 'type', 'created', 'data'] } } } })
  const healthz = doc.paths['/healthz'].get.responses
  t.match(healthz['503'], { description: /shutting_down/ }, 'healthz: 503 while draining')
  t.ok(healthz['503']?.content['application/json'], 'healthz: the error body')
  for (const path of ['/healthz', '/readyz']) {
    t.match(doc.paths[path].get.responses['503'], { headers: { 'retry-after': { schema: { type: 'integer' } } } }, `${path}: Retry-After declared`)
  }
  // The app's Host check answers these routes too.
  for (const path of ['/healthz', '/readyz']) {
    t.match(doc.paths[path].get.responses['4XX'], { description: /bad_request/, content: { 'application/json': { schema: { required: ['error', 'message'] } } } }, `${path}: 400 declared`)
  }

  // Each route's own errors, by status: every code a description names has that status.
  const webhook = doc.paths['/billing/webhook'].post.responses
  t.match(webhook['400'], { description: /invalid_signature.*no_match.*invalid_event/ }, 'webhook: its 400s named')
  t.match(webhook['413'], { description: /payload_too_large/ })
  t.match(success['410'], { description: /link_expired/, content: { 'application/json': { schema: { required: ['error', 'message'] } }, 'text/html': { schema: { type: 'string' } } } }, 'the return from Checkout: a page for browsers too')
  t.match(doc.paths['/tenants/{id}/credentials'].get.responses['409'], { description: /tenant_not_ready/ })
  // The operator API exists only with ADMIN_TOKEN.
  const { app: withAdmin } = await buildTestApp(t, { env: { ADMIN_TOKEN: 'admin-token-for-the-openapi-test-0123456789' } })
  const full = (await withAdmin.inject('/openapi.json')).json()
  t.match(full.paths['/admin/tenants/{id}/retry'].post.responses['409'], { description: /conflict/ })
  let named = 0
  for (const [path, item] of Object.entries(full.paths as Record<string, Record<string, { responses: Record<string, { description?: string }> }>>)) {
    for (const [method, op] of Object.entries(item)) {
      for (const [status, reply] of Object.entries(op.responses)) {
        if (!/^[45]\d\d$/.test(status)) continue
        const codes = [...(reply.description ?? '').matchAll(/(?:^|; |, |: )([a-z]+(?:_[a-z]+)*)\b/g)].map((m) => m[1]!).filter((c) => Object.hasOwn(ERROR_CODES, c))
        t.ok(codes.length > 0, `${method} ${path} ${status}: names its codes`)
        for (const code of codes) {
          named++
          t.equal(ERROR_CODES[code as keyof typeof ERROR_CODES], Number(status), `${method} ${path}: ${code} is a ${status}`)
        }
      }
    }
  }
  t.ok(named > 30, `error codes described per route: ${named}`)
})

t.test('API misses are JSON 404s', async (t) => {
  const { app } = await buildTestApp(t)
  for (const url of ['/billing/nope', '/tenants/x', '/admin/tenants', '/healthz/x']) {
    const r = await app.inject(url)
    t.equal(r.statusCode, 404, url)
    t.equal(r.json().error, 'not_found', url)
  }
  const post = await app.inject({ method: 'POST', url: '/nowhere' })
  t.equal(post.statusCode, 404)
  t.equal(post.json().error, 'not_found', 'non-GET misses are JSON too')
})

t.test('the API roots themselves, bare or with a query, are JSON 404s too, not the site page', async (t) => {
  // A built site: without one the site's 404 is JSON as well.
  const { app } = await buildTestApp(t, { env: buildTestSite(t).env })
  for (const url of ['/admin', '/billing', '/tenants', '/admin?x=1', '/billing?', '/tenants?id=1', '/admin/', '/tenants/']) {
    for (const accept of ['application/json', 'text/html']) {
      const r = await app.inject({ url, headers: { accept } })
      t.equal(r.statusCode, 404, `${url} (${accept})`)
      t.match(r.headers['content-type'], /^application\/json/, `${url} (${accept}): JSON`)
      t.same(r.json(), { error: 'not_found', message: `No route for GET ${url.split('?')[0]}.` }, `${url} (${accept})`)
    }
  }
  // A path that only begins like one is a page of the site.
  for (const url of ['/administrator', '/billing-faq', '/tenantsx?x=1']) {
    const r = await app.inject(url)
    t.equal(r.statusCode, 404, url)
    t.match(r.headers['content-type'], /^text\/html/, `${url}: the site's HTML 404`)
  }
})

t.test('a path that takes other methods answers 405 with Allow', async (t) => {
  const { app } = await buildTestApp(t)
  for (const [method, url, allow] of [
    ['POST', '/pricing', 'GET, HEAD'],
    ['DELETE', `/tenants/${'a'.repeat(32)}/status?x=1`, 'GET, HEAD'],
    ['GET', '/billing/checkout', 'POST'],
    ['PUT', '/billing/webhook', 'POST'],
    ['POST', '/healthz', 'GET, HEAD']
  ] as const) {
    const r = await app.inject({ method, url, headers: { accept: 'text/html' } })
    t.equal(r.statusCode, 405, `${method} ${url}`)
    t.equal(r.headers.allow, allow, `${method} ${url}`)
    t.same(r.json(), { error: 'method_not_allowed', message: `${url.split('?')[0]} takes ${allow}, not ${method}.` })
  }
  // A static file's wildcard is not a route of its own: a POST there is a plain miss.
  t.equal((await app.inject({ method: 'POST', url: '/docs/index.html' })).statusCode, 404)
})

t.test('QUERY, which must carry a Content-Type, gets the miss whether or not it has one', async (t) => {
  const { app } = await buildTestApp(t)
  for (const headers of [{}, { 'content-type': 'application/json' }]) {
    const what = headers['content-type'] ?? 'no Content-Type'
    const wrong = await app.inject({ method: 'QUERY', url: '/healthz', headers, payload: headers['content-type'] === undefined ? undefined : '{}' })
    t.equal(wrong.statusCode, 405, `${what}: a path with routes`)
    t.equal(wrong.headers.allow, 'GET, HEAD', what)
    t.equal(wrong.json().error, 'method_not_allowed', what)
    const miss = await app.inject({ method: 'QUERY', url: '/nowhere', headers })
    t.equal(miss.statusCode, 404, `${what}: a path without`)
    t.equal(miss.json().error, 'not_found', what)
  }
})

t.test('checkout is rate limited per client with Retry-After', async (t) => {
  const { app, store } = await buildTestApp(t, { env: { CHECKOUT_RATE_LIMIT: '3' } })
  const codes: number[] = []
  for (let i = 0; i < 5; i++) {
    const r = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo' }, remoteAddress: '203.0.113.7' })
    codes.push(r.statusCode)
    if (r.statusCode === 429) {
      t.equal(r.json().error, 'rate_limited')
      t.match(r.headers['retry-after'], /^\d+$/)
    }
  }
  t.same(codes, [200, 200, 200, 429, 429])
  t.equal(await store.countTenants(), 3, 'a limited request creates nothing')
  const other = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo' }, remoteAddress: '203.0.113.8' })
  t.equal(other.statusCode, 200, 'another client is not affected')
})

t.test('behind a trusted proxy the limit keys on X-Forwarded-For', async (t) => {
  const { app } = await buildTestApp(t, { env: { CHECKOUT_RATE_LIMIT: '1', TRUST_PROXY: '127.0.0.1' } })
  const send = (xff: string) => app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo' }, remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': xff } })
  t.equal((await send('198.51.100.1')).statusCode, 200)
  t.equal((await send('198.51.100.1')).statusCode, 429)
  t.equal((await send('198.51.100.2')).statusCode, 200)
})

t.test('URLs the router cannot take are contract errors', async (t) => {
  const { app } = await buildTestApp(t, { env: { ADMIN_TOKEN: 'admin-token-for-app-tests-0123456789' } })
  for (const url of ['/%zz', '/tenants/%zz/status', '/billing/%E0%A4%A']) {
    const r = await app.inject(url)
    t.equal(r.statusCode, 400, url)
    t.same(r.json(), { error: 'bad_url', message: 'The URL path is not valid: it has a malformed percent-encoding.' }, url)
    t.match(r.headers['x-request-id'], /^[0-9a-f-]{36}$/, `${url} carries a request id`)
  }
  // A long id reaches its route (the schema answers), whether or not a GET catch-all exists.
  for (const [method, url] of [['GET', `/tenants/${'a'.repeat(101)}/status`], ['GET', `/tenants/${'a'.repeat(5000)}/credentials?token=x`], ['POST', `/admin/tenants/${'a'.repeat(101)}/retry`]] as const) {
    const r = await app.inject({ method, url, headers: { authorization: 'Bearer admin-token-for-app-tests-0123456789' } })
    t.equal(r.statusCode, 400, `${method} ${url.slice(0, 30)}…`)
    t.match(r.json(), { error: 'invalid_request', field: 'id' })
  }
  // Beyond Node's header limit a segment cannot arrive; inject has no such limit.
  const long = await app.inject({ method: 'POST', url: `/admin/tenants/${'a'.repeat(16 * 1024 + 1)}/retry`, headers: { authorization: 'Bearer admin-token-for-app-tests-0123456789' } })
  t.equal(long.statusCode, 414)
  t.equal(long.json().error, 'uri_too_long')
})

interface RawResponse { status: number, headers: Record<string, string>, body: string }

/** An HTTP/1.1 client on a raw socket: writes bytes as given, reads responses by Content-Length. */
class RawClient {
  private buffer = Buffer.alloc(0)
  private wake: () => void = () => {}
  readonly socket: Socket
  readonly closed: Promise<void>

  constructor (socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => { this.buffer = Buffer.concat([this.buffer, chunk]); this.wake() })
    // The server may reset a connection it refused; only what it wrote matters.
    socket.on('error', () => {})
    this.closed = once(socket, 'close').then(() => { this.wake() })
  }

  static async open (app: FastifyInstance): Promise<RawClient> {
    const socket = connect((app.server.address() as AddressInfo).port, '127.0.0.1')
    await once(socket, 'connect')
    return new RawClient(socket)
  }

  async response (): Promise<RawResponse> {
    for (;;) {
      const end = this.buffer.indexOf('\r\n\r\n')
      if (end >= 0) {
        const [statusLine, ...lines] = this.buffer.subarray(0, end).toString('latin1').split('\r\n')
        const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]))
        // A 204 has no body, and no Content-Length to say so.
        const length = Number(headers['content-length'] ?? 0)
        if (this.buffer.length >= end + 4 + length) {
          const body = this.buffer.subarray(end + 4, end + 4 + length).toString('utf8')
          this.buffer = this.buffer.subarray(end + 4 + length)
          return { status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine!)?.[1]), headers, body }
        }
      }
      if (this.socket.destroyed) throw new Error(`the connection closed mid-response: ${JSON.stringify(this.buffer.toString('latin1'))}`)
      await new Promise<void>((resolve) => { this.wake = resolve })
    }
  }
}

/**
 * Sends `bytes` on a connection of its own; the answer must be JSON that closes the
 * connection, and the server must then close it.
 */
async function closingAnswer (t: Test, app: FastifyInstance, bytes: string, what: string): Promise<RawResponse & { json: Record<string, unknown> }> {
  const client = await RawClient.open(app)
  client.socket.write(bytes)
  const r = await client.response()
  t.match(r.headers['content-type'], /^application\/json/, `${what}: JSON`)
  t.equal(r.headers.connection, 'close', `${what}: Connection: close`)
  await client.closed
  t.ok(client.socket.destroyed, `${what}: the server closed the connection`)
  return { ...r, json: JSON.parse(r.body) }
}

t.test('requests Node cannot parse get a contract error, then the connection closes', async (t) => {
  const { app } = await buildTestApp(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const cases = [
    ['a 20 KB header', `GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`, 431, 'header_too_large'],
    ['a malformed request line', 'NOT AN HTTP REQUEST\r\n\r\n', 400, 'bad_request'],
    ['a header without a colon', 'GET /healthz HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n', 400, 'bad_request'],
    ['a malformed Content-Length', 'POST /billing/checkout HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2x\r\n\r\n{}', 400, 'bad_request'],
    ['two Content-Lengths', 'POST /billing/checkout HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}', 400, 'bad_request'],
    ['a 20 KB chunk extension', `POST /billing/checkout HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2;x=${'a'.repeat(20 * 1024)}\r\n{}\r\n0\r\n\r\n`, 413, 'payload_too_large']
  ] as const
  for (const [what, bytes, status, code] of cases) {
    const r = await closingAnswer(t, app, bytes, what)
    t.equal(r.status, status, what)
    t.equal(r.json.error, code, what)
    t.type(r.json.message, 'string', `${what}: a message`)
    t.same(Object.keys(r.json), ['error', 'message'], `${what}: nothing else`)
  }
  t.equal((await app.inject('/healthz')).statusCode, 200, 'the server still answers')
})

t.test('an Expect other than 100-continue is a JSON 417, then the connection closes', async (t) => {
  const { app, store } = await buildTestApp(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const r = await closingAnswer(t, app, 'POST /billing/checkout HTTP/1.1\r\nHost: t\r\nExpect: 200-ok\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n', 'Expect: 200-ok')
  t.equal(r.status, 417)
  t.same(r.json, { error: 'expectation_failed', message: 'Only "Expect: 100-continue" is supported.' })
  t.equal(await store.countTenants(), 0, 'the request went no further')
})

t.test('CONNECT is a JSON 405 with Allow, then the connection closes', async (t) => {
  const { app } = await buildTestApp(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  for (const [target, allow, message] of [
    ['example.org:443', '', 'This server is not a proxy: it does not take CONNECT.'],
    ['/healthz', 'GET, HEAD', 'This server is not a proxy: it does not take CONNECT; /healthz takes GET, HEAD.']
  ] as const) {
    const r = await closingAnswer(t, app, `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`, target)
    t.equal(r.status, 405, target)
    t.equal(r.headers.allow, allow, `${target}: Allow`)
    t.same(r.json, { error: 'method_not_allowed', message }, target)
  }
  // A client that resets instead of reading does no harm.
  const reset = await RawClient.open(app)
  reset.socket.write('CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n')
  reset.socket.resetAndDestroy()
  await reset.closed
  t.equal((await app.inject('/healthz')).statusCode, 200, 'the server still answers')
})

t.test('an HTTP/1.1 request without Host is a JSON 400; HTTP/1.0 needs none', async (t) => {
  const { app } = await buildTestApp(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const client = await RawClient.open(app)
  client.socket.write('POST /billing/checkout HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{"plan":"solo"}\n')
  const r = await client.response()
  t.equal(r.status, 400)
  t.match(r.headers['content-type'], /^application\/json/)
  t.same(JSON.parse(r.body), { error: 'bad_request', message: 'An HTTP/1.1 request needs a Host header.' })
  t.equal(await app.store.countTenants(), 0, 'nothing happened')
  // Wherever it goes: a path without a route, a wrong method, a route.
  for (const line of ['POST /nowhere', 'PUT /billing/checkout', 'GET /healthz']) {
    client.socket.write(`${line} HTTP/1.1\r\n\r\n`)
    const miss = await client.response()
    t.equal(miss.status, 400, line)
    t.equal(JSON.parse(miss.body).error, 'bad_request', line)
  }
  client.socket.write('GET /healthz HTTP/1.0\r\n\r\n')
  t.equal((await client.response()).status, 200, 'HTTP/1.0 has no Host requirement')
})

t.test('the target * is only for OPTIONS, which lists the methods the server takes', async (t) => {
  const { app } = await buildTestApp(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const client = await RawClient.open(app)
  client.socket.write('OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n')
  const options = await client.response()
  t.equal(options.status, 204)
  t.equal(options.headers.allow, 'GET, HEAD, POST, OPTIONS')
  t.equal(options.body, '')
  for (const method of ['GET', 'POST', 'DELETE']) {
    client.socket.write(`${method} * HTTP/1.1\r\nHost: t\r\n\r\n`)
    const r = await client.response()
    t.equal(r.status, 400, method)
    t.match(r.headers['content-type'], /^application\/json/, method)
    t.same(JSON.parse(r.body), { error: 'bad_request', message: `The target * is only for OPTIONS, not ${method}.` }, method)
  }
  // A path is not the asterisk form: OPTIONS there is a method the route does not take.
  client.socket.write('OPTIONS /pricing HTTP/1.1\r\nHost: t\r\n\r\n')
  const path = await client.response()
  t.equal(path.status, 405)
  t.equal(path.headers.allow, 'GET, HEAD')
})

/** A built docs site of three pages: the home page, one in a directory, and the 404 page. */
function docsFixture (t: Test): string {
  const root = mkdtempSync(join(tmpdir(), 'ctfhive-docs-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  mkdirSync(join(root, 'guide'))
  for (const [file, title] of [['index.html', 'Docs home'], ['guide/index.html', 'Guide'], ['404.html', 'Docs 404']] as const) {
    writeFileSync(join(root, file), `<!doctype html><html lang="en"><head><title>${title}</title></head><body><h1>${title}</h1></body></html>`)
  }
  return root
}

t.test('an absolute-form request line is taken as its path and query: redirects stay on this site', async (t) => {
  // inject turns an absolute URL into its path itself, so the request line goes over a socket.
  const { app } = await buildTestApp(t, { env: { ...buildTestSite(t).env, DOCS_SITE_DIR: docsFixture(t) } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const client = await RawClient.open(app)
  const get = async (target: string): Promise<RawResponse> => {
    client.socket.write(`GET ${target} HTTP/1.1\r\nHost: ctfhive.example\r\n\r\n`)
    return client.response()
  }
  for (const [path, status, location, body] of [
    ['/docs/index.html', 301, '/docs/', undefined],
    ['/docs/index.html?q=1', 301, '/docs/?q=1', undefined],
    ['/docs/guide', 301, '/docs/guide/', undefined],
    ['/pricing.html', 301, '/pricing', undefined],
    ['/pricing.html?plan=pro', 301, '/pricing?plan=pro', undefined],
    ['/docs/guide/', 200, undefined, '<h1>Guide</h1>'],
    ['/docs/nope', 404, undefined, '<h1>Docs 404</h1>'],
    ['/admin/nope', 404, undefined, '"error":"not_found"'],
    ['', 200, undefined, '<html'],
    ['?x=1', 200, undefined, '<html']
  ] as const) {
    // The origin form first: each absolute form must get what it gets.
    for (const target of [`/${path.replace(/^\//, '')}`, `http://evil.example${path}`, `HTTPS://evil.example:8443${path}`]) {
      const r = await get(target)
      t.equal(r.status, status, target)
      t.equal(r.headers.location, location, `${target}: Location`)
      if (body !== undefined) t.ok(r.body.includes(body), `${target}: ${body}`)
    }
  }
})

t.test('a request that arrives while the app closes is 503 shutting_down', async (t) => {
  // The job runner's preClose hook gives leases back last; holding that call holds the app
  // in its closing phase, still listening, while a kept-alive connection sends one more request.
  const { inner, store } = storeWithOverrides(t)
  let closing: () => void = () => {}
  const inClosingPhase = new Promise<void>((resolve) => { closing = resolve })
  let release: () => void = () => {}
  const released = new Promise<void>((resolve) => { release = resolve })
  store.releaseLeases = async (owner) => { closing(); await released; return inner.releaseLeases(owner) }
  const { app } = await buildTestApp(t, { store })
  await app.listen({ host: '127.0.0.1', port: 0 })

  const client = await RawClient.open(app)
  client.socket.write('GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n')
  t.equal((await client.response()).status, 200, 'the connection is kept alive')

  const closed = app.close()
  await inClosingPhase
  client.socket.write('GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n')
  const r = await client.response()
  release()
  await closed
  t.equal(r.status, 503)
  t.same(JSON.parse(r.body), { error: 'shutting_down', message: 'The server is shutting down; retry on another connection.' })
  t.equal(r.headers.connection, 'close', 'the client is told not to reuse the connection')
  t.match(r.headers['content-type'], /^application\/json/)
  t.equal(r.headers['retry-after'], '5', 'and when to retry')
})

t.test('an unhandled error in a route is 500 internal_error, with the request id and no internals', async (t) => {
  // buildTestApp returns a ready app (no routes can be added): the status route's store read
  // throws a plain Error, which no route code catches, so the app's error handler answers.
  const { store } = storeWithOverrides(t)
  const failure = new Error('SQLITE_CORRUPT at /var/lib/ctfhive/private.db: secret-internal-detail')
  store.getTenant = async () => { throw failure }
  const logLines: Array<Record<string, unknown>> = []
  const { app } = await buildTestApp(t, { store, logLines })
  const r = await app.inject({ url: `/tenants/${'0'.repeat(32)}/status`, headers: { 'x-request-id': 'req-unhandled-1' } })
  t.equal(r.statusCode, 500)
  t.match(r.headers['content-type'], /^application\/json/)
  t.same(r.json(), { error: 'internal_error', message: 'Something went wrong on our side.' }, 'the contract body, nothing else')
  t.notMatch(r.body, /secret-internal-detail|SQLITE_CORRUPT|private\.db|stack|\.ts:\d+/, 'nothing of the thrown error')
  t.equal(r.headers['x-request-id'], 'req-unhandled-1', 'the request id is echoed')
  const logged = logLines.find((l) => l.msg === 'unhandled error')
  t.ok(logged, 'the error is logged')
  t.equal(logged?.reqId, 'req-unhandled-1', 'under the request id')
  t.match((logged?.err as { message?: string } | undefined)?.message, /secret-internal-detail/, 'with its detail, in the log only')
})

t.test('a static file whose read fails after its headers were set is our JSON 500, without the file\'s headers', async (t) => {
  // The page's .br variant is a Unix socket: stat sees it (so its headers are set, Content-Encoding:
  // br among them), opening it fails ENXIO, as a file renamed away or EMFILE would, even as root.
  const root = docsFixture(t)
  const socket = createServer()
  socket.listen(join(root, 'guide', 'index.html.br'))
  await once(socket, 'listening')
  t.teardown(() => { socket.close() })
  const logLines: Array<Record<string, unknown>> = []
  const { app } = await buildTestApp(t, { env: { DOCS_SITE_DIR: root }, logLines })
  const r = await app.inject({ url: '/docs/guide/', headers: { 'accept-encoding': 'br', 'x-request-id': 'req-file-fails-1' } })
  t.equal(r.statusCode, 500)
  t.same(r.json(), { error: 'internal_error', message: 'Something went wrong on our side.' }, 'our error body')
  t.match(r.headers['content-type'], /^application\/json/)
  for (const name of ['content-encoding', 'etag', 'last-modified', 'accept-ranges', 'content-range']) t.notOk(name in r.headers, `no ${name}`)
  t.equal(r.headers['cache-control'], 'no-store', 'not cached as the file would be')
  t.match(logLines.find((l) => l.msg === 'unhandled error'), { reqId: 'req-file-fails-1', err: { code: 'ENXIO' } }, 'the cause is logged')
  const plain = await app.inject({ url: '/docs/guide/', headers: { 'accept-encoding': 'identity' } })
  t.equal(plain.statusCode, 200, 'the page itself is served as before')
})

t.test('a store that fails (not the code) is 500 store_unavailable on any route, its detail only in the log', async (t) => {
  const tenantUrl = `/tenants/${'0'.repeat(32)}/status`
  const failures: Array<[string, () => Error]> = [
    ['a StoreError (PostgreSQL down)', () => new StoreError('could not connect to PostgreSQL: connect ECONNREFUSED 10.0.0.5:5432 secret-internal-detail')],
    // What node:sqlite itself throws, e.g. on a full disk.
    ['an SQLite error', () => {
      const db = new DatabaseSync(':memory:')
      try { db.exec('SELECT * FROM secret_internal_detail') } catch (err) { return err as Error } finally { db.close() }
      throw new Error('SQLite did not fail')
    }]
  ]
  for (const [what, make] of failures) {
    const { store } = storeWithOverrides(t)
    const failure = make()
    store.getTenant = async () => { throw failure }
    const logLines: Array<Record<string, unknown>> = []
    const { app } = await buildTestApp(t, { store, logLines })
    const r = await app.inject(tenantUrl)
    t.equal(r.statusCode, 500, `${what}: a fault on our side`)
    t.same(r.json(), { error: 'store_unavailable', message: 'Our database did not answer; try again in a moment.' }, `${what}: a code that says a retry may work`)
    t.notMatch(r.body, /secret|ECONNREFUSED|no such table/, `${what}: nothing of the error`)
    const logged = logLines.find((l) => l.msg === 'the store failed')
    t.match((logged?.err as { message?: string } | undefined)?.message, /secret_internal_detail|secret-internal-detail/, `${what}: logged with its detail`)
  }
})

t.test("a host whose clock is more than 5 s off the database's is told at start", async (t) => {
  const clockWarning = (l: Record<string, unknown>): boolean => String(l.msg).startsWith("this host's clock and the database's differ")
  for (const [offset, warned] of [[45_000, true], [-6_000, true], [4_000, false], [0, false]] as const) {
    const { store } = storeWithOverrides(t)
    store.syncClock = async () => offset
    const logLines: Array<Record<string, unknown>> = []
    await buildTestApp(t, { store, logLines })
    t.equal(logLines.some(clockWarning), warned, `${offset} ms`)
    if (warned) t.equal(logLines.find(clockWarning)?.offset_ms, offset)
  }
})

t.test("a client's X-Request-Id is kept only when it is a short printable word", async (t) => {
  const logLines: Array<Record<string, unknown>> = []
  const { app } = await buildTestApp(t, { logLines })
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
  // A route that logs its requests (the health checks log only warnings).
  const url = `/tenants/${'0'.repeat(32)}/status`
  for (const [what, sent] of [['a NUL', 'req\u0000id'], ['a space', 'req id'], ['129 characters', 'r'.repeat(129)], ['non-ASCII', 'req-ü'], ['a line feed', 'req\nid']]) {
    const r = await app.inject({ url, headers: { 'x-request-id': sent } })
    t.equal(r.statusCode, 404, `${what}: answered`)
    t.equal(r.json().error, 'tenant_not_found', `${what}: by the route`)
    t.match(r.headers['x-request-id'], uuid, `${what}: a generated id instead`)
  }
  const logged = logLines.filter((l) => l.reqId !== undefined).map((l) => String(l.reqId))
  t.ok(logged.length > 0 && logged.every((id) => uuid.test(id)), `the log has only generated ids: ${[...new Set(logged)].length} of them`)
  const longest = '!'.repeat(64) + '~'.repeat(64)
  t.equal((await app.inject({ url, headers: { 'x-request-id': longest } })).headers['x-request-id'], longest, '128 printable characters are kept')
})

t.test('a request that does not arrive in time is 408 request_timeout, then the connection closes', async (t) => {
  const { app } = await buildTestApp(t)
  // Node checks request deadlines every connectionsCheckingInterval (30 s by default), reading
  // the server's property when it starts listening (an option in @types/node, not a property):
  // set before listen, a short interval and deadline make the timeout arrive in well under a second.
  Object.assign(app.server, { connectionsCheckingInterval: 50 })
  app.server.requestTimeout = 300
  app.server.headersTimeout = 300
  await app.listen({ host: '127.0.0.1', port: 0 })
  // Complete headers, then a body that never finishes.
  const r = await closingAnswer(t, app, 'POST /billing/checkout HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"plan":', 'a body that never ends')
  t.equal(r.status, 408)
  t.same(r.json, { error: 'request_timeout', message: 'The request took too long to arrive.' })
})

t.test('in production without LINODE_API_TOKEN the server warns that provisioning only pretends', async (t) => {
  const production = { NODE_ENV: 'production', SECRET_KEY: 's'.repeat(40), PROVISION_AUDIT_SECRET: 'a'.repeat(40) }
  const warned = (lines: Array<Record<string, unknown>>): boolean => lines.some((l) => l.level === 40 && /^LINODE_API_TOKEN is not set: provisioning only pretends/.test(String(l.msg)))
  const fake: Array<Record<string, unknown>> = []
  await buildTestApp(t, { logLines: fake, env: production })
  t.ok(warned(fake), 'the fake executor: warned')
  const linode: Array<Record<string, unknown>> = []
  const config = testConfig({ ...production, LINODE_API_TOKEN: 'tok-0123456789' }, t)
  await buildTestApp(t, { logLines: linode, env: { ...production, LINODE_API_TOKEN: 'tok-0123456789' }, executor: createExecutor(config) })
  t.notOk(warned(linode), 'a Linode executor: no warning')
  const dev: Array<Record<string, unknown>> = []
  await buildTestApp(t, { logLines: dev })
  t.notOk(warned(dev), 'development: no warning')
})

t.test('a Stripe key without the plans\' prices warns at start, naming the empty variables', async (t) => {
  const warning = (lines: Array<Record<string, unknown>>) => lines.find((l) => l.level === 40 && String(l.msg).startsWith('STRIPE_SECRET_KEY is set but'))
  const some: Array<Record<string, unknown>> = []
  await buildTestApp(t, { logLines: some, env: { STRIPE_SECRET_KEY: 'sk_test_1', STRIPE_PRICE_SOLO: 'price_1', STRIPE_PRICE_STANDARD: '', STRIPE_PRICE_PRO: '' } })
  t.match(warning(some), { variables: ['STRIPE_PRICE_STANDARD', 'STRIPE_PRICE_PRO'], msg: /STRIPE_PRICE_STANDARD, STRIPE_PRICE_PRO are empty: those plans cannot be bought/ })
  const all: Array<Record<string, unknown>> = []
  await buildTestApp(t, { logLines: all, env: { STRIPE_SECRET_KEY: 'sk_test_1', STRIPE_PRICE_SOLO: 'price_1', STRIPE_PRICE_STANDARD: 'price_2', STRIPE_PRICE_PRO: 'price_3' } })
  t.equal(warning(all), undefined, 'every price set: no warning')
  const none: Array<Record<string, unknown>> = []
  await buildTestApp(t, { logLines: none, env: { STRIPE_SECRET_KEY: '' } })
  t.equal(warning(none), undefined, 'no Stripe key (checkout answers checkout_not_configured): no warning')
})

t.test('LINODE_PLAN given empty (older .env.example files) warns at start: it no longer means each plan\'s own type', async (t) => {
  const warned = (lines: Array<Record<string, unknown>>): boolean => lines.some((l) => l.level === 40 && String(l.msg).startsWith('LINODE_PLAN is empty'))
  const empty: Array<Record<string, unknown>> = []
  await buildTestApp(t, { logLines: empty, env: { LINODE_PLAN: '' } })
  t.ok(warned(empty), 'empty: warned')
  t.match(empty.find((l) => String(l.msg).startsWith('LINODE_PLAN is empty'))?.msg, /LINODE_PLAN=per-plan/, 'naming the setting that keeps the old sizing')
  for (const LINODE_PLAN of ['per-plan', 'g6-standard-2']) {
    const set: Array<Record<string, unknown>> = []
    await buildTestApp(t, { logLines: set, env: { LINODE_PLAN } })
    t.notOk(warned(set), `${LINODE_PLAN}: no warning`)
  }
})

t.test('in production on loopback without TRUST_PROXY the server warns at start', async (t) => {
  const production = { NODE_ENV: 'production', SECRET_KEY: 's'.repeat(40), PROVISION_AUDIT_SECRET: 'a'.repeat(40), HOST: '127.0.0.1' }
  const warned = (lines: Array<Record<string, unknown>>): boolean => lines.some((l) => l.level === 40 && String(l.msg).startsWith('TRUST_PROXY is off'))
  for (const HOST of ['127.0.0.1', '127.0.0.2', '::1', 'localhost']) {
    const off: Array<Record<string, unknown>> = []
    await buildTestApp(t, { logLines: off, env: { ...production, HOST, TRUST_PROXY: 'false' } })
    t.ok(warned(off), `off on ${HOST}: warned`)
  }
  for (const HOST of ['0.0.0.0', '::', '192.0.2.10']) {
    const all: Array<Record<string, unknown>> = []
    await buildTestApp(t, { logLines: all, env: { ...production, HOST, TRUST_PROXY: 'false' } })
    t.notOk(warned(all), `off on ${HOST}, reachable without a proxy: no warning`)
  }
  const on: Array<Record<string, unknown>> = []
  await buildTestApp(t, { logLines: on, env: { ...production, TRUST_PROXY: '1' } })
  t.notOk(warned(on), 'trusting one hop: no warning')
  const dev: Array<Record<string, unknown>> = []
  await buildTestApp(t, { logLines: dev, env: { TRUST_PROXY: 'false' } })
  t.notOk(warned(dev), 'development: no warning')
})
