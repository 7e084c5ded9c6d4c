// The privacy notice: served and indexable, in the sitemap, linked from every page's footer and
// from the sign-up form's email hint, and saying what the code does (the numbers and names it
// gives are read here from the code that decides them).
import { join } from 'node:path'
import t from 'tap'
import { load } from 'cheerio'
import { SITE_PAGES } from '../../api/web/site-pages.ts'
import { typedCookie } from '../../api/web/typed-values.ts'
import { storablePayload } from '../../api/billing/events.ts'
import { DEFAULT_EVENT_DAYS, DEFAULT_ORDER_DAYS } from '../../api/tenants/retention.ts'
import { buildTestApp } from '../helpers/build-app.ts'
import { SITE_BASE, buildTestSite } from '../helpers/site-build.ts'

const site = buildTestSite(t)
const app = async (tt: Parameters<typeof buildTestApp>[0], built = site) =>
  (await buildTestApp(tt, { env: { ...built.env, DOCS_SITE_DIR: join(built.dir, 'no-docs-here') } })).app

/** The text of an element with its whitespace collapsed, as a reader sees it. */
function text (html: string, selector: string): string {
  return load(html)(selector).text().replace(/\s+/g, ' ')
}

t.test('/privacy is a public, indexable page in the sitemap', async (t) => {
  const a = await app(t)
  const r = await a.inject('/privacy')
  t.equal(r.statusCode, 200)
  const $ = load(r.body)
  t.equal($('head title').text(), 'Privacy · CTFHive')
  t.equal($('h1').text(), 'Privacy')
  t.equal($('link[rel="canonical"]').attr('href'), `${SITE_BASE}/privacy`)
  t.equal($('meta[property="og:url"]').attr('content'), `${SITE_BASE}/privacy`)
  t.equal($('meta[name="twitter:title"]').attr('content'), 'Privacy · CTFHive')
  t.equal($('meta[name="robots"]').length, 0, 'open to search engines')
  t.ok(SITE_PAGES.some((p) => p.path === '/privacy' && p.indexable))

  const sitemap = load((await a.inject('/sitemap.xml')).body, { xml: true })
  t.ok(sitemap('url > loc').map((_i, el) => sitemap(el).text()).get().includes(`${SITE_BASE}/privacy`), 'listed in the sitemap')
  t.notMatch((await a.inject('/robots.txt')).body, /Disallow: \/privacy/)
  t.equal((await a.inject('/privacy.html')).headers.location, '/privacy', 'one URL for it')
})

t.test('every page links to it from its footer, and the sign-up form from its email hint', async (t) => {
  const a = await app(t)
  for (const path of [...SITE_PAGES.map((p) => p.path), '/no-such-page']) {
    const $ = load((await a.inject(path)).body)
    t.equal($('footer nav a[href="/privacy"]').text(), 'Privacy', `${path}: the footer links to it`)
  }
  const register = load((await a.inject('/register')).body)
  t.equal(register('#email-hint a[href="/privacy"]').length, 1, 'the email hint links to it')
  t.match(register('#email').attr('aria-describedby'), 'email-hint')
  // The page the server fills in after a refused post keeps it too.
  const filled = load((await a.inject('/register?plan=pro&error=invalid_request&field=email')).body)
  t.equal(filled('#email-hint a[href="/privacy"]').length, 1, 'and so does the form the server fills in')
})

t.test('it says what the code does', async (t) => {
  const a = await app(t)
  const html = (await a.inject('/privacy')).body
  const main = text(html, 'main')

  // What a stored Stripe event keeps (storablePayload), and what the page says of it.
  const event = {
    id: 'evt_1',
    type: 'checkout.session.completed',
    created: 1,
    data: { object: { customer_email: 'a@example.com', customer_details: { email: 'a@example.com', name: 'Ada', phone: '+1 555', address: { city: 'Paris' } }, shipping_details: { name: 'Ada' } } }
  }
  const stored = JSON.parse(storablePayload(event, JSON.stringify(event))).data.object
  t.same(stored.customer_details, { email: 'a@example.com' }, 'the stored copy keeps the email only')
  t.equal(stored.shipping_details, null)
  t.match(main, 'Our copy keeps your email, but not your name, phone or postal address, tax ids, shipping details or custom fields.')

  // Retention: the defaults of ctfhive prune, the grace period the site was built with (72 hours).
  t.match(text(html, '#how-long + ul'), `we remove their content after ${DEFAULT_EVENT_DAYS} days`)
  t.match(text(html, '#how-long + ul'), `we remove it, with its event name and email, after ${DEFAULT_ORDER_DAYS} days`)
  t.match(text(html, '#how-long + ul'), 'they are deleted 3 days later')
  t.match(main, 'until you ask us to erase it')

  t.match(main, 'We never see your card number.')
  t.match(text(html, '#processors + ul'), /Stripe.*Linode \(Akamai\) hosts your CTF's server and the DNS record/)
  t.match(main, 'not your event\'s name or your email')
  t.match(main, 'your IP address')
  t.match(main, 'Your email never appears in them')

  // The one cookie: its name under this https origin, and its lifetime.
  const cookie = typedCookie(SITE_BASE)
  t.equal(cookie.options.maxAge, 300)
  t.equal(cookie.options.httpOnly, true)
  t.equal(load(html)('#cookies + p code').text(), cookie.name)
  t.match(text(html, '#cookies + p'), 'It lasts five minutes, cannot be read by scripts')
  t.match(main, 'No analytics, no advertising, and nothing loaded from other sites.')

  // Requests go to the site's own support mailbox.
  t.equal(load(html)('#your-rights + p a[href^="mailto:"]').attr('href'), 'mailto:support@ctfhive.example')
})

t.test('the page follows the settings it was built with', async (t) => {
  const other = buildTestSite(t, { publicBaseUrl: 'http://localhost:3000', contactDomain: 'mail.example' })
  const a = await app(t, other)
  const $ = load((await a.inject('/privacy')).body)
  t.equal($('#cookies + p code').text(), typedCookie('http://localhost:3000').name, 'the plain-HTTP cookie name')
  t.equal($('#your-rights + p a[href^="mailto:"]').attr('href'), 'mailto:support@mail.example', 'CONTACT_DOMAIN')
})
