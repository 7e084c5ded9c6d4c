// The marketing build: every page and asset, fingerprints that match content, precompressed
// twins that decompress to the original, real images, prices from the catalogue, and the
// --if-missing logic that decides when to rebuild.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import t from 'tap'
import { load } from 'cheerio'
import { PAID_PLANS, PLANS, SERVER_FEATURE, formatPrice, planServerType, serverHardware } from '../../api/plans.ts'
import { serverSpecFor } from '../../api/provisioning/provision.ts'
import { loadConfig } from '../../api/config.ts'
import { makeTenant } from '../store/contract.ts'
import { CHECKOUT_RETURN_FILE, MANIFEST_FILE, NOT_FOUND_FILE, SITE_PAGES } from '../../api/web/site-pages.ts'
import { PAYMENT_DELAYED_MS, REGISTER_ERRORS, PROGRESS_TEXT } from '../../api/web/buyer-text.ts'
import { buildReason, buildSite, main, minifyCss, minifyJs, readManifest, siteScript, sourceHash } from '../../marketing/build.ts'

const OPTS = { publicBaseUrl: 'https://ctfhive.example', baseDomain: 'ctfhive.example', graceHours: 48 }

function tempDir (tt: { teardown (fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-build-'))
  tt.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function pngSize (buf: Buffer): { width: number, height: number } {
  t.equal(buf.subarray(1, 4).toString('latin1'), 'PNG', 'a PNG signature')
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) }
}

t.test('the build writes every page, asset and image', async (t) => {
  const parent = tempDir(t)
  const out = join(parent, 'dist')
  const manifest = buildSite({ outDir: out, ...OPTS })
  t.same(manifest.pages, Object.fromEntries([...SITE_PAGES.map((p) => [p.path, p.file]), ['/404', NOT_FOUND_FILE], ['/billing/success', CHECKOUT_RETURN_FILE]]))
  t.same(readManifest(out), manifest)
  for (const file of manifest.files) t.ok(existsSync(join(out, file)), file)
  t.same(readdirSync(parent), ['dist'], 'no temporary directory is left')

  for (const [kind, url] of Object.entries(manifest.assets)) {
    const body = readFileSync(join(out, url))
    const hash = createHash('sha256').update(body).digest('hex').slice(0, 10)
    t.equal(url, `/assets/site.${hash}.${kind}`, `${kind} is named by its content`)
  }

  const text = manifest.files.filter((f) => /\.(html|css|js)$/.test(f))
  t.ok(text.length >= SITE_PAGES.length + 3)
  for (const file of text) {
    const plain = readFileSync(join(out, file))
    t.same(brotliDecompressSync(readFileSync(join(out, `${file}.br`))), plain, `${file}.br`)
    t.same(gunzipSync(readFileSync(join(out, `${file}.gz`))), plain, `${file}.gz`)
  }

  t.same(pngSize(readFileSync(join(out, 'og-image.png'))), { width: 1200, height: 630 }, 'og-image is 1200×630')
  t.same(pngSize(readFileSync(join(out, 'apple-touch-icon.png'))), { width: 180, height: 180 })
  const ico = readFileSync(join(out, 'favicon.ico'))
  t.same([ico.readUInt16LE(0), ico.readUInt16LE(2)], [0, 1], 'an ICO header')
  const sizes: number[] = []
  for (let i = 0; i < ico.readUInt16LE(4); i++) {
    const entry = 6 + 16 * i
    const size = ico.readUInt32LE(entry + 8)
    const offset = ico.readUInt32LE(entry + 12)
    const img = pngSize(ico.subarray(offset, offset + size))
    t.equal(img.width, ico.readUInt8(entry), 'the entry says the size of its image')
    sizes.push(img.width)
  }
  t.same(sizes, [16, 32, 48])
})

t.test('pages follow the catalogue and the settings', async (t) => {
  const out = join(tempDir(t), 'dist')
  buildSite({ outDir: out, ...OPTS })
  const $ = load(readFileSync(join(out, 'pricing.html'), 'utf8'))
  for (const plan of PLANS) {
    const card = $(`#plan-card-${plan.slug}`)
    t.equal(card.find('h2').text(), plan.name)
    if (plan.amount === null) {
      t.equal(card.find('a.button').attr('href'), '/contact#sales', 'contact-only plans link to sales')
    } else {
      t.equal(card.find('.amount').text(), formatPrice(plan.amount), `${plan.slug} price`)
      t.equal(card.find('a.button').attr('href'), `/register?plan=${plan.slug}`, `${plan.slug} buy button`)
    }
    t.equal(card.find('.ticks li').length, plan.features.length)
  }
  t.match($('#plan-card-solo').text(), 'your-event.ctfhive.example', 'addresses follow BASE_DOMAIN')
  t.match($('.faq').text(), 'deleted 2 days later', 'the grace period follows DEPROVISION_GRACE_HOURS')

  const register = load(readFileSync(join(out, 'register.html'), 'utf8'))
  t.same(register('input[name="plan"]').map((_i, el) => register(el).attr('value')).get(), ['solo', 'standard', 'pro'])
  t.equal(register('form').attr('action'), '/billing/checkout')
  t.equal(register('form').attr('method'), 'post')
  for (const id of ['name', 'email']) t.equal(register(`label[for="${id}"]`).length, 1, `${id} has a label`)
  // The event's name is not the buyer's organisation, which the browser would fill in (WCAG 1.3.5).
  t.equal(register('#name').attr('autocomplete'), 'off', 'the event name is not autofilled')
  t.equal(register('#email').attr('autocomplete'), 'email')
  // Where the script says the checkout is starting: present and empty, so that text put in is announced.
  const status = register('form #register-status')
  t.equal(status.attr('role'), 'status', 'the form has a status region')
  t.equal(status.text(), '')
  t.equal(status.attr('hidden'), undefined, 'not hidden: a region shown and filled at once may go unannounced')

  const js = readFileSync(join(out, readManifest(out)!.assets.js), 'utf8')
  t.notMatch(js, /BUYER_TEXT/, 'the marker is replaced')
  t.match(js, REGISTER_ERRORS.plan_requires_contact!.message, 'the script says what the server says')
  t.match(js, PROGRESS_TEXT.setting_up.headline)
  t.match(js, '"grace":"2 days after the cancellation"', 'the welcome texts follow DEPROVISION_GRACE_HOURS')
  t.match(js, '"billing":"billing@ctfhive.example"', 'and BASE_DOMAIN')
  t.match(js, '"graceHours":48', 'the hours too, to say when a canceled CTF goes')
  t.match(js, `var PAYMENT_DELAYED_MS = ${PAYMENT_DELAYED_MS}`, 'the script calls a payment slow when the server does')
})

// A site on its own domain (SITE_HOST) has its mailboxes there too, not on the CTFs' domain.
t.test('CONTACT_DOMAIN names every mailbox the site gives, in the pages, the JSON-LD and the script', async (t) => {
  const out = join(tempDir(t), 'dist')
  const manifest = buildSite({ outDir: out, ...OPTS, contactDomain: 'ctfhive-mail.example' })
  t.equal(manifest.contactDomain, 'ctfhive-mail.example', 'the manifest records it')
  const page = (file: string) => readFileSync(join(out, file), 'utf8')
  const contact = load(page('contact.html'))
  t.same(contact('main a[href^="mailto:"]').map((_i, el) => contact(el).attr('href')).get(),
    ['mailto:sales@ctfhive-mail.example', 'mailto:support@ctfhive-mail.example', 'mailto:billing@ctfhive-mail.example'])
  const graph = JSON.parse(contact('script[type="application/ld+json"]').text())['@graph'] as Array<Record<string, any>>
  const points = graph.find((n) => n['@type'] === 'Organization')!.contactPoint as Array<{ email: string }>
  t.same(points.map((p) => p.email), ['sales@ctfhive-mail.example', 'support@ctfhive-mail.example', 'billing@ctfhive-mail.example'])
  for (const file of ['pricing.html', 'login.html']) {
    t.match(page(file), 'mailto:billing@ctfhive-mail.example', `${file} names the billing mailbox there`)
    t.notMatch(page(file), /@ctfhive\.example/, `${file} names no mailbox on BASE_DOMAIN`)
  }
  t.match(readFileSync(join(out, manifest.assets.js), 'utf8'), '"billing":"billing@ctfhive-mail.example"', 'the welcome texts too')
  t.match(load(page('pricing.html'))('#plan-card-solo').text(), 'your-event.ctfhive.example', 'addresses stay under BASE_DOMAIN')
})

// Claims the pages once made that were not true; none may come back.
t.test('the pages promise only what the service does', async (t) => {
  const out = join(tempDir(t), 'dist')
  buildSite({ outDir: out, ...OPTS })
  const page = (file: string) => load(readFileSync(join(out, file), 'utf8'))

  // CTFd's image is pinned; only the host's security updates install by themselves.
  const home = page('index.html')
  t.notMatch(home('main').text(), /kept up to date/i, 'CTFd is not updated for the buyer')
  t.match(home('main').text(), 'on a server that installs security updates every day')

  // A plan change goes through billing; with one server type for every plan (the default)
  // it resizes nothing, so the page does not say it does (per-plan: see the hardware test).
  const pricing = page('pricing.html')
  const faq = pricing('.faq').text()
  t.notMatch(faq, /move to another plan|change plans? (at )?any ?time|switch plans?/i, 'no self-service plan moves')
  t.equal(pricing('.faq a[href="mailto:billing@ctfhive.example"]').length, 1, 'plan changes go through billing')
  t.notMatch(faq, /resiz|new plan's size/i, 'no resize is promised when every plan has the same server')

  // Contact is by email only.
  t.notMatch(pricing('main').text(), /chat/i, 'no chat support is offered')
  t.match(pricing('#plan-card-pro').text(), 'Priority email support, with faster answers while your event runs')
  // Custom domains and single sign-on are work our team does by hand, not a product feature.
  t.match(pricing('#plan-card-enterprise > p:not(.price)').text(), /^Set up with our team for your event/, 'Enterprise is arranged with our team')

  // Nothing about the plan or billing can be done on the site itself.
  const login = page('login.html')
  const description = String(login('meta[name="description"]').attr('content'))
  t.notMatch(description, /from here/i, 'the sign-in page offers no billing self-service')
  t.match(description, 'email our billing team')

  // The contact page asks for the order number the welcome page shows (tests/web/site.test.ts).
  const contact = page('contact.html')
  t.match(contact('#support').text(), 'the order number from your welcome page')
  // Faster answers while the event runs are Pro's (its card says so), not everyone's.
  t.notMatch(contact('main').text(), /faster/i, 'the contact page promises every buyer the same answer time')
  t.match(contact('.lead').text(), 'within one business day')

  // A long address breaks inside a narrow plan card rather than spilling out of it.
  const css = readFileSync(join(out, readManifest(out)!.assets.css), 'utf8')
  t.match(css, /\.ticks li\{[^}]*overflow-wrap: anywhere/, 'the card lines may break anywhere')
})

// The hardware a card names is the server the buyer gets under LINODE_PLAN (serverSpecFor).
t.test('the plan cards name the server LINODE_PLAN gives each plan', async (t) => {
  const built = (linodePlan?: string) => {
    const out = join(tempDir(t), 'dist')
    buildSite({ outDir: out, ...OPTS, ...(linodePlan === undefined ? {} : { linodePlan }) })
    const html = (file: string) => readFileSync(join(out, file), 'utf8')
    return { out, html, pricing: load(html('pricing.html')) }
  }
  const hardwareLines = ($: ReturnType<typeof load>, slug: string) =>
    $(`#plan-card-${slug} .ticks li`).map((_i, el) => $(el).text()).get().filter((l) => /CPU|RAM/.test(l))

  await t.test('unset: DESIGN §4 default, one g6-standard-2 for every plan', async (t) => {
    const { out, html, pricing } = built()
    for (const plan of PAID_PLANS) t.same(hardwareLines(pricing, plan.slug), ['2 shared CPUs, 4 GB RAM'], `${plan.slug} names the server it gets`)
    t.equal(readManifest(out)!.linodePlan, 'g6-standard-2', 'the manifest says which setting it was built for')
    // Nowhere else (JSON-LD, descriptions, other pages) names per-plan hardware.
    for (const file of readManifest(out)!.files.filter((f) => f.endsWith('.html'))) {
      t.notMatch(html(file), /1 shared CPU,|4 shared CPUs|[28] GB RAM/, `${file} promises no other server`)
    }
    t.equal(pricing('#plan-card-pro .ticks li').length, PAID_PLANS.find((p) => p.slug === 'pro')!.features.length)
  })

  await t.test('per-plan: the own type of each plan, resized on a plan change', async (t) => {
    const { pricing } = built('per-plan')
    t.same(hardwareLines(pricing, 'solo'), ['1 shared CPU, 2 GB RAM'])
    t.same(hardwareLines(pricing, 'standard'), ['2 shared CPUs, 4 GB RAM'])
    t.same(hardwareLines(pricing, 'pro'), ['4 shared CPUs, 8 GB RAM'])
    t.match(pricing('.faq').text(), 'your server is moved to the new plan\'s size', 'here a plan change does resize')
    // The line sits where the catalogue puts it, after the address.
    const pro = pricing('#plan-card-pro .ticks li').map((_i, el) => pricing(el).text()).get()
    t.equal(pro[PAID_PLANS.find((p) => p.slug === 'pro')!.features.indexOf(SERVER_FEATURE)], '4 shared CPUs, 8 GB RAM')
  })

  await t.test('a type without known figures: no hardware line rather than a wrong one', async (t) => {
    const { pricing } = built('g6-bogus-9')
    for (const plan of PAID_PLANS) {
      t.same(hardwareLines(pricing, plan.slug), [], `${plan.slug} names no hardware`)
      t.equal(pricing(`#plan-card-${plan.slug} .ticks li`).length, plan.features.length - 1, 'and leaves no empty line')
    }
    t.notMatch(pricing('main').html()!, SERVER_FEATURE.replace(/[<>]/g, (c) => c === '<' ? '&lt;' : '&gt;'), 'the marker never shows')
  })

  t.test('the rule is provisioning\'s', async (t) => {
    for (const linodePlan of ['g6-standard-2', 'per-plan', 'g6-dedicated-4']) {
      const config = loadConfig({ LINODE_PLAN: linodePlan })
      for (const slug of [...PLANS.map((p) => p.slug), 'no-such-plan']) {
        t.equal(planServerType(slug, config.linode.plan), serverSpecFor(makeTenant({ plan: slug }), config).serverType, `${slug} under ${linodePlan}`)
      }
    }
  })

  t.test('hardware texts', async (t) => {
    t.equal(serverHardware('g6-nanode-1'), '1 shared CPU, 1 GB RAM')
    t.equal(serverHardware('g6-standard-1'), '1 shared CPU, 2 GB RAM')
    t.equal(serverHardware('g6-standard-2'), '2 shared CPUs, 4 GB RAM')
    t.equal(serverHardware('g6-standard-4'), '4 shared CPUs, 8 GB RAM')
    for (const type of ['g6-bogus-9', 'constructor', 'toString', '']) t.equal(serverHardware(type), undefined, `${type || 'empty'}: none`)
  })
})

t.test('minifiers keep meaning', async (t) => {
  t.equal(minifyCss('/* c */\n.a :focus-visible {\n  color: red;\n  margin: 0 auto;\n}\n.b{x:y}'), '.a :focus-visible{color: red;margin: 0 auto}.b{x:y}\n',
    'descendant combinators survive')
  t.equal(minifyJs("  // comment\n  var a = 'x' // trailing\n\n  f()\n"), "var a = 'x' // trailing\nf()\n")
  t.match(siteScript(OPTS), /^'use strict'/)
})

t.test('--if-missing rebuilds only when needed', async (t) => {
  const out = join(tempDir(t), 'dist')
  const opts = { outDir: out, ...OPTS }
  t.equal(buildReason(opts), 'not built yet')
  buildSite(opts)
  t.equal(buildReason(opts), null)
  t.match(String(buildReason({ ...opts, publicBaseUrl: 'https://elsewhere.example' })), /^built for https:\/\/ctfhive\.example/)
  t.equal(buildReason({ ...opts, graceHours: 24 }), 'sources or settings changed')
  // The plan cards' hardware follows LINODE_PLAN: a build for another value is made again.
  t.equal(buildReason({ ...opts, linodePlan: 'g6-standard-2' }), null, 'the default is what an unset LINODE_PLAN builds')
  t.equal(buildReason({ ...opts, linodePlan: 'per-plan' }), 'sources or settings changed', 'LINODE_PLAN is a setting of the build')
  t.not(sourceHash(OPTS), sourceHash({ ...OPTS, linodePlan: 'per-plan' }))
  t.not(sourceHash({ ...OPTS, linodePlan: 'per-plan' }), sourceHash({ ...OPTS, linodePlan: 'g6-standard-4' }))
  t.not(sourceHash(OPTS), sourceHash({ ...OPTS, baseDomain: 'other.example' }))
  t.equal(buildReason({ ...opts, contactDomain: 'ctfhive.example' }), null, 'CONTACT_DOMAIN unset is BASE_DOMAIN')
  t.equal(buildReason({ ...opts, contactDomain: 'mail.example' }), 'sources or settings changed', 'CONTACT_DOMAIN is a setting of the build')
  await t.test('a new year makes a new build (the footer says the year)', async (t) => {
    const thisYear = sourceHash(OPTS)
    t.capture(Date.prototype, 'getUTCFullYear', () => 2099)
    t.not(sourceHash(OPTS), thisYear)
    t.equal(buildReason(opts), 'sources or settings changed')
  })
  rmSync(join(out, 'about.html'))
  t.equal(buildReason(opts), 'about.html is missing')

  const env = { PUBLIC_BASE_URL: OPTS.publicBaseUrl, BASE_DOMAIN: OPTS.baseDomain, DEPROVISION_GRACE_HOURS: '48' }
  const lines: string[] = []
  const io = { stdout: { write: (s: string) => lines.push(s) }, stderr: { write: (s: string) => lines.push(s) } }
  t.equal(main(['--if-missing', '--out', out], env, io), 0)
  t.match(lines.splice(0).join(''), /built 10 pages .* for https:\/\/ctfhive\.example \(about\.html is missing;/)
  t.ok(existsSync(join(out, 'about.html')))
  const builtAt = readManifest(out)!.builtAt
  t.equal(main(['--if-missing', '--out', out], env, io), 0)
  t.match(lines.splice(0).join(''), /is up to date/)
  t.equal(readManifest(out)!.builtAt, builtAt, 'nothing was rebuilt')
  t.equal(main(['--out', out], env, io), 0, 'without --if-missing it always builds')
  t.match(lines.splice(0).join(''), /rebuild requested/)
  // npm start (--if-missing) reads LINODE_PLAN as the server does, and rebuilds when it changed.
  t.equal(main(['--if-missing', '--out', out], { ...env, LINODE_PLAN: 'per-plan' }, io), 0)
  t.match(lines.splice(0).join(''), /built 10 pages .*\(sources or settings changed;/)
  t.equal(readManifest(out)!.linodePlan, 'per-plan')
  t.match(readFileSync(join(out, 'pricing.html'), 'utf8'), '4 shared CPUs, 8 GB RAM', 'Pro names its own server again')
  t.equal(main(['--if-missing', '--out', out], { ...env, LINODE_PLAN: 'per-plan' }, io), 0)
  t.match(lines.splice(0).join(''), /is up to date/)
  t.equal(main([], { ...env, LINODE_PLAN: 'Per Plan' }, io), 78, 'a bad LINODE_PLAN: 78, as the server')
  t.match(lines.splice(0).join(''), /^marketing: configuration error: LINODE_PLAN: /)

  t.equal(main(['--nope'], env, io), 2)
  t.match(lines.splice(0).join(''), /^marketing: .*\nUsage: node marketing\/build\.ts/)
  // npm start runs this first: a bad setting must end it with the server's status, 78 (EX_CONFIG).
  t.equal(main([], { ...env, PUBLIC_BASE_URL: 'ftp://x' }, io), 78, 'a bad setting: 78, as the server')
  t.equal(lines.splice(0).join(''), 'marketing: configuration error: PUBLIC_BASE_URL: must be an http(s) URL, got "ftp://x"\n', 'one line naming the variable')

  // MARKETING_DIST_DIR points the build where the server will look.
  const viaEnv = join(tempDir(t), 'elsewhere')
  t.equal(main([], { ...env, MARKETING_DIST_DIR: viaEnv }, io), 0)
  t.ok(existsSync(join(viaEnv, MANIFEST_FILE)))
})

t.test('a failed build leaves the previous one in place', async (t) => {
  const parent = tempDir(t)
  const out = join(parent, 'dist')
  buildSite({ outDir: out, ...OPTS })
  const before = readFileSync(join(out, 'index.html'), 'utf8')
  const broken = await t.mockImport<typeof import('../../marketing/build.ts')>('../../marketing/build.ts', {
    '../../marketing/pages.ts': { sitePages: () => { throw new Error('a page failed to render') } }
  })
  t.throws(() => broken.buildSite({ outDir: out, ...OPTS, publicBaseUrl: 'https://new.example' }), /a page failed to render/)
  t.equal(readFileSync(join(out, 'index.html'), 'utf8'), before, 'the old build is untouched')
  t.same(readdirSync(parent), ['dist'], 'the half-made build is removed')
})
