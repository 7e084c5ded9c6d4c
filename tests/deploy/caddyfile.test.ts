// deploy/Caddyfile: `caddy validate` accepts it, its production reading is TLS for the apex in
// front of the app instances, and Debian's Caddy running the same file (TLS off through its
// environment placeholders) in front of two real app processes serves the site, the API and
// the docs, and keeps answering when one instance is killed.
import t from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gunzipSync, gzipSync } from 'node:zlib'
import { request } from 'undici'
import { freePort, startServer, type ServerProcess } from '../helpers/server-process.ts'
import { reapWithThisProcess } from '../helpers/child-reaper.ts'
import { buildTestSite } from '../helpers/site-build.ts'
import { caddyPolicySnippet } from '../../docs-site/build.ts'
import { DOCS_CADDY_FILE } from '../../api/web/docs.ts'

const CADDYFILE = fileURLToPath(new URL('../../deploy/Caddyfile', import.meta.url))
const CI = process.env.CI === 'true'
const caddyMissing = spawnSync('caddy', ['version'], { stdio: 'ignore' }).error !== undefined
  ? 'caddy is not installed (apt-get install caddy)'
  : false

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => { setTimeout(resolve, ms) })
}

/** Caddy's own files (autosave, certificates) go to a throwaway directory. */
function caddyEnv (home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: home,
    XDG_DATA_HOME: join(home, 'data'),
    XDG_CONFIG_HOME: join(home, 'config'),
    ...extra
  }
}

function caddy (args: string[], env: Record<string, string>): { status: number | null, output: string, stdout: string } {
  const r = spawnSync('caddy', args, { env, encoding: 'utf8', timeout: 60_000 })
  return { status: r.status, output: `${r.stdout}${r.stderr}`, stdout: r.stdout }
}

interface AdaptedServer { listen: string[], routes: Array<Record<string, any>>, automatic_https?: Record<string, unknown> }

/** The JSON Caddy makes of the Caddyfile under the given environment. */
function adapt (home: string, env: Record<string, string>): Record<string, AdaptedServer> {
  const r = caddy(['adapt', '--config', CADDYFILE, '--adapter', 'caddyfile'], caddyEnv(home, env))
  if (r.status !== 0) throw new Error(`caddy adapt failed:\n${r.output}`)
  // stdout only: Caddy logs its warnings (an import glob matching nothing) as JSON on stderr.
  const json = JSON.parse(r.stdout)
  return json.apps.http.servers
}

/** Every handler object anywhere in a route tree. */
function handlers (node: unknown, out: Array<Record<string, any>> = []): Array<Record<string, any>> {
  if (Array.isArray(node)) for (const n of node) handlers(n, out)
  else if (node !== null && typeof node === 'object') {
    const o = node as Record<string, any>
    if (typeof o.handler === 'string') out.push(o)
    for (const v of Object.values(o)) handlers(v, out)
  }
  return out
}

const TEST_SITE = {
  SITE_SCHEME: 'http',
  BASE_DOMAIN: '127.0.0.1',
  CADDY_LISTEN: 'loopback',
  CADDY_ADMIN: 'off'
}

/** A tiny built docs site: MkDocs' shape (index.html per directory, a 404 page). */
function writeDocs (dir: string): void {
  mkdirSync(join(dir, 'guide'), { recursive: true })
  const filler = '<p>CTFHive runs hosted CTFd platforms with Stripe billing.</p>\n'.repeat(40)
  writeFileSync(join(dir, 'index.html'), `<!doctype html><title>Docs</title><h1>docs-home-marker</h1>\n${filler}`)
  // The build's precompressed copy (marked, to tell it from Caddy's own compression).
  writeFileSync(join(dir, 'index.html.gz'), gzipSync(`<!doctype html><title>Docs</title><h1>docs-home-marker</h1><!-- precompressed -->\n${filler}`))
  writeFileSync(join(dir, 'guide', 'index.html'), '<!doctype html><title>Guide</title><h1>docs-guide-marker</h1>\n')
  writeFileSync(join(dir, '404.html'), '<!doctype html><title>Not found</title><h1>docs-404-marker</h1>\n')
  mkdirSync(join(dir, 'assets'))
  writeFileSync(join(dir, 'assets', 'bundle.0123abcd.min.js'), 'console.log(1)\n')
  writeFileSync(join(dir, 'assets', 'search.json'), '{}\n')
  // Files that keep their name across releases, one with what looks like a fingerprint.
  for (const file of ['stylesheets/ctfhive.css', 'search/search_index.json', 'images/diagram.0123abcd.png']) {
    mkdirSync(join(dir, file, '..'), { recursive: true })
    writeFileSync(join(dir, file), 'x\n')
  }
  writeFileSync(join(dir, DOCS_CADDY_FILE), caddyPolicySnippet([DOCS_SCRIPT_HASH]))
}

