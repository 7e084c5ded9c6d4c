// The marketing site as served: every page's head (parsed, not grepped), robots.txt and
// sitemap.xml, caching and security headers, precompressed variants, clean URLs, the HTML 404,
// and the pages the server fills in for visitors without JavaScript.
import { join } from 'node:path'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import t from 'tap'
import { load } from 'cheerio'
import { PAID_PLANS } from '../../api/plans.ts'
import { SITE_PAGES } from '../../api/web/site-pages.ts'
import { PROGRESS_TEXT, REGISTER_ERRORS, LOGIN_ERRORS, fillText, shutdownText } from '../../api/web/buyer-text.ts'
import { buildTestApp, storeWithOverrides } from '../helpers/build-app.ts'
import { checkoutSession, deliver, invoice, makeEvent, subscription } from '../helpers/stripe-events.ts'
import { SITE_BASE, SITE_DOMAIN, buildTestSite } from '../helpers/site-build.ts'

const site = buildTestSite(t)
// Never the checkout's own docs-site/site: these tests must not depend on what was built by hand.
const NO_DOCS = join(site.dir, 'no-docs-here')
const app = async (tt: Parameters<typeof buildTestApp>[0], env: Record<string, string> = {}) =>
  (await buildTestApp(tt, { env: { ...site.env, DOCS_SITE_DIR: NO_DOCS, ...env } })).app

const PAGES = [...SITE_PAGES.map((p) => p.path), '/no-such-page']
const NOINDEX = new Set(['/login', '/register', '/welcome', '/no-such-page'])

