// The documentation at /docs/: served from DOCS_SITE_DIR with directory URLs, its own 404 and
// CSP, a clear 503 when not built; and the real MkDocs build when Debian's mkdocs is here.
import { once } from 'node:events'
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { request, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { brotliCompressSync, brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib'
import t from 'tap'
import { load } from 'cheerio'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from '../helpers/build-app.ts'
import { DOCS_CADDY_FILE, DOCS_MANIFEST_FILE } from '../../api/web/docs.ts'
import { buildDocs, buildReason, inlineScriptHashes, main, mkdocsVersion, sourceHash, undatedSitemap } from '../../docs-site/build.ts'

function tempDir (tt: { teardown (fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-docs-'))
  tt.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const page = (title: string, body = '') => `<!doctype html><html lang="en"><head><title>${title}</title><script>var x=1</script></head><body><h1>${title}</h1>${body}</body></html>`

function fixtureSite (tt: Parameters<typeof tempDir>[0]): string {
  const root = join(tempDir(tt), 'site')
  const files: Record<string, string> = {
    'index.html': page('Docs home'),
    'control-plane/billing-stripe/index.html': page('Billing & Stripe webhooks'),
    '404.html': page('404 - Not found'),
    'assets/javascripts/bundle.467223ff.min.js': 'console.log(1)\n',
    'assets/stylesheets/extra.css': 'body{}\n',
    'stylesheets/ctfhive.css': 'body{}\n',
    'search/search_index.json': '{"docs":[]}',
    'images/diagram.0123abcd.png': 'png',
    'sitemap.xml': '<?xml version="1.0"?><urlset/>',
    'assets/images/logo.svg': '<svg xmlns="http://www.w3.org/2000/svg"/>',
    'assets/site.webmanifest': '{}',
    [DOCS_MANIFEST_FILE]: JSON.stringify({ publicBaseUrl: 'http://localhost:3000', inlineScriptHashes: ['sha256-AAAA'] })
  }
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true })
    writeFileSync(join(root, rel), content)
  }
  writeFileSync(join(root, 'index.html.br'), brotliCompressSync(files['index.html']!))
  writeFileSync(join(root, 'sitemap.xml.gz'), gzipSync(files['sitemap.xml']!))
  return root
}

t.test('a built docs site is served at /docs/ with directory URLs', async (t) => {
  const root = fixtureSite(t)
  const { app } = await buildTestApp(t, { env: { DOCS_SITE_DIR: root } })

  for (const [from, to] of [['/docs', '/docs/'], ['/docs?q=1', '/docs/?q=1']] as const) {
    const r = await app.inject(from)
    t.equal(r.statusCode, 308, from)
    t.equal(r.headers.location, to)
  }
  const home = await app.inject('/docs/')
  t.equal(home.statusCode, 200)
  t.equal(load(home.body)('h1').text(), 'Docs home')
  t.equal(home.headers['cache-control'], 'no-cache')
  const csp = String(home.headers['content-security-policy'])
  t.match(csp, /script-src 'self' 'sha256-AAAA';/, 'the inline scripts the build listed, and nothing else')
  t.notMatch(csp, /unsafe-inline/)
  t.equal(home.headers['x-frame-options'], 'DENY')

  const clean = await app.inject('/docs/control-plane/billing-stripe/')
  t.equal(clean.statusCode, 200)
  t.equal(load(clean.body)('h1').text(), 'Billing & Stripe webhooks')
  const bare = await app.inject('/docs/control-plane/billing-stripe')
  t.equal(bare.statusCode, 301, 'a directory without its slash is redirected, so relative links work')
  t.equal(bare.headers.location, '/docs/control-plane/billing-stripe/')

  const br = await app.inject({ url: '/docs/', headers: { 'accept-encoding': 'br' } })
  t.equal(br.headers['content-encoding'], 'br')
  t.equal(brotliDecompressSync(br.rawPayload).toString(), home.body)

  t.equal((await app.inject('/docs/assets/javascripts/bundle.467223ff.min.js')).headers['cache-control'], 'public, max-age=31536000, immutable',
    "Material's fingerprinted files are kept")
  // Files that keep their name across releases are revalidated, as pages are: a day-old
  // stylesheet or search index beside a new release's pages is what this prevents.
  for (const url of ['/docs/stylesheets/ctfhive.css', '/docs/search/search_index.json', '/docs/assets/stylesheets/extra.css', '/docs/images/diagram.0123abcd.png']) {
    const r = await app.inject(url)
    t.equal(r.statusCode, 200, url)
    t.equal(r.headers['cache-control'], 'no-cache', url)
    t.ok(r.headers.etag, `${url}: an ETag makes the revalidation cheap`)
  }
  t.equal((await app.inject(`/docs/${DOCS_MANIFEST_FILE}`)).statusCode, 404, 'the manifest is not served')

  const missing = await app.inject('/docs/no/such/page/')
  t.equal(missing.statusCode, 404)
  t.equal(load(missing.body)('h1').text(), '404 - Not found', "the docs' own 404 page")
  t.match(String(missing.headers['content-security-policy']), /'sha256-AAAA'/)
  // One URL per page: a file name leads to its directory URL (the query kept, never cached).
  for (const [from, to] of [['/docs/index.html', '/docs/'], ['/docs/control-plane/billing-stripe/index.html', '/docs/control-plane/billing-stripe/'], ['/docs/index.html?q=1', '/docs/?q=1']] as const) {
    const r = await app.inject(from)
    t.equal(r.statusCode, 301, from)
    t.equal(r.headers.location, to)
    t.equal(r.headers['cache-control'], from.includes('?') ? 'no-store' : undefined)
  }
  for (const hidden of ['/docs/404.html', '/docs/index.html.br']) {
    t.equal((await app.inject(hidden)).statusCode, 404, `${hidden}: not a page of its own`)
  }

  // A doubled slash or a directory's slash is a miss too (@fastify/static refused it with a 403).
  for (const url of ['/docs//', '/docs//control-plane/billing-stripe/', '/docs/control-plane//billing-stripe/', '/docs/assets/', '/docs/assets//stylesheets/extra.css']) {
    const r = await app.inject({ url, headers: { accept: 'text/html' } })
    t.equal(r.statusCode, 404, url)
    t.equal(load(r.body)('h1').text(), '404 - Not found', `${url}: the docs' own 404 page`)
  }

  const robots = (await app.inject('/robots.txt')).body
  t.match(robots, /^Sitemap: http:\/\/localhost:3000\/docs\/sitemap\.xml$/m, 'robots.txt names the docs sitemap once built')
  t.match((await app.inject('/sitemap.xml')).body, '<loc>http://localhost:3000/docs/</loc>', 'and sitemap.xml lists /docs/')
})

t.test('text files under /docs/ name their charset, compressed or not', async (t) => {
  const root = fixtureSite(t)
  const { app } = await buildTestApp(t, { env: { DOCS_SITE_DIR: root } })
  for (const [url, type] of [
    ['/docs/sitemap.xml', 'application/xml; charset=utf-8'],
    ['/docs/assets/images/logo.svg', 'image/svg+xml; charset=utf-8'],
    ['/docs/assets/site.webmanifest', 'application/manifest+json; charset=utf-8'],
    ['/docs/assets/stylesheets/extra.css', 'text/css; charset=utf-8'],
    ['/docs/', 'text/html; charset=utf-8']
  ] as const) {
    const r = await app.inject(url)
    t.equal(r.statusCode, 200, url)
    t.equal(r.headers['content-type'], type, url)
  }
  const gz = await app.inject({ url: '/docs/sitemap.xml', headers: { 'accept-encoding': 'gzip' } })
  t.equal(gz.headers['content-encoding'], 'gzip', 'the pre-compressed sitemap')
  t.equal(gz.headers['content-type'], 'application/xml; charset=utf-8', 'names it too')
  t.equal((await app.inject('/sitemap.xml')).headers['content-type'], 'application/xml; charset=utf-8', "as the site's own sitemap does")
})

/** One request over a real connection: inject's response records the status an access line gets differently. */
async function statusOver (app: FastifyInstance, method: string, path: string, id: string): Promise<number> {
  const { port } = app.server.address() as AddressInfo
  const req = request({ host: '127.0.0.1', port, method, path, headers: { 'x-request-id': id } })
  req.end()
  const [res] = await once(req, 'response') as [IncomingMessage]
  res.resume()
  await once(res, 'end')
  return res.statusCode!
}

t.test('a miss or a redirect under /docs/ is answered once, and logged with its status and nothing at warn', async (t) => {
  const root = fixtureSite(t)
  const lines: Array<Record<string, unknown>> = []
  const { app } = await buildTestApp(t, { env: { DOCS_SITE_DIR: root }, logLines: lines })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const cases = [
    ['GET', '/docs/no/such/page/', 404, 'a missing page'],
    ['GET', '/docs/..%2f..%2f..%2fetc/passwd', 404, 'a traversal probe'],
    ['HEAD', '/docs/no/such/page/', 404, 'a HEAD miss'],
    ['GET', `/docs/${DOCS_MANIFEST_FILE}`, 404, 'a hidden build file'],
    ['GET', '/docs/control-plane/billing-stripe', 301, "a directory without its slash (the static server's redirect)"]
  ] as const
  for (const [i, [method, path, status, what]] of cases.entries()) {
    const id = `docs-once-${i}`
    t.equal(await statusOver(app, method, path, id), status, what)
    const mine = lines.filter((l) => l.reqId === id)
    t.same(mine.filter((l) => Number(l.level) >= 40).map((l) => l.msg), [], `${what}: no warning or error`)
    const access = mine.filter((l) => l.msg === 'request completed' || l.msg === 'request errored')
    t.equal(access.length, 1, `${what}: one access line`)
    t.match(access[0], { level: 30, res: { statusCode: status } }, `${what}: with the status sent`)
  }
})

t.test('an escaped path under /docs/ is decided as the file it names', async (t) => {
  const root = fixtureSite(t)
  const { app } = await buildTestApp(t, { env: { DOCS_SITE_DIR: root } })
  // @fastify/static decodes the path before it picks a file, so the checks decode it too.
  for (const hidden of ['/docs/404%2ehtml', '/docs/404%2Ehtml', '/docs/index.html%2ebr', '/docs/index%2ehtml%2Ebr']) {
    const r = await app.inject({ url: hidden, headers: { accept: 'text/html', 'accept-encoding': 'br' } })
    t.equal(r.statusCode, 404, `${hidden}: not a page of its own`)
    t.equal(load(r.body)('h1').text(), '404 - Not found', `${hidden}: the docs' 404 page, as a 404`)
  }
  for (const [from, to] of [['/docs/index%2ehtml', '/docs/'], ['/docs/index%2Ehtml?q=1', '/docs/?q=1'],
    ['/docs/control-plane/billing-stripe/%69ndex.html', '/docs/control-plane/billing-stripe/']] as const) {
    const r = await app.inject(from)
    t.equal(r.statusCode, 301, from)
    t.equal(r.headers.location, to, from)
  }
  // Decoded once: %252e is a literal "%2e" in a file name (none here), not a dot.
  const twice = await app.inject('/docs/index%252ehtml')
  t.equal(twice.statusCode, 404, '/docs/index%252ehtml: a miss')
  t.equal(twice.headers.location, undefined, 'not the home page\'s other address')
  // An escaped slash stays part of a name, as the static server takes it.
  const slash = await app.inject('/docs/control-plane/billing-stripe%2Findex.html')
  t.equal(slash.statusCode, 404, '…billing-stripe%2Findex.html: a miss')
  t.equal(slash.headers.location, undefined, 'not a redirect: %2F is no directory separator')
  const bad = await app.inject('/docs/index%2ehtml%zz')
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().error, 'bad_url', "a malformed escape is still the router's 400")
})

t.test('docs built for another address are reported at start, and their sitemap is not offered', async (t) => {
  const root = fixtureSite(t)
  const warned = (lines: Array<Record<string, unknown>>) => lines.find((l) => String(l.msg).includes('documentation was built for another address'))
  const quiet: Array<Record<string, unknown>> = []
  const here = (await buildTestApp(t, { env: { DOCS_SITE_DIR: root }, logLines: quiet })).app
  t.notOk(warned(quiet), 'not when the addresses match')
  t.match((await here.inject('/robots.txt')).body, /^Sitemap: http:\/\/localhost:3000\/docs\/sitemap\.xml$/m)

  const lines: Array<Record<string, unknown>> = []
  const elsewhere = (await buildTestApp(t, { env: { DOCS_SITE_DIR: root, PUBLIC_BASE_URL: 'https://ctfhive.example' }, logLines: lines })).app
  const warning = warned(lines)
  t.match(warning, { level: 40, dir: root, built: { publicBaseUrl: 'http://localhost:3000' }, config: { publicBaseUrl: 'https://ctfhive.example' } }, 'a warning naming both addresses')
  t.match(String(warning?.msg), /run npm run docs/, 'naming how to rebuild')
  const robots = (await elsewhere.inject('/robots.txt')).body.split('\n')
  t.ok(robots.includes('Sitemap: https://ctfhive.example/sitemap.xml'), "the site's own sitemap stays")
  t.notOk(robots.some((l) => l.includes('/docs/sitemap.xml')), 'the docs sitemap names another host: left out')
  t.equal((await elsewhere.inject('/docs/')).statusCode, 200, 'the docs are still served')
})

t.test('docs built elsewhere (no manifest) still work, allowing inline scripts', async (t) => {
  const root = fixtureSite(t)
  rmSync(join(root, DOCS_MANIFEST_FILE))
  const { app } = await buildTestApp(t, { env: { DOCS_SITE_DIR: root } })
  t.match(String((await app.inject('/docs/')).headers['content-security-policy']), /script-src 'self' 'unsafe-inline';/)
  const lines: Array<Record<string, unknown>> = []
  const other = (await buildTestApp(t, { env: { DOCS_SITE_DIR: root, PUBLIC_BASE_URL: 'https://ctfhive.example' }, logLines: lines })).app
  t.notOk(lines.some((l) => String(l.msg).includes('built for another address') && l.dir === root), 'an address not recorded is not called wrong')
  t.match((await other.inject('/robots.txt')).body, /^Sitemap: https:\/\/ctfhive\.example\/docs\/sitemap\.xml$/m)
})

t.test('docs not built are reported once at start, built ones are not', async (t) => {
  const notBuilt = (lines: Array<Record<string, unknown>>) => lines.filter((l) => String(l.msg).startsWith('the documentation is not built'))
  const missing = join(tempDir(t), 'missing')
  const lines: Array<Record<string, unknown>> = []
  const { app } = await buildTestApp(t, { env: { DOCS_SITE_DIR: missing }, logLines: lines })
  await app.inject('/docs/')
  await app.inject('/docs/x/')
  const warnings = notBuilt(lines)
  t.equal(warnings.length, 1, 'one warning, at start')
  t.match(warnings[0], { level: 40, dir: missing, msg: /run npm run docs/ }, 'naming the directory and the command')
  const quiet: Array<Record<string, unknown>> = []
  await buildTestApp(t, { env: { DOCS_SITE_DIR: fixtureSite(t) }, logLines: quiet })
  t.same(notBuilt(quiet), [], 'none once built')
})

t.test('without a build, /docs/ says how to build it', async (t) => {
  const { app } = await buildTestApp(t, { env: { DOCS_SITE_DIR: join(tempDir(t), 'missing') } })
  t.equal((await app.inject('/docs')).statusCode, 308, 'the redirect does not depend on the build')
  for (const url of ['/docs/', '/docs/control-plane/billing-stripe/', '/docs/assets/x.js']) {
    const r = await app.inject(url)
    t.equal(r.statusCode, 503, url)
    t.equal(r.json().error, 'docs_not_built')
    t.match(r.json().message, /npm run docs/)
    t.equal(r.headers['retry-after'], '60')
  }
  const html = await app.inject({ url: '/docs/', headers: { accept: 'text/html,application/xhtml+xml' } })
  t.equal(html.statusCode, 503)
  t.match(html.headers['content-type'], /^text\/html/)
  t.match(load(html.body)('main').text(), /npm run docs/)
  t.notMatch((await app.inject('/robots.txt')).body, /docs\/sitemap/)
  // /docs/ answers 503 now: the sitemap must not send search engines there.
  const sitemap = (await app.inject('/sitemap.xml')).body
  t.match(sitemap, '<loc>http://localhost:3000/pricing</loc>')
  t.notMatch(sitemap, /\/docs\//, 'sitemap.xml leaves /docs/ out until it is built')
})

t.test('the build script', async (t) => {
  const out = join(tempDir(t), 'site')
  const lines: string[] = []
  const io = { stderr: { write: (s: string) => lines.push(s) } }

  t.equal(main(['--bogus'], {}, io), 2, 'unknown option')
  t.match(lines.splice(0).join(''), /^docs: .*\nUsage: node docs-site\/build\.ts/)
  t.equal(main([], { PORT: 'x' }, io), 78, 'bad configuration: 78 (EX_CONFIG), as the server')
  t.equal(lines.splice(0).join(''), 'docs: configuration error: PORT: must be a whole number, got "x"\n', 'one line naming the variable')

  t.equal(main(['--out', out], { MKDOCS: '/nonexistent/mkdocs' }, io), 0, 'no mkdocs: a notice, not a failure')
  t.match(lines.splice(0).join(''), /^docs: not built \(not built yet\): mkdocs is not installed/)
  t.notOk(existsSync(out))
  t.equal(mkdocsVersion('/nonexistent/mkdocs'), undefined)

  t.throws(() => buildDocs({ outDir: out, publicBaseUrl: 'http://x', mkdocs: '/nonexistent/mkdocs' }), /could not run mkdocs/)
  // An mkdocs that starts but fails a strict build, writing what Debian's MkDocs 1.4 writes:
  // progress, the coloured WARNING naming the file and a Python deprecation notice on stderr
  // (none of it with --quiet), the verdict on stdout. The WARNING is shown, the INFO records
  // and colours are not; the exit status is 1.
  const fake = join(tempDir(t), 'mkdocs')
  writeFileSync(fake, [
    '#!/bin/sh',
    'if [ "$1" = --version ]; then echo "mkdocs, version 0.0"; exit 0; fi',
    'quiet=no; for a in "$@"; do [ "$a" = --quiet ] || [ "$a" = -q ] && quiet=yes; done',
    'if [ $quiet = no ]; then',
    '  echo "INFO     -  Cleaning site directory" >&2',
    '  printf \'\\033[33mWARNING  -  \\033[0mDocumentation file \\047index.md\\047 contains a link to \\047missing.md\\047 which is not found in the documentation files.\\n\' >&2',
    '  printf \'INFO     -  DeprecationWarning: invalid escape sequence\\n  File "lexer.py", line 392, in __next__\\n    self.current = next(self._iter)\\n\\n\' >&2',
    'fi',
    'printf \'\\nAborted with 1 warnings in strict mode!\\n\'',
    'exit 1',
    ''
  ].join('\n'), { mode: 0o755 })
  t.equal(main(['--out', out], { MKDOCS: fake }, io), 1)
  t.equal(lines.splice(0).join(''), "docs: mkdocs build failed (exit 1):\nWARNING  -  Documentation file 'index.md' contains a link to 'missing.md' which is not found in the documentation files.\n" +
    'Aborted with 1 warnings in strict mode!\n', 'the line naming the file, then the verdict')
  // npm start builds with --if-missing: a failing mkdocs (say, without mkdocs-material) must
  // not keep the server from starting, any more than a missing one does.
  t.equal(main(['--if-missing', '--out', out], { MKDOCS: fake }, io), 0, 'on the way to a start: said, not fatal')
  t.match(lines.splice(0).join(''), /mkdocs build failed[\s\S]*left as it was \(not built yet\); the server starts without a fresh build/)
  t.notOk(existsSync(out), 'nothing is left behind')
  t.same(readdirSync(dirname(out)), [], 'not even the temporary directory')

  t.equal(buildReason({ outDir: out, publicBaseUrl: 'http://x' }), 'not built yet')
  t.not(sourceHash('https://a.example'), sourceHash('https://b.example'), 'the address is part of the build')
  const html = join(tempDir(t), 'h')
  mkdirSync(html)
  writeFileSync(join(html, 'a.html'), '<script>one()</script><script type="application/json">{}</script><script src="x.js"></script>')
  writeFileSync(join(html, 'b.html'), '<script>one()</script><script>\ntwo()\n</script>')
  t.equal(inlineScriptHashes(html).length, 2, 'one hash per distinct inline script; data blocks and external scripts are not hashed')
})

t.test("the docs sitemap carries no build date: each rebuild would mark every page changed", async (t) => {
  // MkDocs 1.4's sitemap.xml template, as it renders.
  const entry = (loc: string, date = true): string => `
    <url>
         <loc>${loc}</loc>
         ${date ? '<lastmod>2024-06-01</lastmod>' : ''}
         <changefreq>daily</changefreq>
    </url>`
  const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">${entry('https://a.example/docs/')}${entry('https://a.example/docs/x/', false)}\n</urlset>`
  const out = undatedSitemap(xml)
  t.notMatch(out, /lastmod|changefreq/)
  t.same(load(out, { xml: true })('url > loc').map((_i, el) => load(el).text()).get(), ['https://a.example/docs/', 'https://a.example/docs/x/'], 'every page kept')
  t.equal(out, '<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n    <url>\n         <loc>https://a.example/docs/</loc>\n    </url>\n    <url>\n         <loc>https://a.example/docs/x/</loc>\n    </url>\n</urlset>')
})

const noMkdocs = mkdocsVersion() === undefined
  ? (process.env.CI === 'true' ? undefined : 'mkdocs not installed (apt-get install mkdocs mkdocs-material)')
  : undefined

t.test('the real MkDocs build', { skip: noMkdocs }, async (t) => {
  t.ok(mkdocsVersion(), 'mkdocs is installed (required under CI=true)')
  const out = join(tempDir(t), 'site')
  const base = 'https://ctfhive.example'
  const built: string[] = []
  t.equal(main(['--out', out], { PUBLIC_BASE_URL: base }, { stderr: { write: (s: string) => built.push(s) } }), 0)
  t.match(built.join(''), /^docs: built \d+ pages into .* for https:\/\/ctfhive\.example\/docs\/ \(not built yet; mkdocs \d/)
  t.equal(built.length, 1, "one line: MkDocs' own output is shown only when the build fails")
  t.equal(buildReason({ outDir: out, publicBaseUrl: base }), null, 'up to date right after the build')
  t.match(String(buildReason({ outDir: out, publicBaseUrl: 'https://other.example' })), /built for https:\/\/ctfhive\.example/)

  const lines: string[] = []
  t.equal(main(['--if-missing', '--out', out], { PUBLIC_BASE_URL: base }, { stderr: { write: (s: string) => lines.push(s) } }), 0)
  t.match(lines.join(''), /is up to date/)

  const pages = ['', 'getting-started/', 'control-plane/', 'control-plane/running/', 'control-plane/configuration/',
    'control-plane/billing-stripe/', 'control-plane/tenant-lifecycle/', 'control-plane/provisioning/',
    'control-plane/audit-chain/', 'control-plane/http-api/', 'control-plane/site/', 'operations/', 'operations/deploy/',
    'operations/postgresql/', 'operations/scaling/', 'operations/backups/', 'operations/operator-tools/', 'troubleshooting/']
  for (const p of pages) {
    const $ = load(readFileSync(join(out, p, 'index.html'), 'utf8'))
    t.equal($('link[rel="canonical"]').attr('href'), `${base}/docs/${p}`, `${p || 'home'}: canonical`)
    t.equal($('meta[property="og:url"]').attr('content'), `${base}/docs/${p}`)
    t.equal($('meta[property="og:image"]').attr('content'), `${base}/og-image.png`)
    t.equal($('meta[name="twitter:card"]').attr('content'), 'summary_large_image')
    t.ok(($('meta[name="description"]').attr('content') ?? '').length > 40, `${p || 'home'}: a description of its own`)
    $('script[src], link[rel="stylesheet"], link[rel="icon"], img[src]').each((_i, el) => {
      const ref = String($(el).attr('src') ?? $(el).attr('href'))
      t.notMatch(ref, /^(https?:)?\/\//, `${p || 'home'} loads ${ref} from this origin`)
    })
    t.equal($('link[href*="fonts.googleapis"], link[href*="fonts.gstatic"]').length, 0, 'no web fonts')
  }
  const nav = load(readFileSync(join(out, 'index.html'), 'utf8'))
  t.ok(nav('nav.md-nav--primary input.md-toggle').length >= 2, 'collapsible navigation sections')
  // On a narrow screen the drawer opens from a real button (tests/e2e/docs.test.ts drives it),
  // wired by our script; the theme's label stays for browsers without it.
  const menu = nav('button.md-header__button[aria-controls]')
  t.equal(menu.length, 1, 'a menu button in the header')
  t.match(menu.attr(), { type: 'button', 'aria-label': 'Navigation', 'aria-expanded': 'false' }, 'named, and closed')
  t.equal(nav('label.md-header__button[for="__drawer"]').length, 1, "and the theme's label, for no script")
  t.equal(nav('script[src$="javascripts/ctfhive.js"]').length, 1, 'the script that wires it')
  t.ok(existsSync(join(out, 'javascripts/ctfhive.js')), 'is built')
  // The 404 page names itself, not the docs home.
  t.equal(load(readFileSync(join(out, '404.html'), 'utf8'))('title').text(), 'Page not found - CTFHive documentation', 'the 404 page has a title of its own')
  // The way back to the marketing site: the logo (header and drawer) and two nav entries.
  t.same(nav('a.md-logo').map((_i, el) => nav(el).attr('href')).get(), [`${base}/`, `${base}/`], "the logo leads to the site's home page")
  const external = nav('nav.md-nav--primary a.md-nav__link').map((_i, el) => [[nav(el).text().trim(), nav(el).attr('href')]]).get()
  t.same(external.filter(([, href]) => /^https?:/.test(String(href))), [['Plans and prices', `${base}/pricing`], ['Contact', `${base}/contact`]], 'the nav links to the plans and to contact')

  // The sitemap: every page, no build date (each rebuild would mark every page changed).
  const sitemap = readFileSync(join(out, 'sitemap.xml'), 'utf8')
  t.notMatch(sitemap, /<lastmod>|<changefreq>/, 'no lastmod or changefreq')
  const locs = load(sitemap, { xml: true })('url > loc').map((_i, el) => load(el).text()).get().sort()
  const pageFiles = readdirSync(out, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('index.html'))
  t.same(locs, pageFiles.map((f) => `${base}/docs/${f.replace(/index\.html$/, '')}`).sort(), 'each page once')
  t.equal(gunzipSync(readFileSync(join(out, 'sitemap.xml.gz'))).toString(), sitemap, "the .gz is ours, not MkDocs' dated one")
  const billing = load(readFileSync(join(out, 'control-plane/billing-stripe/index.html'), 'utf8'))
  t.ok(billing('nav[aria-label="Table of contents"] a[href="#post-billingwebhook"]').length >= 1, 'a table of contents')
  t.ok(existsSync(join(out, 'search/search_index.json')), 'the search index')
  t.ok(existsSync(join(out, 'index.html.br')) && existsSync(join(out, 'index.html.gz')), 'precompressed')
  const manifest = JSON.parse(readFileSync(join(out, DOCS_MANIFEST_FILE), 'utf8'))
  t.ok(manifest.inlineScriptHashes.length >= 1, 'inline script hashes recorded for the CSP')
  const caddyLine = readFileSync(join(out, DOCS_CADDY_FILE), 'utf8')
  for (const h of manifest.inlineScriptHashes) t.ok(caddyLine.includes(`'${h}'`), `Caddy's copy of the policy has ${h.slice(0, 16)}…`)
  t.notMatch(caddyLine, /unsafe-inline/, "Caddy's copy allows no other inline script")

  const { app } = await buildTestApp(t, { env: { DOCS_SITE_DIR: out, PUBLIC_BASE_URL: base } })
  const r = await app.inject('/docs/control-plane/billing-stripe/')
  t.equal(r.statusCode, 200)
  t.match(caddyLine, `header Content-Security-Policy "${r.headers['content-security-policy']}"`, 'Caddy sends what the app sends')
  t.equal((await app.inject(`/docs/${DOCS_CADDY_FILE}`)).statusCode, 404, 'the Caddy file is not served')
  t.equal(load(r.body)('h1').first().text().replace('¶', '').trim(), 'Billing & Stripe webhooks')
  t.equal(readdirSync(dirname(out)).filter((f) => f.includes('.tmp-') || f.includes('.old-')).length, 0, 'no temporary directories left behind')
})