/** What the docs build would record for the theme's inline script. */
const DOCS_SCRIPT_HASH = 'sha256-3q2+7w0123456789abcdefghijklmnopqrstuvwxyzA='

interface Reply { status: number, headers: Record<string, string | string[] | undefined>, body: Buffer }

async function get (url: string, init: { method?: 'GET' | 'HEAD' | 'POST', headers?: Record<string, string>, body?: string } = {}): Promise<Reply> {
  const r = await request(url, { method: init.method ?? 'GET', headers: init.headers, body: init.body, headersTimeout: 15_000, bodyTimeout: 15_000 })
  return { status: r.statusCode, headers: r.headers, body: Buffer.from(await r.body.arrayBuffer()) }
}

interface CaddyProcess { url: string, child: ChildProcess, output: () => string, stop: () => Promise<void> }

/**
 * Runs Caddy on the real Caddyfile, TLS off and loopback only, until /healthz answers through
 * it (asked for `host`, the site's host under `extra`, when it is not 127.0.0.1).
 */
async function startCaddy (home: string, upstreams: string[], docsRoot: string, extra: Record<string, string> = {}, host?: string): Promise<CaddyProcess> {
  let lastOutput = ''
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    const env = caddyEnv(home, { ...TEST_SITE, SITE_PORT: `:${port}`, APP_UPSTREAMS: upstreams.join(' '), DOCS_ROOT: docsRoot, ...extra })
    const child = spawn('caddy', ['run', '--config', CADDYFILE, '--adapter', 'caddyfile'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    reapWithThisProcess(child)
    let tail = ''
    const keep = (chunk: Buffer): void => { tail = (tail + chunk.toString('utf8')).slice(-16_384) }
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    let exited = false
    const exit = new Promise<void>((resolve) => { child.once('exit', () => { exited = true; resolve() }) })
    const stop = async (): Promise<void> => {
      if (exited) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => { child.kill('SIGKILL') }, 10_000)
      await exit
      clearTimeout(timer)
    }
    const url = `http://127.0.0.1:${port}`
    const deadline = Date.now() + 20_000
    while (!exited && Date.now() < deadline) {
      try {
        const r = await get(`${url}/healthz`, host === undefined ? {} : { headers: { host } })
        if (r.status === 200) return { url, child, output: () => tail, stop }
      } catch {}
      await sleep(100)
    }
    lastOutput = tail
    await stop()
    if (!/address already in use/.test(lastOutput)) break
  }
  throw new Error(`caddy did not start:\n${lastOutput}`)
}