t.test('every page has a complete, unique head', async (t) => {
  const a = await app(t)
  const titles = new Set<string>()
  const descriptions = new Set<string>()
  for (const path of PAGES) {
    const r = await a.inject(path)
    t.equal(r.statusCode, path === '/no-such-page' ? 404 : 200, `${path} status`)
    const $ = load(r.body)
    const meta = (sel: string) => $(`head meta[${sel}]`).attr('content')
    const title = $('head title').text()
    const description = meta('name="description"')
    t.ok(title.length > 10 && title.length <= 70, `${path} title "${title}"`)
    t.ok(description !== undefined && description.length >= 50 && description.length <= 170, `${path} description length`)
    t.notOk(titles.has(title), `${path} title is unique`)
    t.notOk(descriptions.has(description!), `${path} description is unique`)
    titles.add(title)
    descriptions.add(description!)
    t.equal($('html').attr('lang'), 'en')
    t.equal($('h1').length, 1, `${path} has one h1`)

    const url = `${SITE_BASE}${path}`
    if (path === '/no-such-page') {
      t.equal($('link[rel="canonical"]').length, 0, 'the 404 page has no canonical URL')
      t.equal(meta('property="og:url"'), undefined, 'nor an og:url naming /404, itself a 404')
      t.equal($('meta[name="twitter:url"], meta[property="twitter:url"]').length, 0)
    } else {
      t.equal($('link[rel="canonical"]').attr('href'), url, `${path} canonical`)
      t.equal(meta('property="og:url"'), url)
    }
    t.equal(meta('property="og:title"'), title)
    t.equal(meta('property="og:description"'), description)
    t.equal(meta('property="og:type"'), 'website')
    t.equal(meta('property="og:site_name"'), 'CTFHive')
    t.equal(meta('property="og:image"'), `${SITE_BASE}/og-image.png`)
    t.equal(meta('property="og:image:width"'), '1200')
    t.equal(meta('property="og:image:height"'), '630')
    t.equal(meta('name="twitter:card"'), 'summary_large_image')
    t.equal(meta('name="twitter:title"'), title)
    t.equal(meta('name="twitter:description"'), description)
    t.equal(meta('name="twitter:image"'), `${SITE_BASE}/og-image.png`)
    t.match(String(meta('name="theme-color"')), /^#[0-9a-f]{6}$/)
    t.equal($('link[rel="icon"]').attr('href'), '/favicon.ico')
    t.equal(meta('name="robots"'), NOINDEX.has(path) ? 'noindex, nofollow' : undefined, `${path} robots`)

    const blocks = $('script[type="application/ld+json"]')
    t.equal(blocks.length, 1, `${path} has one JSON-LD block`)
    const graph = JSON.parse(blocks.text())['@graph'] as Array<Record<string, any>>
    t.ok(graph.some((n) => n['@type'] === 'Organization' && n.name === 'CTFHive' && n.url === `${SITE_BASE}/`))
    if (path === '/contact') {
      // Every contact point is a mailbox the contact page offers, linked to its card.
      const points = graph.find((n) => n['@type'] === 'Organization')!.contactPoint as Array<Record<string, string>>
      t.same(points.map((p) => p.email), ['sales@ctfhive.example', 'support@ctfhive.example', 'billing@ctfhive.example'])
      for (const p of points) {
        t.equal($(`a[href="mailto:${p.email}"]`).length > 0, true, `${p.email} is on the contact page`)
        t.equal($(`#${p.url!.split('#')[1]}`).find(`a[href="mailto:${p.email}"]`).length, 1, `${p.url} is its card`)
      }
    }
    const app = graph.find((n) => n['@type'] === 'SoftwareApplication')!
    t.same(app.offers.map((o: any) => [o.name, o.price, o.priceCurrency]),
      PAID_PLANS.map((p) => [p.name, (p.amount! / 100).toFixed(2), 'USD']), `${path} offers follow the catalogue`)
    // Each offer links to its plan's card on the pricing page, never to the noindex, disallowed /register.
    t.same(app.offers.map((o: any) => o.url), PAID_PLANS.map((p) => `${SITE_BASE}/pricing#plan-card-${p.slug}`), `${path} offer URLs`)
    // Nothing from another origin: every script, stylesheet and image is ours.
    $('script[src], link[rel="stylesheet"], img[src]').each((_i, el) => {
      const ref = $(el).attr('src') ?? $(el).attr('href')!
      t.match(String(ref), /^\/[^/]/, `${path} loads ${ref} from this origin`)
    })
  }
})

t.test('the offers link to indexable pages that hold their fragment', async (t) => {
  const a = await app(t)
  const $ = load((await a.inject('/')).body)
  const offers = (JSON.parse($('script[type="application/ld+json"]').text())['@graph'] as Array<Record<string, any>>)
    .find((n) => n['@type'] === 'SoftwareApplication')!.offers as Array<{ url: string }>
  const disallowed = (await a.inject('/robots.txt')).body.split('\n').filter((l) => l.startsWith('Disallow: ')).map((l) => l.slice(10))
  t.same(disallowed, ['/login', '/register', '/welcome'])
  for (const { url } of offers) {
    const { pathname, hash } = new URL(url)
    t.notOk(disallowed.some((d) => pathname.startsWith(d)), `${url} is not disallowed in robots.txt`)
    const page = await a.inject(pathname)
    t.equal(page.statusCode, 200, url)
    const target = load(page.body)
    t.equal(target('meta[name="robots"]').length, 0, `${pathname} is indexable`)
    t.equal(target(hash).length, 1, `${pathname} has an element ${hash}`)
  }
})

t.test('the images, stylesheet and script a page names are served', async (t) => {
  const a = await app(t)
  const $ = load((await a.inject('/')).body)
  const css = $('link[rel="stylesheet"]').attr('href')!
  const js = $('script[src]').attr('src')!
  t.equal(css, site.manifest.assets.css)
  t.equal(js, site.manifest.assets.js)
  for (const [url, type] of [[css, 'text/css'], [js, 'javascript'], ['/favicon.ico', 'icon'], ['/og-image.png', 'image/png'], ['/apple-touch-icon.png', 'image/png']] as const) {
    const r = await a.inject(url)
    t.equal(r.statusCode, 200, url)
    t.match(r.headers['content-type'], type, url)
    t.equal(r.headers['x-content-type-options'], 'nosniff')
  }
  t.equal((await a.inject(css)).headers['cache-control'], 'public, max-age=31536000, immutable', 'fingerprinted assets are immutable')
  t.equal((await a.inject('/og-image.png')).headers['cache-control'], 'public, max-age=86400', 'unfingerprinted files are cached a day')
  t.equal((await a.inject('/.build.json')).statusCode, 404, 'the manifest is not served')
})

t.test('HTML carries no-cache and the security headers', async (t) => {
  const a = await app(t)
  for (const path of ['/', '/pricing', '/register', '/no-such-page', '/register?error=rate_limited']) {
    const h = (await a.inject(path)).headers
    t.match(h['cache-control'], /^no-(cache|store)$/, `${path} cache-control`)
    const csp = String(h['content-security-policy'])
    t.match(csp, /default-src 'self'/, path)
    t.match(csp, /script-src 'self'(;|$)/, `${path}: no inline script allowed`)
    t.match(csp, /frame-ancestors 'none'/)
    t.match(csp, /form-action 'self' https:\/\/checkout\.stripe\.com https:\/\/\*\.ctfhive\.example/)
    t.notMatch(csp, /unsafe-inline|unsafe-eval|\*(?!\.ctfhive)/)
    t.equal(h['x-content-type-options'], 'nosniff')
    t.equal(h['x-frame-options'], 'DENY')
    t.equal(h['referrer-policy'], 'strict-origin-when-cross-origin')
    t.match(h['permissions-policy'], /camera=\(\)/)
    t.equal(h['cross-origin-opener-policy'], 'same-origin', `${path}: no other window keeps a handle on it`)
    t.equal(h['strict-transport-security'], 'max-age=31536000', 'HSTS on an https origin')
  }
  const plain = await app(t, { PUBLIC_BASE_URL: 'http://127.0.0.1:3000' })
  t.equal((await plain.inject('/')).headers['strict-transport-security'], undefined, 'no HSTS on plain http')
})

t.test('precompressed variants are served when accepted', async (t) => {
  const a = await app(t)
  for (const url of ['/', '/pricing', site.manifest.assets.css, site.manifest.assets.js]) {
    const plain = await a.inject({ url, headers: { 'accept-encoding': 'identity' } })
    t.equal(plain.headers['content-encoding'], undefined, `${url} identity`)
    t.match(plain.headers.vary, /accept-encoding/i)
    const br = await a.inject({ url, headers: { 'accept-encoding': 'gzip, deflate, br' } })
    t.equal(br.headers['content-encoding'], 'br', `${url} br`)
    t.equal(br.headers['content-type'], plain.headers['content-type'])
    t.equal(brotliDecompressSync(br.rawPayload).toString(), plain.body)
    t.ok(br.rawPayload.length < plain.rawPayload.length / 2)
    const gz = await a.inject({ url, headers: { 'accept-encoding': 'gzip' } })
    t.equal(gz.headers['content-encoding'], 'gzip', `${url} gzip`)
    t.equal(gunzipSync(gz.rawPayload).toString(), plain.body)
  }
  const notFound = await a.inject({ url: '/missing', headers: { 'accept-encoding': 'br' } })
  t.equal(notFound.statusCode, 404)
  t.equal(notFound.headers['content-encoding'], 'br')
  t.match(brotliDecompressSync(notFound.rawPayload).toString(), /Page not found/)
  const refused = await a.inject({ url: '/missing', headers: { 'accept-encoding': 'br;q=0, gzip;q=0' } })
  t.equal(refused.headers['content-encoding'], undefined, 'q=0 refuses an encoding')
  t.match(refused.body, /Page not found/)
  const preferred = await a.inject({ url: '/missing', headers: { 'accept-encoding': 'br;q=0.1, gzip' } })
  t.equal(preferred.headers['content-encoding'], 'gzip', 'and q-values rank them')
  const head = await a.inject({ method: 'HEAD', url: '/missing' })
  t.equal(head.statusCode, 404)
  t.match(head.headers['content-type'], /^text\/html/, 'HEAD answers like GET: the HTML 404')
})

t.test('clean URLs: one address per page', async (t) => {
  const a = await app(t)
  for (const [from, to] of [['/pricing.html', '/pricing'], ['/index.html', '/'], ['/about/', '/about'], ['/register.html?plan=pro', '/register?plan=pro']] as const) {
    const r = await a.inject(from)
    t.equal(r.statusCode, 301, from)
    t.equal(r.headers.location, to)
  }
  const head = await a.inject({ method: 'HEAD', url: '/pricing' })
  t.equal(head.statusCode, 200)
  t.equal(head.body, '')
  for (const hidden of ['/404.html', '/checkout-return.html', '/register.html.br', '/index.html.gz', '/pricing.html.br?x=1']) {
    t.equal((await a.inject(hidden)).statusCode, 404, `${hidden}: a build file, not a page of its own`)
  }
  const tokened = await a.inject(`/welcome.html?tenant=${'a'.repeat(32)}&token=${'b'.repeat(40)}`)
  t.equal(tokened.statusCode, 301)
  t.equal(tokened.headers['cache-control'], 'no-store', 'a redirect that carries a token is not cached')
  t.equal((await a.inject('/pricing.html')).headers['cache-control'], undefined, 'one without a query may be')
})

t.test('an escaped path is decided as the file it names: no build file by name, no second URL', async (t) => {
  const a = await app(t)
  // @fastify/static decodes the path before it picks a file, so the checks decode it too.
  for (const hidden of ['/404%2ehtml', '/404%2Ehtml', '/%34%30%34.html', '/about.html%2ebr', '/about.html%2Ebr', '/index.html%2egz?x=1']) {
    const r = await a.inject({ url: hidden, headers: { accept: 'text/html', 'accept-encoding': 'br, gzip' } })
    t.equal(r.statusCode, 404, `${hidden}: a build file, not a page of its own`)
    t.match(r.headers['content-type'], /^text\/html/, `${hidden}: the HTML 404, not the file's bytes`)
  }
  for (const [from, to] of [['/pricing%2ehtml', '/pricing'], ['/pricing%2Ehtml', '/pricing'], ['/%70ricing.html', '/pricing'], ['/index%2ehtml', '/'], ['/register%2ehtml?plan=pro', '/register?plan=pro']] as const) {
    const r = await a.inject(from)
    t.equal(r.statusCode, 301, from)
    t.equal(r.headers.location, to, from)
  }
  // Decoded once: %252e is a literal "%2e" in a file name (none here), not a dot.
  for (const url of ['/pricing%252ehtml', '/404%252ehtml', '/about.html%252ebr']) {
    const r = await a.inject({ url, headers: { accept: 'text/html' } })
    t.equal(r.statusCode, 404, url)
    t.equal(r.headers.location, undefined, `${url}: not a page's other address`)
  }
  // An escaped slash stays part of a name, as the static server takes it: no redirect to /about.
  t.equal((await a.inject({ url: '/about%2F', headers: { accept: 'text/html' } })).statusCode, 404, '/about%2F: a miss')
  for (const url of ['/pricing%2ehtml%zz', '/404%2ehtml%zz', '/%zz.br']) {
    const r = await a.inject(url)
    t.equal(r.statusCode, 400, url)
    t.equal(r.json().error, 'bad_url', `${url}: a malformed escape is still the router's 400`)
  }
})

t.test('welcome pages keep their token to themselves', async (t) => {
  const a = await app(t)
  for (const url of [`/welcome?tenant=${'a'.repeat(32)}&token=${'b'.repeat(40)}`, `/welcome?token=${'b'.repeat(40)}`]) {
    const r = await a.inject(url)
    t.equal(r.statusCode, 200, url)
    t.equal(r.headers['referrer-policy'], 'no-referrer', `${url}: no Referer carries the token on`)
    t.equal(r.headers['cache-control'], 'no-store', `${url}: not stored`)
  }
  const plain = await a.inject('/welcome')
  t.equal(plain.headers['referrer-policy'], 'strict-origin-when-cross-origin', 'the bare page is the ordinary one')
})

t.test('a site built for another address is reported at start', async (t) => {
  const quiet: Array<Record<string, unknown>> = []
  await buildTestApp(t, { env: { ...site.env, DOCS_SITE_DIR: NO_DOCS }, logLines: quiet })
  t.notOk(quiet.some((l) => String(l.msg).includes('built for another address')), 'not when the settings match')
  const lines: Array<Record<string, unknown>> = []
  await buildTestApp(t, { env: { ...site.env, DOCS_SITE_DIR: NO_DOCS, PUBLIC_BASE_URL: 'https://elsewhere.example' }, logLines: lines })
  const warning = lines.find((l) => String(l.msg).includes('built for another address'))
  t.ok(warning, 'a warning')
  t.match(warning, { level: 40, built: { publicBaseUrl: SITE_BASE }, config: { publicBaseUrl: 'https://elsewhere.example' } })
})

t.test('CONTACT_DOMAIN: the pages the server writes name its mailboxes, and a site built for another is reported', async (t) => {
  const mail = buildTestSite(t, { contactDomain: 'ctfhive-mail.example' })
  const quiet: Array<Record<string, unknown>> = []
  const { app: a } = await buildTestApp(t, { env: { ...mail.env, DOCS_SITE_DIR: NO_DOCS }, logLines: quiet })
  t.notOk(quiet.some((l) => String(l.msg).includes('built for another')), 'not when the settings match')
  const created = (await a.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Mail CTF' } })).json()
  await deliver(a, makeEvent('invoice.payment_failed', invoice({ subscription: `sub_mail_${created.tenant_id.slice(0, 8)}`, tenantId: created.tenant_id })))
  const $ = load((await a.inject(created.welcome_url)).body)
  t.equal($('#progress-detail').text(), fillText(PROGRESS_TEXT.payment_failed.detail, { billing: 'billing@ctfhive-mail.example' }), 'the welcome page, without its script')
  const lines: Array<Record<string, unknown>> = []
  await buildTestApp(t, { env: { ...mail.env, DOCS_SITE_DIR: NO_DOCS, CONTACT_DOMAIN: '' }, logLines: lines })
  t.match(lines.find((l) => String(l.msg).includes('built for another CONTACT_DOMAIN')),
    { level: 40, built: { contactDomain: 'ctfhive-mail.example' }, config: { contactDomain: SITE_DOMAIN } })
})

// The plan cards name the hardware of the server LINODE_PLAN gives (marketing/build.ts).
t.test('a site built for another LINODE_PLAN is reported at start', async (t) => {
  const warned = (lines: Array<Record<string, unknown>>) => lines.find((l) => String(l.msg).includes('built for another LINODE_PLAN'))
  const quiet: Array<Record<string, unknown>> = []
  await buildTestApp(t, { env: { ...site.env, DOCS_SITE_DIR: NO_DOCS, LINODE_PLAN: 'per-plan' }, logLines: quiet })
  t.notOk(warned(quiet), 'not when it matches (the site here is built with per-plan, as the test app runs)')
  const lines: Array<Record<string, unknown>> = []
  await buildTestApp(t, { env: { ...site.env, DOCS_SITE_DIR: NO_DOCS, LINODE_PLAN: 'g6-standard-2' }, logLines: lines })
  t.match(warned(lines), { level: 40, built: { linodePlan: 'per-plan' }, config: { linodePlan: 'g6-standard-2' } })
  t.notOk(lines.some((l) => String(l.msg).includes('built for another address')), 'the address is right')
})

t.test('robots.txt and sitemap.xml come from PUBLIC_BASE_URL', async (t) => {
  const a = await app(t)
  const robots = await a.inject('/robots.txt')
  t.equal(robots.statusCode, 200)
  t.match(robots.headers['content-type'], /^text\/plain/)
  const lines = robots.body.split('\n')
  for (const line of ['User-agent: *', 'Allow: /', 'Disallow: /login', 'Disallow: /register', 'Disallow: /welcome', `Sitemap: ${SITE_BASE}/sitemap.xml`]) {
    t.ok(lines.includes(line), line)
  }
  for (const page of ['/login', '/register']) {
    t.equal(load((await a.inject(page)).body)('meta[name="robots"]').attr('content'), 'noindex, nofollow', `${page} carries noindex as well`)
  }
  t.notOk(lines.some((l) => l.includes('/docs/sitemap.xml')), 'no docs sitemap while the docs are not built')

  const sitemap = await a.inject('/sitemap.xml')
  t.match(sitemap.headers['content-type'], /^application\/xml/)
  const $ = load(sitemap.body, { xml: true })
  t.equal($('urlset').attr('xmlns'), 'http://www.sitemaps.org/schemas/sitemap/0.9')
  // The docs are not built here, so /docs/ (a 503) is not listed; tests/web/docs.test.ts lists it once built.
  t.same($('url > loc').map((_i, el) => $(el).text()).get(),
    ['/', '/pricing', '/about', '/contact', '/privacy'].map((p) => `${SITE_BASE}${p}`))
})

t.test('misses: HTML 404 for pages, JSON 404 for the API', async (t) => {
  const a = await app(t)
  const page = await a.inject({ url: '/no/such/page?x=1', headers: { accept: 'text/html' } })
  t.equal(page.statusCode, 404)
  t.match(page.headers['content-type'], /^text\/html/)
  t.equal(load(page.body)('h1').text(), 'Page not found')
  for (const url of ['/billing/nope', '/tenants/', '/healthz/x']) {
    const r = await a.inject(url)
    t.equal(r.statusCode, 404, url)
    t.equal(r.json().error, 'not_found')
  }
  const post = await a.inject({ method: 'POST', url: '/pricing-nope' })
  t.equal(post.json().error, 'not_found', 'non-GET misses are JSON')
})

t.test('doubled slashes and directories: a redirect or the HTML 404, never a 403', async (t) => {
  const a = await app(t)
  // A page's address with doubled slashes leads to the page, in one hop.
  for (const [from, to] of [['//pricing', '/pricing'], ['/pricing//', '/pricing'], ['//', '/'], ['//about.html', '/about'], ['//register?plan=pro', '/register?plan=pro']] as const) {
    for (const method of ['GET', 'HEAD'] as const) {
      const r = await a.inject({ method, url: from, headers: { accept: 'text/html' } })
      t.equal(r.statusCode, 301, `${method} ${from}`)
      t.equal(r.headers.location, to, `${method} ${from}`)
    }
  }
  const tokened = await a.inject(`//welcome?tenant=${'a'.repeat(32)}&token=${'b'.repeat(40)}`)
  t.equal(tokened.headers.location, `/welcome?tenant=${'a'.repeat(32)}&token=${'b'.repeat(40)}`)
  t.equal(tokened.headers['cache-control'], 'no-store', 'a redirect that carries a token is not cached')
  t.equal((await a.inject('//evil.example/x')).headers.location, undefined, 'never a redirect to another host')

  // Anything else @fastify/static refuses is a miss like any other.
  for (const url of ['/assets/', '/assets//', '///x', '/a//b', '//evil.example/x', `/${site.manifest.assets.css.slice(1).replace('/', '//')}`]) {
    for (const method of ['GET', 'HEAD'] as const) {
      const r = await a.inject({ method, url, headers: { accept: 'text/html' } })
      t.equal(r.statusCode, 404, `${method} ${url}`)
      t.match(r.headers['content-type'], /^text\/html/, `${method} ${url}: the HTML 404`)
      t.match(r.headers['content-security-policy'], /default-src 'self'/)
      if (method === 'GET') t.equal(load(r.body)('h1').text(), 'Page not found', url)
    }
  }
  // API paths keep their JSON errors.
  for (const url of ['/billing//checkout', '/tenants//']) {
    const r = await a.inject({ url, headers: { accept: 'text/html' } })
    t.match(r.headers['content-type'], /^application\/json/, `${url} answers JSON`)
    t.equal(r.statusCode, 404, url)
    t.equal(r.json().error, 'not_found', `${url}: the API's own miss`)
  }
  t.equal((await a.inject({ method: 'POST', url: '//pricing' })).json().error, 'not_found', 'non-GET misses stay JSON')
})

t.test('/register fills in errors and the chosen plan for form posts without script', async (t) => {
  const a = await app(t)
  const checked = (body: string) => { const $ = load(body); return $('input[name="plan"][checked]').map((_i, el) => $(el).attr('value')).get() }

  const fresh = await a.inject('/register')
  t.same(checked(fresh.body), ['standard'], 'standard is preselected')
  t.ok(load(fresh.body)('#form-alert').is('[hidden]'), 'no alert on a fresh form')
  t.equal(load(fresh.body)('[autofocus]').length, 0, 'nothing takes the focus on a fresh form')
  t.notMatch(load(fresh.body)('title').text(), /^Error/)
  t.equal(load(fresh.body)('#name').attr('autocomplete'), 'off', 'the event name is not filled in with the buyer\'s organisation')

  t.same(checked((await a.inject('/register?plan=pro')).body), ['pro'])
  t.same(checked((await a.inject('/register?plan=enterprise')).body), ['standard'], 'contact plans are not offered')

  const plan = load((await a.inject('/register?plan=solo&error=plan_requires_contact')).body)
  t.equal(plan('#plan-error').text(), REGISTER_ERRORS.plan_requires_contact!.message)
  t.notOk(plan('#plan-error').is('[hidden]'))
  t.equal(plan('fieldset').attr('aria-invalid'), 'true')
  t.same(plan('input[name="plan"]').map((_i, el) => plan(el).attr('aria-describedby')).get(), ['plan-error', 'plan-error', 'plan-error'], 'each choice names the message')
  // Without script, the page opening says it: the title first, and the focus on the control at fault.
  t.match(plan('title').text(), /^Error: /)
  t.same(plan('[autofocus]').map((_i, el) => plan(el).attr('id')).get(), ['plan-solo'], 'the plan chosen takes the focus')

  const email = load((await a.inject('/register?error=invalid_request&field=email')).body)
  t.equal(email('#email-error').text(), REGISTER_ERRORS.invalid_email!.message)
  t.equal(email('#name').attr('autocomplete'), 'off', 'nor on a form that came back')
  t.equal(email('#email').attr('aria-invalid'), 'true')
  t.same(email('[autofocus]').map((_i, el) => email(el).attr('id')).get(), ['email'], 'the field at fault takes the focus')
  t.match(email('title').text(), /^Error: Start your CTF/)

  const limited = await a.inject('/register?error=rate_limited')
  t.equal(load(limited.body)('#form-alert').text(), REGISTER_ERRORS.rate_limited!.message)
  t.equal(limited.headers['cache-control'], 'no-store')

  const unknown = load((await a.inject('/register?error=%3Cscript%3E')).body)
  t.equal(unknown('#form-alert').text(), REGISTER_ERRORS.internal_error!.message, 'unknown codes get a generic message')
})

t.test('a plain form post goes to checkout or back to the form', async (t) => {
  const a = await app(t)
  const form = { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' }
  const ok = await a.inject({ method: 'POST', url: '/billing/checkout', headers: form, payload: 'plan=solo&name=Spring+CTF&email=' })
  t.equal(ok.statusCode, 303)
  t.match(ok.headers.location, /^\/welcome\?tenant=[0-9a-f]{32}&token=[0-9a-f]{40}$/)
  const welcome = load((await a.inject(String(ok.headers.location))).body)
  t.equal(welcome('#progress').attr('data-key'), 'awaiting_payment')
  t.equal(welcome('#progress-headline').text(), PROGRESS_TEXT.awaiting_payment.headline)
  const upper = String(ok.headers.location).replace(/tenant=([0-9a-f]{32})/, (_, id: string) => `tenant=${id.toUpperCase()}`)
  t.equal(load((await a.inject(upper)).body)('#progress').attr('data-key'), 'awaiting_payment', 'the id copied in upper case is the same order')

  const bad = await a.inject({ method: 'POST', url: '/billing/checkout', headers: form, payload: 'plan=enterprise&name=Big' })
  t.equal(bad.statusCode, 303)
  t.equal(bad.headers.location, '/register?plan=enterprise&error=plan_requires_contact')
  t.equal(load((await a.inject(String(bad.headers.location))).body)('#plan-error').text(), REGISTER_ERRORS.plan_requires_contact!.message)
})

t.test('a refused form post keeps what was typed, in a cookie for the form alone', async (t) => {
  const a = await app(t)
  const form = { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' }
  const refused = await a.inject({ method: 'POST', url: '/billing/checkout', headers: form, payload: `plan=solo&name=${encodeURIComponent('Tom & "Jerry" <CTF>')}&email=tom%40` })
  t.equal(refused.statusCode, 303)
  t.equal(refused.headers.location, '/register?plan=solo&error=invalid_request&field=email', 'no typed value in the URL')
  t.equal(refused.cookies.length, 1)
  const cookie = refused.cookies[0] as Record<string, unknown>
  // __Host-: a tenant's CTF, a sibling host, cannot set one for the parent domain.
  t.match(cookie, { name: '__Host-ctfhive_typed', path: '/', httpOnly: true, sameSite: 'Lax', maxAge: 300 })
  t.equal(cookie.domain, undefined, 'no Domain, as the prefix requires')
  t.equal(cookie.secure, true, 'HTTPS only where the site is served over HTTPS')
  t.same(JSON.parse(String(cookie.value)), { name: 'Tom & "Jerry" <CTF>', email: 'tom@' })

  const back = await a.inject({ url: String(refused.headers.location), headers: { 'sec-fetch-site': 'same-origin' }, cookies: { '__Host-ctfhive_typed': String(cookie.value) } })
  const $ = load(back.body)
  t.equal($('#name').attr('value'), 'Tom & "Jerry" <CTF>', 'the name comes back, as text')
  t.equal($('#email').attr('value'), 'tom@')
  t.equal($('#email-error').text(), REGISTER_ERRORS.invalid_email!.message)
  t.equal($('CTF').length, 0, 'never as markup')
  t.equal(back.headers['cache-control'], 'no-store')
  t.match(back.cookies[0], { name: '__Host-ctfhive_typed', value: '', path: '/' }, 'read once: the form clears it')
  t.ok(new Date(String((back.cookies[0] as Record<string, unknown>).expires)).getTime() < Date.now())

  // A navigation from another host (a tenant's CTF page that planted a cookie) is not refilled.
  for (const site of ['same-site', 'cross-site']) {
    const planted = await a.inject({ url: '/register?plan=pro&error=rate_limited', headers: { 'sec-fetch-site': site }, cookies: { '__Host-ctfhive_typed': JSON.stringify({ name: 'Spring CTF', email: 'attacker@evil.example' }) } })
    const page = load(planted.body)
    t.equal(page('#name').attr('value'), undefined, `${site}: the name is not filled in`)
    t.equal(page('#email').attr('value'), undefined, `${site}: nor the email`)
    t.match(planted.cookies[0], { name: '__Host-ctfhive_typed', value: '' }, `${site}: and the cookie is cleared`)
  }
  const legacy = load((await a.inject({ url: '/register?error=invalid_name', cookies: { ctfhive_typed: JSON.stringify({ name: 'Planted' }) } })).body)
  t.equal(legacy('#name').attr('value'), undefined, 'over HTTPS, a cookie without the prefix (settable by a sibling host) is not read')

  for (const junk of ['not json', '[1,2]', '{"name":7,"email":{"a":1}}', '"x"', 'null']) {
    const page = load((await a.inject({ url: '/register?error=invalid_request&field=email', cookies: { '__Host-ctfhive_typed': junk } })).body)
    t.equal(page('#name').attr('value'), undefined, `${junk}: nothing typed`)
    t.equal(page('#email').attr('value'), undefined)
  }
  const long = load((await a.inject({ url: '/register?error=invalid_name', cookies: { '__Host-ctfhive_typed': JSON.stringify({ name: 'x'.repeat(500) }) } })).body)
  t.equal(long('#name').attr('value'), 'x'.repeat(80), 'never longer than the field allows')
  const plain = load((await a.inject({ url: '/register', cookies: { '__Host-ctfhive_typed': JSON.stringify({ name: 'Old' }) } })).body)
  t.equal(plain('#name').attr('value'), undefined, 'only a form that came back with an error is filled in')

  const nothing = await a.inject({ method: 'POST', url: '/billing/checkout', headers: form, payload: 'plan=gold&name=&email=' })
  t.equal(nothing.headers.location, '/register?plan=gold&error=unknown_plan')
  t.equal(nothing.cookies.length, 0, 'nothing typed, no cookie')
  const json = await a.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Json', email: 'a@b' } })
  t.equal(json.statusCode, 400)
  t.equal(json.cookies.length, 0, 'JSON clients keep their own values')
  const ok = await a.inject({ method: 'POST', url: '/billing/checkout', headers: form, payload: 'plan=solo&name=Fine&email=fine%40example.org' })
  t.equal(ok.statusCode, 303)
  t.equal(ok.cookies.length, 0, 'an accepted form leaves nothing behind')

  const dev = await app(t, { PUBLIC_BASE_URL: 'http://localhost:3000' })
  const http = await dev.inject({ method: 'POST', url: '/billing/checkout', headers: form, payload: 'plan=gold&name=Dev' })
  t.match(http.cookies[0], { name: 'ctfhive_typed', path: '/register' }, 'plain HTTP in development: no prefix (it needs Secure)')
  t.equal((http.cookies[0] as Record<string, unknown>).secure, undefined, 'and not Secure')
  const devBack = load((await dev.inject({ url: String(http.headers.location), cookies: { ctfhive_typed: String((http.cookies[0] as Record<string, unknown>).value) } })).body)
  t.equal(devBack('#name').attr('value'), 'Dev', 'read back there too')
})

t.test('/welcome shows the order as the server knows it', async (t) => {
  const a = await app(t)
  const created = (await a.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'pro', name: 'Winter CTF' } })).json()
  t.equal(created.status, 'checkout_not_configured')
  const before = await a.inject(created.welcome_url)
  t.equal(before.headers['cache-control'], 'no-store')
  t.equal(load(before.body)('#progress').attr('data-key'), 'awaiting_payment')
  // The contact page asks for this number: it shows from the first state on.
  t.equal(load(before.body)('#order-id').text(), created.tenant_id, 'the order number before payment')
  t.notOk(load(before.body)('#order-ref').is('[hidden]'))
  const steps = load(before.body)
  t.same(steps('#progress-steps li').map((_i, el) => steps(el).attr('class')).get(),
    ['step done', 'step current', 'step todo', 'step todo'])

  const delivered = await deliver(a, makeEvent('checkout.session.completed', checkoutSession({ tenantId: created.tenant_id, plan: 'pro' })))
  t.equal(delivered.json().tenant_state, 'active')
  const status = (await a.inject(`/tenants/${created.tenant_id}/status`)).json()
  const $ = load((await a.inject(created.welcome_url)).body)
  t.equal($('#progress').attr('data-key'), 'live')
  t.equal($('#progress-headline').text(), PROGRESS_TEXT.live.headline)
  t.match($('#progress-detail').text(), status.url)
  t.equal($('#live-link a').attr('href'), status.url)
  t.notOk($('#live-link').is('[hidden]'))
  t.equal($('#order-id').text(), created.tenant_id, 'the order number once live')

  for (const url of ['/welcome?tenant=0123456789abcdef0123456789abcdef', '/welcome?tenant=nonsense']) {
    const miss = load((await a.inject(url)).body)
    t.equal(miss('#progress').attr('data-key'), 'not_found', url)
    t.ok(miss('#order-ref').is('[hidden]'), `${url}: no order number for an order we do not know`)
    t.equal(miss('#order-id').text(), '')
  }
  // Without a tenant the link is incomplete: said so, never "looking up" for ever without script.
  for (const url of ['/welcome', '/welcome?foo=1']) {
    const plain = load((await a.inject(url)).body)
    t.equal(plain('#progress').attr('data-key'), 'not_found', url)
    t.equal(plain('#progress-detail').text(), PROGRESS_TEXT.not_found.detail)
    t.ok(plain('#order-ref').is('[hidden]'))
  }
})

t.test("/welcome counts a slow payment by the store's clock, which created_at is by, not this host's", async (t) => {
  const { store } = storeWithOverrides(t)
  // A PostgreSQL store reads the database's clock: here four minutes behind this host's.
  let behind = 4 * 60_000
  store.now = () => Date.now() - behind
  const a = (await buildTestApp(t, { store, env: { ...site.env, DOCS_SITE_DIR: NO_DOCS } })).app
  const created = (await a.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Clock CTF' } })).json()
  const key = async () => load((await a.inject(created.welcome_url)).body)('#progress').attr('data-key')
  t.equal(await key(), 'awaiting_payment', 'an order made a moment ago is not a delayed payment')
  // Four minutes on by the store's clock: now it is.
  behind = 0
  t.equal(await key(), 'payment_delayed', 'the delay is counted by the store clock')
})

t.test('/welcome thanks the buyer only while the order goes ahead, in its heading and title', async (t) => {
  const { app: a, store } = await buildTestApp(t, { env: { ...site.env, DOCS_SITE_DIR: NO_DOCS } })
  const heads = async (url: string) => {
    const $ = load((await a.inject(url)).body)
    const meta = (sel: string) => $(`head meta[${sel}]`).attr('content')
    return { key: $('#progress').attr('data-key'), h1: $('h1').text(), titles: [$('title').text(), meta('property="og:title"'), meta('name="twitter:title"')] }
  }
  const created = (await a.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Heading CTF' } })).json()
  t.same(await heads(created.welcome_url), { key: 'awaiting_payment', h1: 'Thank you for your order', titles: Array(3).fill('Thank you for your order · CTFHive') })
  t.same(await heads('/welcome?tenant=0123456789abcdef0123456789abcdef'), { key: 'not_found', h1: 'Your order', titles: Array(3).fill('Your order · CTFHive') })
  await store.updateTenant(created.tenant_id, { infra: 'failed' })
  t.same(await heads(created.welcome_url), { key: 'failed', h1: 'Your order', titles: Array(3).fill('Your order · CTFHive') })
})

t.test('/welcome says a never-paid order had no CTF to shut down', async (t) => {
  const a = await app(t)
  const created = (await a.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Expired CTF' } })).json()
  const expired = await deliver(a, makeEvent('checkout.session.expired', checkoutSession({ tenantId: created.tenant_id, plan: 'solo', status: 'expired', paymentStatus: 'unpaid' })))
  t.equal(expired.json().tenant_state, 'canceled')
  const $ = load((await a.inject(created.welcome_url)).body)
  t.equal($('#progress').attr('data-key'), 'canceled_unpaid')
  t.equal($('h1').text(), 'Your order')
  t.equal($('#progress-detail').text(), 'The checkout expired before payment. No payment went through for it, so no CTF was set up. You can start a new order at any time.')
  t.notMatch($('#progress-detail').text(), /shut down|deleted/)
})

t.test('/welcome does not call a first payment that failed confirmed, nor a CTF running', async (t) => {
  const a = await app(t)
  const created = (await a.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Unpaid CTF' } })).json()
  const failed = await deliver(a, makeEvent('invoice.payment_failed', invoice({ subscription: `sub_unpaid_${created.tenant_id.slice(0, 8)}`, tenantId: created.tenant_id })))
  t.equal(failed.json().tenant_state, 'past_due')
  const status = (await a.inject(`/tenants/${created.tenant_id}/status`)).json()
  t.same([status.billing, status.infra, status.paid_at], ['past_due', 'none', null], 'never paid, nothing set up')
  const $ = load((await a.inject(created.welcome_url)).body)
  t.equal($('#progress').attr('data-key'), 'payment_failed')
  t.equal($('#progress').attr('data-final'), 'false', 'the page goes on following it')
  t.equal($('#progress-headline').text(), PROGRESS_TEXT.payment_failed.headline)
  t.equal($('#progress-detail').text(), fillText(PROGRESS_TEXT.payment_failed.detail, { billing: 'billing@ctfhive.example' }))
  t.notMatch($('#progress-detail').text(), /keeps running/)
  t.same($('#progress-steps li').map((_i, el) => $(el).text()).get(),
    ['Order received (done)', 'Payment confirmed (in progress)', 'Server set up (not started yet)', 'CTF live (not started yet)'])
  t.ok($('#live-link').is('[hidden]'), 'no link: nothing runs')
  t.equal($('#order-id').text(), created.tenant_id)
})

t.test('/welcome renders the administrator button hidden: it needs the script, the <noscript> link does not', async (t) => {
  const a = await app(t)
  const created = (await a.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Button CTF' } })).json()
  t.equal((await deliver(a, makeEvent('checkout.session.completed', checkoutSession({ tenantId: created.tenant_id, plan: 'solo' })))).json().tenant_state, 'active')
  const $ = load((await a.inject(created.welcome_url)).body)
  t.equal($('#admin-details').attr('hidden'), undefined, 'the section is offered')
  t.equal($('#admin-show').attr('hidden'), 'hidden', 'no button that does nothing without script')
  t.match(load($('#admin-details noscript').html() ?? '')('a').attr('href'), /&show=admin#admin-details$/, 'the link that works without script')
  t.equal($('#admin-credentials').attr('tabindex'), '-1', 'the details can take the focus once shown')
})

t.test('/welcome fills in the settings: the billing address and the grace period', async (t) => {
  const { app: a, store } = await buildTestApp(t, { env: { ...site.env, DOCS_SITE_DIR: NO_DOCS, DEPROVISION_GRACE_HOURS: '48' } })
  const created = (await a.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Autumn CTF' } })).json()
  const base = Math.floor(Date.now() / 1000)
  const sub = `sub_site_${created.tenant_id.slice(0, 8)}`
  await deliver(a, makeEvent('checkout.session.completed', checkoutSession({ tenantId: created.tenant_id, plan: 'solo', subscription: sub }), { created: base }))
  const url = (await a.inject(`/tenants/${created.tenant_id}/status`)).json().url
  const steps = ($: ReturnType<typeof load>) => $('#progress-steps li').map((_i, el) => $(el).attr('class')).get()

  t.equal((await deliver(a, makeEvent('invoice.payment_failed', invoice({ subscription: sub }), { created: base + 5 }))).json().tenant_state, 'past_due')
  const pastDue = load((await a.inject(created.welcome_url)).body)
  t.equal(pastDue('#progress').attr('data-key'), 'past_due')
  t.equal(pastDue('#progress-detail').text(), fillText(PROGRESS_TEXT.past_due.detail, { billing: 'billing@ctfhive.example', grace: '2 days after the cancellation' }))
  t.match(pastDue('#progress-detail').text(), 'write to billing@ctfhive.example from the address you used at checkout')
  t.equal(pastDue('#order-id').text(), created.tenant_id)
  // "Keeps running for now": and the page leads there.
  t.notOk(pastDue('#live-link').is('[hidden]'), 'a past-due CTF is linked to')
  t.equal(pastDue('#live-link a').attr('href'), url)
  t.same(steps(pastDue), ['step done', 'step done', 'step done', 'step done'])

  t.equal((await deliver(a, makeEvent('customer.subscription.deleted', subscription({ id: sub, status: 'canceled' }), { created: base + 10 }))).json().tenant_state, 'canceled')
  const canceledAt = (await a.inject(`/tenants/${created.tenant_id}/status`)).json().canceled_at
  const canceled = load((await a.inject(created.welcome_url)).body)
  t.equal(canceled('#progress').attr('data-key'), 'canceled_running', 'canceled, but its server runs through the grace period')
  t.equal(canceled('#progress-detail').text(), fillText(PROGRESS_TEXT.canceled_running.detail, { reason: 'The subscription was canceled.', until: shutdownText(canceledAt, 48) }),
    'DEPROVISION_GRACE_HOURS as the server has it')
  t.match(canceled('#progress-detail').text(), / stays online until \d+ \w+ \d{4}, \d\d:\d\d UTC; then its server/)
  t.notOk(canceled('#live-link').is('[hidden]'), 'the server /login/go still sends the buyer to is linked to')
  t.equal(canceled('#live-link a').attr('href'), url)
  t.same(steps(canceled), ['step done', 'step done', 'step done', 'step done'], 'its server is not shown as stopped')
  t.equal(canceled('#order-id').text(), created.tenant_id, 'the order number after a cancellation')

  // Torn down after the grace period: no link to a server that is gone.
  await store.updateTenant(created.tenant_id, { infra: 'deprovisioned' })
  const gone = load((await a.inject(created.welcome_url)).body)
  t.equal(gone('#progress').attr('data-key'), 'canceled')
  t.ok(gone('#live-link').is('[hidden]'), 'no link to a torn-down server')
  t.match(gone('#progress-detail').text(), 'Nothing of it is online: a CTF set up for it is shut down and its data deleted 2 days after the cancellation.')
})

t.test('/login sends the buyer to their running CTF, and refuses other hosts', async (t) => {
  const csp = (r: { headers: Record<string, unknown> }): string => String(r.headers['content-security-policy'])
  const { app: a, store } = await buildTestApp(t, { env: { ...site.env, DOCS_SITE_DIR: NO_DOCS } })
  const go = async (address: string) => {
    const res = await a.inject(`/login/go?address=${encodeURIComponent(address)}`)
    t.equal(res.headers['cache-control'], 'no-store')
    return res.headers.location
  }
  const created = (await a.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Spring CTF' } })).json()
  const slug = (await store.getTenant(created.tenant_id))!.slug
  t.equal(await go(slug), `/login?error=unknown_address&address=${slug}`, 'an order never paid for has nothing behind its address')
  // Its checkout expired: canceled, but there never was a CTF to shut down.
  const lapsed = (await a.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Lapsed CTF' } })).json()
  const expired = await deliver(a, makeEvent('checkout.session.expired', checkoutSession({ tenantId: lapsed.tenant_id, subscription: null, status: 'expired', paymentStatus: 'unpaid' })))
  t.equal(expired.json().tenant_state, 'canceled')
  const lapsedSlug = (await store.getTenant(lapsed.tenant_id))!.slug
  t.equal(await go(lapsedSlug), `/login?error=unknown_address&address=${lapsedSlug}`, 'a checkout that expired unpaid is an unknown address, not shut down')

  await deliver(a, makeEvent('checkout.session.completed', checkoutSession({ tenantId: created.tenant_id, plan: 'solo' })))
  t.equal(await go(slug), `https://${slug}.ctfhive.example/login`)
  t.equal(await go(` ${slug.toUpperCase()}.ctfhive.example `), `https://${slug}.ctfhive.example/login`)
  // An IDN BASE_DOMAIN (in its xn-- form) shows in Unicode in the browser: the copied address works.
  const { app: idn } = await buildTestApp(t, { env: { ...site.env, DOCS_SITE_DIR: NO_DOCS, BASE_DOMAIN: 'xn--bcher-kva.example' } })
  const bought = (await idn.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Bücher CTF' } })).json()
  await deliver(idn, makeEvent('checkout.session.completed', checkoutSession({ tenantId: bought.tenant_id, plan: 'solo' })))
  const idnSlug = (await idn.store.getTenant(bought.tenant_id))!.slug
  await idn.store.updateTenant(bought.tenant_id, { infra: 'ready' })
  for (const typed of [`${idnSlug}.bücher.example`, `https://${idnSlug}.BÜCHER.example/`, `${idnSlug}.xn--bcher-kva.example`]) {
    const res = await idn.inject(`/login/go?address=${encodeURIComponent(typed)}`)
    t.equal(res.headers.location, `https://${idnSlug}.xn--bcher-kva.example/login`, typed)
  }
  t.equal(await go(`https://${slug}.ctfhive.example:443/scoreboard?x=1`), `https://${slug}.ctfhive.example/login`)

  // Made under an earlier BASE_DOMAIN: the CTF stays where it was made.
  t.equal((await store.getTenant(created.tenant_id))!.fqdn, `${slug}.ctfhive.example`, 'the address is stored when the tenant is made')
  await store.updateTenant(created.tenant_id, { fqdn: `${slug}.old-hive.example` })
  for (const typed of [slug, `${slug}.old-hive.example`, `https://${slug}.OLD-hive.example/`, `${slug}.ctfhive.example`]) {
    t.equal(await go(typed), `https://${slug}.old-hive.example/login`, `${typed}: to the address it was made with`)
  }
  t.equal(await go(`${slug}.other-hive.example`), `/login?error=invalid_address&address=${slug}.other-hive.example`, 'its label under a domain that is not its own')
  t.equal(await go(`spring-ctf-1a2b3c.old-hive.example`), '/login?error=invalid_address&address=spring-ctf-1a2b3c.old-hive.example', 'an unknown label elsewhere')
  // The browser checks the redirect after the form against form-action: a server started now
  // names the older domain there, on the sign-in page and on its filled variant alike.
  t.match(csp(await a.inject('/login')), /form-action 'self' https:\/\/checkout\.stripe\.com https:\/\/\*\.ctfhive\.example;/, 'this server started before the move')
  const restarted = (await buildTestApp(t, { store, runJobs: false, env: { ...site.env, DOCS_SITE_DIR: NO_DOCS } })).app
  for (const url of ['/login', '/login?error=not_ready&address=x']) {
    t.match(csp(await restarted.inject(url)), /form-action 'self' https:\/\/checkout\.stripe\.com https:\/\/\*\.ctfhive\.example https:\/\/\*\.old-hive\.example;/, url)
  }
  await store.updateTenant(created.tenant_id, { fqdn: null })
  t.equal(await go(slug), `https://${slug}.ctfhive.example/login`, 'a row an older release wrote: where that release put it')
  await store.updateTenant(created.tenant_id, { fqdn: `${slug}.ctfhive.example` })

  await store.updateTenant(created.tenant_id, { infra: 'provisioning' })
  t.equal(await go(slug), `/login?error=not_ready&address=${slug}`)
  await store.updateTenant(created.tenant_id, { infra: 'failed' })
  t.equal(await go(slug), `/login?error=not_ready&address=${slug}`)
  await store.updateTenant(created.tenant_id, { billing: 'canceled', infra: 'ready' })
  t.equal(await go(slug), `https://${slug}.ctfhive.example/login`, 'a canceled CTF stays reachable through its grace period')
  await store.updateTenant(created.tenant_id, { infra: 'deprovisioned' })
  t.equal(await go(slug), `/login?error=shut_down&address=${slug}`)

  t.equal(await go('spring-ctf-1a2b3c'), '/login?error=unknown_address&address=spring-ctf-1a2b3c', 'a well-formed address nobody holds')
  for (const evil of ['evil.com', 'https://evil.com/', 'a.b.ctfhive.example', 'ctfhive.example', '', '-x', 'x'.repeat(64), 'spring.ctfhive.example.evil.com']) {
    t.equal(await go(evil), `/login?error=invalid_address&address=${encodeURIComponent(evil)}`, JSON.stringify(evil))
  }
  t.equal(await go('x'.repeat(5000)), `/login?error=invalid_address&address=${'x'.repeat(253)}`, 'the address sent back is cut to the field\'s length')
  t.equal(await go(`${'a'.repeat(252)}😀`), `/login?error=invalid_address&address=${'a'.repeat(252)}`, 'a cut through a character drops its half, not a 500')
  const emoji = load((await a.inject(`/login?error=invalid_address&address=${'a'.repeat(252)}${encodeURIComponent('😀')}`)).body)
  t.equal(emoji('#address').attr('value'), 'a'.repeat(252), 'the refilled field too')

  for (const code of Object.keys(LOGIN_ERRORS)) {
    const $ = load((await a.inject(`/login?error=${code}&address=${encodeURIComponent('"><b>x')}`)).body)
    t.equal($('#address-error').text(), LOGIN_ERRORS[code], code)
    t.equal($('#address').attr('aria-invalid'), 'true')
    t.ok($('#address').is('[autofocus]'), 'the address takes the focus')
    t.match($('title').text(), /^Error: /)
    t.equal($('#address').attr('value'), '"><b>x', 'what was typed comes back, as text')
    t.equal($('b').length, 0, 'and never as markup')
  }
  t.equal(load((await a.inject('/login?error=not_ready')).body)('#address').attr('value'), undefined, 'no address, no value')
  const unknown = load((await a.inject('/login?error=other&address=x')).body)
  t.ok(unknown('#address-error').is('[hidden]'), 'unknown codes show nothing')
  t.equal(unknown('#address').attr('value'), undefined)
  t.equal(load((await a.inject('/login')).body)('a[href^="mailto:billing@"]').attr('href'), 'mailto:billing@ctfhive.example', 'a billing contact')
})

t.test('a store that cannot list the tenant domains at start leaves the sign-in form to BASE_DOMAIN, and says so', async (t) => {
  const { store } = storeWithOverrides(t)
  store.tenantDomains = async () => { throw new Error('database is locked') }
  const logLines: Array<Record<string, unknown>> = []
  const { app: a } = await buildTestApp(t, { store, runJobs: false, logLines, env: { ...site.env, DOCS_SITE_DIR: NO_DOCS } })
  t.match(logLines.find((l) => l.level === 50), { msg: 'could not list the domains of tenant addresses; the sign-in form leads only to those under BASE_DOMAIN', err: { message: 'database is locked' } })
  const r = await a.inject('/login')
  t.equal(r.statusCode, 200)
  t.match(r.headers['content-security-policy'], /form-action 'self' https:\/\/checkout\.stripe\.com https:\/\/\*\.ctfhive\.example;/)
})

t.test('without a build the app boots and says what to run', async (t) => {
  const a = (await buildTestApp(t, { env: { MARKETING_DIST_DIR: '/nonexistent/ctfhive-dist', DOCS_SITE_DIR: NO_DOCS } })).app
  const json = await a.inject('/pricing')
  t.equal(json.statusCode, 503)
  t.equal(json.json().error, 'site_not_built')
  t.match(json.json().message, /npm run build/)
  const html = await a.inject({ url: '/', headers: { accept: 'text/html' } })
  t.equal(html.statusCode, 503)
  t.match(html.headers['content-type'], /^text\/html/)
  t.match(load(html.body)('p').text(), /npm run build/)
  const miss = await a.inject('/nothing-here')
  t.equal(miss.statusCode, 404)
  t.equal(miss.json().error, 'not_found')
  t.equal((await a.inject('/robots.txt')).statusCode, 200)
  t.equal((await a.inject('/healthz')).statusCode, 200)
})