function registerTests (): void {
  t.test('caddy validate accepts the Caddyfile, as deployed and as the tests run it', async (t) => {
    const home = mkdtempSync(join(tmpdir(), 'ctfhive-caddy-validate-'))
    t.teardown(() => rmSync(home, { recursive: true, force: true }))
    const production = caddy(['validate', '--config', CADDYFILE, '--adapter', 'caddyfile'], caddyEnv(home))
    t.equal(production.status, 0, production.output)
    t.match(production.output, /Valid configuration/)
    const testing = caddy(['validate', '--config', CADDYFILE, '--adapter', 'caddyfile'],
      caddyEnv(home, { ...TEST_SITE, SITE_PORT: ':8443', APP_UPSTREAMS: '127.0.0.1:1 127.0.0.1:2', DOCS_ROOT: home }))
    t.equal(testing.status, 0, testing.output)
    t.equal(caddy(['fmt', CADDYFILE], caddyEnv(home)).output, readFileSync(CADDYFILE, 'utf8'),
      'the file is in `caddy fmt` form')
  })

  t.test('as deployed: TLS for the apex, two instances with health checks, /docs from disk', async (t) => {
    const home = mkdtempSync(join(tmpdir(), 'ctfhive-caddy-adapt-'))
    t.teardown(() => rmSync(home, { recursive: true, force: true }))
    const servers = adapt(home, { BASE_DOMAIN: 'example.org' })
    const [server, ...others] = Object.values(servers)
    t.equal(others.length, 0, 'one site')
    t.same(server!.listen, [':443'], 'HTTPS on 443; Caddy adds the :80 redirect and obtains the certificate')
    t.equal(server!.automatic_https, undefined, 'automatic HTTPS is not disabled')
    t.same(server!.routes[0]!.match, [{ host: ['example.org'] }], 'the apex named by BASE_DOMAIN')
    const all = handlers(server!.routes)
    const proxy = all.find((h) => h.handler === 'reverse_proxy')!
    t.same(proxy.upstreams, [{ dial: 'app1:3000' }, { dial: 'app2:3000' }], 'the compose instances by default')
    t.match(proxy.health_checks, { active: { uri: '/healthz', expect_status: 200 }, passive: { max_fails: 1 } })
    t.ok(Number(proxy.load_balancing.try_duration) > 0, 'failed dials are retried on another instance')
    t.ok(proxy.buffer_requests === true || Number(proxy.request_buffers) > 0, 'request bodies are kept for those retries')
    // Unbounded, 2.6.2 would hold a whole body in memory: one large anonymous POST fills the host.
    t.ok(proxy.request_buffers !== undefined || proxy.max_buffer_size === 65536, `at most 64 KiB of a body is kept (${String(proxy.max_buffer_size)})`)
    t.ok(all.some((h) => h.handler === 'file_server'), '/docs is served from disk')
    t.ok(all.some((h) => h.handler === 'encode'), 'responses are compressed')
    const auto = adapt(home, { BASE_DOMAIN: 'example.org', APP_UPSTREAMS: '10.0.0.1:3000 10.0.0.2:3000 10.0.0.3:3000' })
    const upstreams = handlers(Object.values(auto)[0]!.routes).find((h) => h.handler === 'reverse_proxy')!.upstreams
    t.same(upstreams, [{ dial: '10.0.0.1:3000' }, { dial: '10.0.0.2:3000' }, { dial: '10.0.0.3:3000' }], 'APP_UPSTREAMS lists N instances')
    // The site on another registrable domain than the tenants' (PUBLIC_BASE_URL's host).
    const apart = Object.values(adapt(home, { BASE_DOMAIN: 'example.org', SITE_HOST: 'example.com' }))
    t.equal(apart.length, 1, 'one site')
    t.same(apart[0]!.routes[0]!.match, [{ host: ['example.com'] }], 'SITE_HOST names the site, not BASE_DOMAIN')
    const empty = Object.values(adapt(home, { BASE_DOMAIN: 'example.org', SITE_HOST: '' }))
    t.same(empty[0]!.routes[0]!.match, [{ host: ['example.org'] }], 'an empty SITE_HOST (compose passes one) is BASE_DOMAIN')
    const defaults = Object.values(adapt(home, {}))
    t.same(defaults[0]!.routes[0]!.match, [{ host: ['ctfhive.us'] }], 'neither set: ctfhive.us')
  })

  t.test('the site at SITE_HOST, on another domain than BASE_DOMAIN; BASE_DOMAIN without it', async (t) => {
    // A stand-in for the app: every path (its /healthz too) answers with a marker.
    const app = createServer((_req, res) => { res.setHeader('content-type', 'text/plain'); res.end('site-marker') })
    await new Promise<void>((resolve) => { app.listen(0, '127.0.0.1', resolve) })
    t.teardown(() => { app.close() })
    const upstream = `127.0.0.1:${(app.address() as AddressInfo).port}`
    const dir = mkdtempSync(join(tmpdir(), 'ctfhive-caddy-host-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const cases: Array<{ name: string, env: Record<string, string>, served: string, other: string }> = [
      { name: 'SITE_HOST=ctfhive.com, BASE_DOMAIN=ctfhive.us', env: { SITE_HOST: 'ctfhive.com', BASE_DOMAIN: 'ctfhive.us' }, served: 'ctfhive.com', other: 'ctfhive.us' },
      { name: 'SITE_HOST unset, BASE_DOMAIN=ctfhive.us', env: { BASE_DOMAIN: 'ctfhive.us' }, served: 'ctfhive.us', other: 'ctfhive.com' }
    ]
    for (const [i, c] of cases.entries()) {
      const proxy = await startCaddy(join(dir, `caddy${i}`), [upstream], dir, c.env, c.served)
      t.teardown(() => proxy.stop())
      const site = await get(`${proxy.url}/pricing`, { headers: { host: c.served } })
      t.equal(site.status, 200, `${c.name}: ${c.served} is served`)
      t.equal(site.body.toString(), 'site-marker', `${c.name}: ${c.served} gets the site`)
      const other = await get(`${proxy.url}/pricing`, { headers: { host: c.other } })
      t.not(other.body.toString(), 'site-marker', `${c.name}: ${c.other} does not`)
      await proxy.stop()
    }
  })

  t.test('HEAD reports the length GET sends; GET is still compressed', async (t) => {
    // A stand-in for the app (its own process would shift the round robin the kill test below
    // depends on): a JSON body large enough for Caddy to compress, for GET and HEAD alike.
    const json = JSON.stringify({ paths: Array.from({ length: 100 }, (_, i) => `/route/${i}`) })
    const app = createServer((_req, res) => {
      // Set for HEAD too, as Fastify does (Node's own HEAD answer leaves it out).
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) })
      res.end(json)
    })
    await new Promise<void>((resolve) => { app.listen(0, '127.0.0.1', resolve) })
    t.teardown(() => { app.close() })
    const dir = mkdtempSync(join(tmpdir(), 'ctfhive-caddy-head-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const docs = join(dir, 'docs')
    writeDocs(docs)
    const proxy = await startCaddy(join(dir, 'caddy'), [`127.0.0.1:${(app.address() as AddressInfo).port}`], docs)
    t.teardown(() => proxy.stop())

    const plain = await get(`${proxy.url}/openapi.json`)
    t.equal(plain.body.toString(), json)
    const gzipped = await get(`${proxy.url}/openapi.json`, { headers: { 'accept-encoding': 'gzip' } })
    t.equal(gzipped.headers['content-encoding'], 'gzip', 'GET is compressed on the fly')
    t.equal(gunzipSync(gzipped.body).toString(), json)
    // 2.6.2 compressing a HEAD reports an empty gzip stream: gzip, Content-Length 20.
    const head = await get(`${proxy.url}/openapi.json`, { method: 'HEAD', headers: { 'accept-encoding': 'gzip' } })
    t.equal(head.status, 200)
    t.equal(head.headers['content-encoding'], undefined, 'HEAD names no encoding')
    t.equal(head.headers['content-length'], String(Buffer.byteLength(json)), "HEAD's Content-Length is the identity GET's")
    // The docs' precompressed copy is file_server's, for HEAD as for GET.
    const docsGet = await get(`${proxy.url}/docs/`, { headers: { 'accept-encoding': 'gzip' } })
    const docsHead = await get(`${proxy.url}/docs/`, { method: 'HEAD', headers: { 'accept-encoding': 'gzip' } })
    t.equal(docsGet.headers['content-encoding'], 'gzip')
    t.equal(docsHead.headers['content-encoding'], 'gzip', 'HEAD names the .gz copy')
    t.equal(docsHead.headers.etag, docsGet.headers.etag, 'with its ETag')
  })

  t.test('the access log masks a token whatever the spelling of the Host', async (t) => {
    const home = mkdtempSync(join(tmpdir(), 'ctfhive-caddy-hostlog-'))
    t.teardown(() => rmSync(home, { recursive: true, force: true }))
    // Caddy 2.6 picks the site's (filtered) logger by exact Host; any other goes to the default one.
    const adapted = caddy(['adapt', '--config', CADDYFILE, '--adapter', 'caddyfile'], caddyEnv(home, { SITE_HOST: 'www.ctfhive.test' }))
    t.equal(adapted.status, 0, adapted.output)
    const logs = JSON.parse(adapted.stdout).logging.logs as Record<string, { encoder?: unknown, include?: string[] }>
    const site = Object.values(logs).find((l) => l.include?.some((name) => name.startsWith('http.log.access.')))
    t.ok(site, "the site's access logger")
    t.same(logs.default?.encoder, site?.encoder, 'the default logger filters exactly as the site\'s does')

    const app = createServer((_req, res) => { res.setHeader('content-type', 'text/plain'); res.end('site-marker') })
    await new Promise<void>((resolve) => { app.listen(0, '127.0.0.1', resolve) })
    t.teardown(() => { app.close() })
    const proxy = await startCaddy(join(home, 'caddy'), [`127.0.0.1:${(app.address() as AddressInfo).port}`], home, { SITE_HOST: 'www.ctfhive.test' }, 'www.ctfhive.test')
    t.teardown(() => proxy.stop())
    const port = new URL(proxy.url).port
    const hosts = [`www.ctfhive.test:${port}`, `WWW.CTFHIVE.TEST:${port}`, 'WWW.CTFHIVE.TEST', `www.ctfhive.test.:${port}`, 'www.ctfhive.test.', 'elsewhere.test']
    const probe = randomUUID()
    const secrets = hosts.map((_, i) => `${i}`.repeat(8) + 'beef'.repeat(8))
    for (const [i, host] of hosts.entries()) {
      await get(`${proxy.url}/welcome?tenant=${'a'.repeat(32)}&token=${secrets[i]}&probe=${probe}-${i}`, { headers: { host, referer: `http://x/welcome?token=${secrets[i]}` } })
    }
    const line = (i: number): string | undefined => proxy.output().split('\n').find((l) => l.includes(`${probe}-${i}`))
    const deadline = Date.now() + 10_000
    while (hosts.some((_, i) => line(i) === undefined) && Date.now() < deadline) await sleep(50)
    for (const [i, host] of hosts.entries()) {
      const logged = line(i)
      t.ok(logged, `Host ${host}: logged`)
      t.match(logged, /token=REDACTED/, `Host ${host}: the token masked`)
      t.notMatch(logged, secrets[i]!, `Host ${host}: no token, in the URI or a Referer`)
    }
    for (const secret of secrets) t.notMatch(proxy.output(), secret, 'no token anywhere in the log')
  })

  t.test('Caddy in front of two app instances: site, API, docs, and a killed instance', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ctfhive-caddy-live-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const docs = join(dir, 'docs')
    writeDocs(docs)
    // One shared store file; info logs so each instance's request log shows what it served.
    // The marketing site too: its assets carry only the app's nosniff, its pages no HSTS (http).
    const site = buildTestSite(t, { publicBaseUrl: 'http://localhost:3000', baseDomain: 'ctfhive.us' })
    const env = { DATABASE_URL: `sqlite:${join(dir, 'ctfhive.db')}`, LOG_LEVEL: 'info', DOCS_SITE_DIR: docs, MARKETING_DIST_DIR: site.dir }
    const instances: ServerProcess[] = []
    t.teardown(async () => { await Promise.all(instances.map((s) => s.stop())) })
    // One after the other, so the second opens an already migrated database.
    for (let i = 0; i < 2; i++) instances.push(await startServer({ env }))
    const [a, b] = instances as [ServerProcess, ServerProcess]
    const proxy = await startCaddy(join(dir, 'caddy'), instances.map((s) => `127.0.0.1:${s.port}`), docs)
    t.teardown(() => proxy.stop())

    t.test('the access log keeps no welcome token or session id', async (t) => {
      const secret = 'f'.repeat(40)
      const r = await get(`${proxy.url}/tenants/${'a'.repeat(32)}/status?token=${secret}&session_id=cs_test_${secret}`, {
        headers: { referer: `${proxy.url}/welcome?tenant=${'a'.repeat(32)}&token=${secret}` }
      })
      t.equal(r.status, 404)
      const deadline = Date.now() + 10_000
      while (!proxy.output().includes('/status?') && Date.now() < deadline) await sleep(50)
      const line = proxy.output().split('\n').find((l) => l.includes('/status?'))
      t.ok(line, 'the request was logged')
      t.notMatch(line, secret, 'neither the token nor the session id')
      t.match(line, /token=REDACTED/)
      t.match(line, /session_id=REDACTED/)
      t.notMatch(line, /welcome\?/, 'nor the Referer')

      // A checkout without Stripe keys completes at once and redirects to the welcome link.
      const checkout = await get(`${proxy.url}/billing/checkout`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
        body: 'plan=solo&name=Redirect+CTF'
      })
      t.equal(checkout.status, 303)
      const token = /[?&]token=([0-9a-f]+)/.exec(String(checkout.headers.location))?.[1]
      t.ok(token, `the redirect carries the welcome token: ${String(checkout.headers.location)}`)
      while (!proxy.output().includes('"/billing/checkout"') && Date.now() < deadline + 10_000) await sleep(50)
      const logged = proxy.output().split('\n').find((l) => l.includes('"/billing/checkout"'))
      t.ok(logged, 'the checkout was logged')
      t.notMatch(logged, token!, 'the redirect\'s token is not in the log')
      t.notMatch(logged, /"Location"/)
    })

    t.test('nor a mangled link\'s secret, or a Stripe signature', async (t) => {
      const tenant = 'a'.repeat(32)
      const secrets = Array.from({ length: 6 }, (_, i) => `${i}`.repeat(8) + 'c0ffee'.repeat(6))
      const urls = [
        `/welcome%3Ftenant=${tenant}%26token=${secrets[0]}`,
        `/welcome?Token=${secrets[1]}&tenant=${tenant}`,
        `/welcome?tenant=${tenant}&%74oken=${secrets[2]}`,
        `/welcome?tenant=${tenant}&token%3D${secrets[3]}`,
        `/billing/success?SESSION_ID=cs_test_${secrets[4]}`
      ]
      const signature = `t=1,v1=${secrets[5]}`
      const probe = randomUUID()
      for (const [i, url] of urls.entries()) {
        await get(`${proxy.url}${url}`, { headers: { 'x-probe': `${probe}-${i}`, 'stripe-signature': signature } })
      }
      const webhook = await get(`${proxy.url}/billing/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'stripe-signature': signature, 'x-probe': `${probe}-${urls.length}` },
        body: '{}'
      })
      t.equal(webhook.status, 400, 'the webhook refused the signature')
      const deadline = Date.now() + 10_000
      const line = (i: number): string | undefined => proxy.output().split('\n').find((l) => l.includes(`${probe}-${i}`))
      while (line(urls.length) === undefined && Date.now() < deadline) await sleep(50)
      for (const [i, url] of urls.entries()) {
        const logged = line(i)
        t.ok(logged, `${url}: logged`)
        t.match(logged, /REDACTED/, `${url}: its secret masked`)
        t.notMatch(logged, secrets[i]!, `${url}: no secret`)
      }
      t.ok(line(urls.length), 'the webhook was logged')
      t.notMatch(proxy.output(), /Stripe-Signature/i, 'no Stripe-Signature header in the log')
      for (const secret of secrets) t.notMatch(proxy.output(), secret, 'no secret in the log')
    })

    t.test('the API and its security headers', async (t) => {
      const health = await get(`${proxy.url}/healthz`)
      t.equal(health.status, 200)
      t.same(JSON.parse(health.body.toString()), { status: 'ok' })
      t.equal(health.headers['x-content-type-options'], 'nosniff')
      t.equal(health.headers['x-frame-options'], 'DENY')
      t.equal(health.headers['referrer-policy'], 'strict-origin-when-cross-origin')
      t.equal(health.headers.server, undefined, 'no Server header')

      const checkout = await get(`${proxy.url}/billing/checkout`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'plan=solo&name=Proxy+CTF'
      })
      t.equal(checkout.status, 200, checkout.body.toString())
      const created = JSON.parse(checkout.body.toString())
      t.match(created, { status: 'checkout_not_configured', plan: 'solo', tenant_id: /^[0-9a-f]{32}$/ })
      // Whichever instance answers, the tenant is there: the store is shared.
      for (let i = 0; i < 2; i++) {
        const status = await get(`${proxy.url}/tenants/${created.tenant_id}/status`)
        t.equal(status.status, 200, status.body.toString())
        t.match(JSON.parse(status.body.toString()), { tenant_id: created.tenant_id, state: 'provisioning' })
      }
    })

    t.test('the site, as the app itself serves it', async (t) => {
      for (const path of ['/robots.txt', '/', '/pricing']) {
        const direct = await get(`${a.url}${path}`)
        const proxied = await get(`${proxy.url}${path}`)
        t.equal(proxied.status, direct.status, `${path} status`)
        t.equal(proxied.body.toString(), direct.body.toString(), `${path} body`)
        // Caddy only fills in security headers a response lacks: the app's own are kept.
        for (const name of ['content-security-policy', 'permissions-policy', 'x-frame-options', 'referrer-policy']) {
          if (direct.headers[name] !== undefined) t.equal(proxied.headers[name], direct.headers[name], `${path} ${name}`)
        }
      }
      // Each header on its own: a page with the app's five (no HSTS, its PUBLIC_BASE_URL being
      // http) still gets Caddy's HSTS, and an asset with the app's nosniff gets the rest.
      const page = await get(`${a.url}/`)
      t.equal(page.headers['x-frame-options'], 'DENY', 'the app sets its own headers on the page')
      t.equal(page.headers['strict-transport-security'], undefined, 'but no HSTS over http')
      t.equal((await get(`${proxy.url}/`)).headers['strict-transport-security'], 'max-age=31536000', 'which Caddy adds alone')
      const asset = site.manifest.assets.css
      const plain = await get(`${a.url}${asset}`)
      t.equal(plain.status, 200, asset)
      t.equal(plain.headers['x-frame-options'], undefined, 'the app sends an asset with nosniff only')
      const proxiedAsset = await get(`${proxy.url}${asset}`)
      t.equal(proxiedAsset.headers['x-frame-options'], 'DENY', 'Caddy fills in the rest')
      t.equal(proxiedAsset.headers['strict-transport-security'], 'max-age=31536000')
      const robots = await get(`${proxy.url}/robots.txt`)
      t.equal(robots.status, 200)
      t.match(robots.body.toString(), /Sitemap: /)
    })

    t.test('/docs from the built site, by Caddy', async (t) => {
      const bare = await get(`${proxy.url}/docs`)
      t.equal(bare.status, 308)
      t.equal(bare.headers.location, '/docs/')
      const home = await get(`${proxy.url}/docs/`, { headers: { 'accept-encoding': 'gzip' } })
      t.equal(home.status, 200)
      t.equal(home.headers['content-encoding'], 'gzip', 'compressed')
      t.match(gunzipSync(home.body).toString(), /docs-home-marker<\/h1><!-- precompressed -->/, "the build's .gz copy, though hidden from direct requests")
      t.match(home.headers['content-security-policy'], /^default-src 'self'; .*frame-ancestors 'none'$/, 'the docs CSP')
      t.match(home.headers['content-security-policy'], `script-src 'self' '${DOCS_SCRIPT_HASH}';`, "with the build's script hashes, as the app sends it")
      t.notMatch(home.headers['content-security-policy'], /unsafe-inline/)
      t.equal((await get(`${proxy.url}/docs/${DOCS_CADDY_FILE}`)).status, 404, "the build's own files are not served")
      t.equal((await get(`${proxy.url}/docs/.ctfhive-docs.json`)).status, 404)
      t.equal(home.headers['cache-control'], 'no-cache', 'pages are revalidated')
      t.equal(home.headers['x-frame-options'], 'DENY')
      const asset = await get(`${proxy.url}/docs/assets/bundle.0123abcd.min.js`)
      t.equal(asset.status, 200)
      t.equal(asset.headers['cache-control'], 'public, max-age=31536000, immutable', 'fingerprinted assets are kept')
      // Files that keep their name across releases are revalidated, as the app says: never a
      // day-old stylesheet or search index beside a new release's pages.
      for (const path of ['/docs/stylesheets/ctfhive.css', '/docs/search/search_index.json', '/docs/assets/search.json', '/docs/images/diagram.0123abcd.png']) {
        const r = await get(`${proxy.url}${path}`)
        t.equal(r.status, 200, path)
        t.equal(r.headers['cache-control'], 'no-cache', path)
        t.ok(r.headers.etag, `${path}: with an ETag to revalidate`)
      }
      for (const [from, to] of [['/docs/index.html', '/docs/'], ['/docs/guide/index.html', '/docs/guide/']] as const) {
        const r = await get(`${proxy.url}${from}`)
        t.equal(r.status, 301, from)
        t.equal(r.headers.location, to, 'one URL per page')
      }
      for (const hidden of ['/docs/404.html', '/docs/index.html.gz']) t.equal((await get(`${proxy.url}${hidden}`)).status, 404, `${hidden} is not a page of its own`)
      const dirNoSlash = await get(`${proxy.url}/docs/guide`)
      t.ok(dirNoSlash.status === 301 || dirNoSlash.status === 308, `directory URL redirects (${dirNoSlash.status})`)
      t.equal(dirNoSlash.headers.location, '/docs/guide/')
      const guide = await get(`${proxy.url}/docs/guide/`)
      t.equal(guide.status, 200)
      t.match(guide.body.toString(), /docs-guide-marker/)
      const missing = await get(`${proxy.url}/docs/no-such-page/`)
      t.equal(missing.status, 404)
      t.match(missing.body.toString(), /docs-404-marker/, "the docs' own 404 page")
      t.equal(missing.headers['cache-control'], 'no-cache', 'not cached: a later build may add the page')
      const missingFile = await get(`${proxy.url}/docs/no-such-page`)
      t.equal(missingFile.status, 404)
      t.equal(missingFile.headers['cache-control'], 'no-cache', 'nor under a path the day-long default would take')
      t.equal(missing.headers['x-content-type-options'], 'nosniff', 'error pages carry the headers too')
      const posted = await get(`${proxy.url}/docs/guide/%22x`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
      t.equal(posted.status, 404, 'a page is not posted to, as in the app')
      t.same(JSON.parse(posted.body.toString()), { error: 'not_found', message: 'No route for POST under /docs/: the docs are only read.' }, 'valid JSON whatever the path')
    })

    t.test("a missing docs page gets the whole 404 page, whatever the request's validators or range", async (t) => {
      // Served for a missing path, the 404 page's ETag and ranges are not the resource asked for:
      // Caddy would answer those headers with an empty 404, or a 404 with a slice of the page.
      const path = `${proxy.url}/docs/no-such-page/`
      const first = await get(path)
      t.equal(first.status, 404)
      t.equal(first.headers.etag, undefined, 'no ETag of the 404 page')
      t.equal(first.headers['last-modified'], undefined, 'no Last-Modified')
      t.equal(first.headers['accept-ranges'], undefined, 'no Accept-Ranges')
      // The ETag Caddy 2.6 gave the 404 page (its mtime and size), as a browser would send back.
      const page = statSync(join(docs, '404.html'))
      const pageEtag = `"${Math.floor(page.mtimeMs / 1000).toString(36)}${page.size.toString(36)}"`
      const variants: Array<[string, Record<string, string>]> = [
        ["If-None-Match: the 404 page's ETag", { 'if-none-match': pageEtag }],
        ['If-None-Match: *', { 'if-none-match': '*' }],
        ['If-Modified-Since', { 'if-modified-since': new Date(Date.now() + 60_000).toUTCString() }],
        ['Range', { range: 'bytes=0-20' }],
        ['Range with If-Range', { range: 'bytes=0-20', 'if-range': new Date(Date.now() + 60_000).toUTCString() }]
      ]
      for (const [name, headers] of variants) {
        const r = await get(path, { headers })
        t.equal(r.status, 404, name)
        t.equal(r.body.toString(), first.body.toString(), `${name}: the whole 404 page`)
        t.match(r.body.toString(), /docs-404-marker/, name)
        t.equal(r.headers.etag, undefined, `${name}: no ETag`)
        t.equal(r.headers['content-range'], undefined, `${name}: no Content-Range`)
      }
      // A page that exists still revalidates by its ETag.
      const docsHome = await get(`${proxy.url}/docs/`)
      t.ok(docsHome.headers.etag, 'the docs home has an ETag')
      const revalidated = await get(`${proxy.url}/docs/`, { headers: { 'if-none-match': String(docsHome.headers.etag) } })
      t.equal(revalidated.status, 304, 'and answers 304 to it')
    })

    t.test('requests are spread over both instances', async (t) => {
      const probe = randomUUID()
      for (let i = 0; i < 6; i++) t.equal((await get(`${proxy.url}/robots.txt?probe=${probe}`)).status, 200)
      // An instance logs a request as it ends, after the answer: its line may reach this
      // process a moment after the answer did.
      const deadline = Date.now() + 10_000
      while (!(a.output().includes(probe) && b.output().includes(probe)) && Date.now() < deadline) await sleep(50)
      t.ok(a.output().includes(probe), 'instance A served some')
      t.ok(b.output().includes(probe), 'instance B served some')
    })

    t.test('killing one instance: every request still answered', async (t) => {
      await a.kill()
      const failures: string[] = []
      for (let i = 0; i < 12; i++) {
        const health = await get(`${proxy.url}/healthz`)
        if (health.status !== 200) failures.push(`GET /healthz → ${health.status}`)
        const checkout = await get(`${proxy.url}/billing/checkout`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ plan: 'standard' })
        })
        if (checkout.status !== 200) failures.push(`POST /billing/checkout → ${checkout.status} ${checkout.body.toString()}`)
      }
      t.same(failures, [], 'no request failed after the kill')
      if (failures.length > 0) t.comment(`caddy's log:\n${proxy.output().slice(-4000)}`)
      t.equal(a.child.exitCode, null, 'instance A was killed, not exited')
      t.equal(a.child.signalCode, 'SIGKILL')
    })
  })
}

// Without Caddy the file is skipped with a one-line reason; under CI=true that fails instead.
if (caddyMissing !== false) {
  if (CI) t.fail(`${caddyMissing}: required under CI=true`)
  else t.plan(0, caddyMissing)
} else {
  registerTests()
}
