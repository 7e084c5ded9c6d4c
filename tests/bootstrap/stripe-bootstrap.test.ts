import t, { type Test } from 'tap'
import { main, BOOTSTRAP_TIMEOUT_MS, ENV_HEADER, webhookUrlProblem, type BootstrapOptions } from '../../bootstrap/stripe-bootstrap.ts'
import { SUPPORTED_EVENTS } from '../../api/billing/events.ts'
import { StripeClient } from '../../api/billing/stripe-client.ts'
import { PAID_PLANS, type Plan } from '../../api/plans.ts'
import { startFakeStripe, type FakeStripe } from '../helpers/fake-stripe.ts'

const KEY = 'sk_test_bootstrapKey0123456789'
const BASE = 'https://ctf.example.test'

interface Run { code: number, stdout: string, stderr: string }

async function run (argv: string[], env: Record<string, string | undefined>, opts: BootstrapOptions = {}): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const io = { stdout: { write: (s: string) => { stdout += s } }, stderr: { write: (s: string) => { stderr += s } } }
  const code = await main(argv, env, io, { client: { maxRetries: 0 }, ...opts })
  return { code, stdout, stderr }
}

function envFor (fake: FakeStripe, extra: Record<string, string> = {}): Record<string, string> {
  return { STRIPE_SECRET_KEY: KEY, STRIPE_API_BASE: fake.url, PUBLIC_BASE_URL: BASE, ...extra }
}

/** The env block as a map; fails when stdout holds anything else. */
function envBlock (t: Test, stdout: string): Record<string, string> {
  const lines = stdout.split('\n')
  t.equal(lines[0], ENV_HEADER, 'the block starts with its header')
  t.equal(lines.at(-1), '', 'ends with a newline')
  const values: Record<string, string> = {}
  for (const line of lines.slice(1, -1)) {
    const m = /^(STRIPE_[A-Z_]+)=(\S+)$/.exec(line)
    t.ok(m, `env line: ${line}`)
    if (m !== null) values[m[1]!] = m[2]!
  }
  return values
}

const posts = (fake: FakeStripe) => fake.requestsTo('POST /v1/*')

t.test('first run creates everything; the second reuses it', async (t) => {
  const fake = await startFakeStripe(t)
  const first = await run([], envFor(fake))
  t.equal(first.code, 0, first.stderr)
  const env = envBlock(t, first.stdout)
  t.same(Object.keys(env), ['STRIPE_PRICE_SOLO', 'STRIPE_PRICE_STANDARD', 'STRIPE_PRICE_PRO', 'STRIPE_WEBHOOK_SECRET'])

  t.same([...fake.state.products.keys()].sort(), ['ctfhive_pro', 'ctfhive_solo', 'ctfhive_standard'])
  t.equal(fake.state.products.get('ctfhive_solo')?.name, 'CTFHive Solo')
  t.equal(fake.state.prices.size, 3)
  for (const plan of PAID_PLANS) {
    const price = fake.state.prices.get(env[plan.stripePriceEnv!]!)
    t.ok(price, `${plan.slug}: the printed id is a real price`)
    t.equal(price?.lookup_key, `ctfhive_${plan.slug}_monthly`)
    t.equal(price?.unit_amount, plan.amount)
    t.equal(price?.currency, 'usd')
    t.same(price?.recurring?.interval, 'month')
    t.equal(price?.product, `ctfhive_${plan.slug}`)
  }
  t.notOk(fake.state.prices.has('enterprise'))
  t.notOk(fake.state.products.has('ctfhive_enterprise'), 'enterprise is skipped')
  const endpoints = [...fake.state.webhookEndpoints.values()]
  t.equal(endpoints.length, 1)
  t.equal(endpoints[0]?.url, `${BASE}/billing/webhook`)
  t.same(endpoints[0]?.enabled_events, [...SUPPORTED_EVENTS])
  t.equal(endpoints[0]?.api_version, '2024-06-20', 'pinned API version')
  t.equal(env.STRIPE_WEBHOOK_SECRET, endpoints[0]?.secret)
  t.ok(fake.requests.every((r) => r.headers['stripe-version'] === '2024-06-20'))
  t.match(first.stderr, /product ctfhive_solo: created/)
  t.notMatch(first.stderr + first.stdout, KEY, 'the key is never printed')

  const before = fake.requests.length
  const second = await run([], envFor(fake))
  t.equal(second.code, 0, second.stderr)
  const env2 = envBlock(t, second.stdout)
  t.same(env2, { STRIPE_PRICE_SOLO: env.STRIPE_PRICE_SOLO, STRIPE_PRICE_STANDARD: env.STRIPE_PRICE_STANDARD, STRIPE_PRICE_PRO: env.STRIPE_PRICE_PRO }, 'same prices, no secret')
  t.equal(posts(fake).filter((r) => fake.requests.indexOf(r) >= before).length, 0, 'nothing created or changed')
  t.equal(fake.state.products.size, 3)
  t.equal(fake.state.prices.size, 3)
  t.equal(fake.state.webhookEndpoints.size, 1)
  t.match(second.stderr, /reused/)
  t.match(second.stderr, /cannot be printed here/)
  t.match(second.stderr, /Stripe dashboard/)
  t.match(second.stderr, /--force-webhook/)
})

t.test('a changed catalogue amount: a new price takes the lookup key over; the old one stays sellable until --archive-old-prices', async (t) => {
  const fake = await startFakeStripe(t)
  const first = envBlock(t, (await run(['--no-webhook'], envFor(fake))).stdout)
  const changed: Plan[] = PAID_PLANS.map((p) => (p.slug === 'solo' ? { ...p, amount: 3000 } : p))
  const r = await run(['--no-webhook'], envFor(fake), { plans: changed })
  t.equal(r.code, 0, r.stderr)
  const second = envBlock(t, r.stdout)
  t.not(second.STRIPE_PRICE_SOLO, first.STRIPE_PRICE_SOLO, 'solo has a new price')
  t.equal(second.STRIPE_PRICE_STANDARD, first.STRIPE_PRICE_STANDARD)
  t.equal(second.STRIPE_PRICE_PRO, first.STRIPE_PRICE_PRO)
  const fresh = fake.state.prices.get(second.STRIPE_PRICE_SOLO!)
  const old = fake.state.prices.get(first.STRIPE_PRICE_SOLO!)
  t.equal(fresh?.unit_amount, 3000)
  t.equal(fresh?.lookup_key, 'ctfhive_solo_monthly')
  t.equal(fresh?.active, true)
  t.equal(old?.lookup_key, null, 'the key moved')
  t.equal(old?.active, true, 'the old price stays active: the running app still sells it')
  const create = fake.requestsTo('POST /v1/prices').at(-1)
  t.equal(create?.form.transfer_lookup_key, 'true')
  t.match(r.stderr, /\$30\/month USD/)
  t.match(r.stderr, /left active .* --archive-old-prices/)

  // Once the app runs with the new ids (and the tool with the app's environment), the old
  // prices are archived on request.
  const archived = await run(['--no-webhook', '--archive-old-prices'], envFor(fake, second), { plans: changed })
  t.equal(archived.code, 0, archived.stderr)
  t.same(envBlock(t, archived.stdout), second, 'the same prices')
  t.equal(fake.state.prices.get(first.STRIPE_PRICE_SOLO!)?.active, false, 'the old solo price is archived')
  t.equal(fake.state.prices.get(second.STRIPE_PRICE_SOLO!)?.active, true, 'the current one is not')
  t.equal(fake.state.prices.get(second.STRIPE_PRICE_PRO!)?.active, true)
  t.match(archived.stderr, new RegExp(`price ${first.STRIPE_PRICE_SOLO}: archived`))
  const stranger = fake.addPrice({ product: 'ctfhive_solo', currency: 'usd', unit_amount: 999, recurring: { interval: 'month' } })
  await run(['--no-webhook', '--archive-old-prices'], envFor(fake, second), { plans: changed })
  t.equal(fake.state.prices.get(String(stranger.id))?.active, true, 'a price this tool did not make is left alone')

  // Running the new catalogue again changes nothing.
  const creates = fake.requestsTo('POST /v1/prices').length
  const again = envBlock(t, (await run(['--no-webhook'], envFor(fake), { plans: changed })).stdout)
  t.equal(again.STRIPE_PRICE_SOLO, second.STRIPE_PRICE_SOLO)
  t.equal(fake.requestsTo('POST /v1/prices').length, creates)

  // Back to the original amount: the inactive original does not come back by accident, a
  // matching lookup-key holder is what counts.
  const back = envBlock(t, (await run(['--no-webhook'], envFor(fake))).stdout)
  t.equal(fake.state.prices.get(back.STRIPE_PRICE_SOLO!)?.unit_amount, 2500)
  t.equal(fake.state.prices.get(back.STRIPE_PRICE_SOLO!)?.lookup_key, 'ctfhive_solo_monthly')
  t.equal([...fake.state.prices.values()].filter((p) => p.lookup_key === 'ctfhive_solo_monthly').length, 1)
})

t.test('--archive-old-prices never archives the price this same run took the lookup key from', async (t) => {
  const fake = await startFakeStripe(t)
  const first = envBlock(t, (await run(['--no-webhook'], envFor(fake))).stdout)
  const changed: Plan[] = PAID_PLANS.map((p) => (p.slug === 'solo' ? { ...p, amount: 3000 } : p))
  const r = await run(['--no-webhook', '--archive-old-prices'], envFor(fake), { plans: changed })
  t.equal(r.code, 0, r.stderr)
  const second = envBlock(t, r.stdout)
  t.not(second.STRIPE_PRICE_SOLO, first.STRIPE_PRICE_SOLO, 'solo has a new price')
  t.equal(fake.state.prices.get(first.STRIPE_PRICE_SOLO!)?.active, true, 'the replaced price stays sellable: the running app still names it')
  t.equal(fake.requestsTo({ method: 'POST', path: `/v1/prices/${first.STRIPE_PRICE_SOLO!}` }).length, 0, 'no archive request for it')
  t.match(r.stderr, new RegExp(`price ${first.STRIPE_PRICE_SOLO}: kept, not archived — this run moved its lookup key to ${second.STRIPE_PRICE_SOLO}; set STRIPE_PRICE_SOLO=${second.STRIPE_PRICE_SOLO}, restart the app, then run again with --archive-old-prices`))
  t.notMatch(r.stderr, /archived \(existing subscriptions/, 'nothing archived in this run')

  // After the restart, the next run with the app's environment archives it.
  const later = await run(['--no-webhook', '--archive-old-prices'], envFor(fake, second), { plans: changed })
  t.equal(later.code, 0, later.stderr)
  t.equal(fake.state.prices.get(first.STRIPE_PRICE_SOLO!)?.active, false, 'archived on the next run')
  t.equal(fake.state.prices.get(second.STRIPE_PRICE_SOLO!)?.active, true)
})

t.test('--archive-old-prices on one product holding every plan archives only old prices of the plan looked at, never one holding a lookup key', async (t) => {
  const fake = await startFakeStripe(t)
  const product = fake.addProduct({ name: 'CTFHive' })
  const orig: Record<string, string> = {}
  for (const plan of PAID_PLANS) orig[plan.slug] = String(fake.addPrice({ product: product.id, currency: 'usd', unit_amount: plan.amount, recurring: { interval: 'month' }, lookup_key: plan.lookupKey }).id)
  // Standard's amount changes and the app moves to its new price; later solo's changes too.
  const v1: Plan[] = PAID_PLANS.map((p) => (p.slug === 'standard' ? { ...p, amount: (p.amount ?? 0) + 1000 } : p))
  const first = envBlock(t, (await run(['--no-webhook'], envFor(fake), { plans: v1 })).stdout)
  const v2: Plan[] = v1.map((p) => (p.slug === 'solo' ? { ...p, amount: (p.amount ?? 0) + 500 } : p))
  const r = await run(['--no-webhook', '--archive-old-prices'], envFor(fake, { STRIPE_PRICE_SOLO: orig.solo!, STRIPE_PRICE_STANDARD: first.STRIPE_PRICE_STANDARD!, STRIPE_PRICE_PRO: orig.pro! }), { plans: v2 })
  t.equal(r.code, 0, r.stderr)
  const second = envBlock(t, r.stdout)
  t.not(second.STRIPE_PRICE_SOLO, orig.solo)
  for (const plan of PAID_PLANS) {
    const current = fake.state.prices.get(second[plan.stripePriceEnv!]!)
    t.match(current, { active: true, lookup_key: plan.lookupKey }, `${plan.slug}: the price printed for it holds its key and is sellable`)
  }
  t.notMatch(r.stderr, /archived \(existing subscriptions/, 'nothing archived: every price this tool made is some plan\'s current one')
  t.notMatch(r.stderr, /STRIPE_PRICE_STANDARD names it; set STRIPE_PRICE_SOLO/, 'no plan speaks of another\'s price')
})

/** An account set up as the seed's script or the dashboard does: products of Stripe's own ids, the same lookup keys. */
function seedAccount (fake: FakeStripe): Record<string, { product: string, price: string }> {
  const seeded: Record<string, { product: string, price: string }> = {}
  for (const plan of PAID_PLANS) {
    const product = fake.addProduct({ name: `CTFHive ${plan.name}` })
    const price = fake.addPrice({ product: product.id, currency: 'usd', unit_amount: plan.amount, recurring: { interval: 'month' }, lookup_key: plan.lookupKey })
    seeded[plan.slug] = { product: String(product.id), price: String(price.id) }
  }
  return seeded
}

t.test('an account set up elsewhere (own product ids, same lookup keys): its matching prices and products are reused', async (t) => {
  const fake = await startFakeStripe(t)
  const seeded = seedAccount(fake)
  fake.state.products.get(seeded.pro!.product)!.active = false
  const r = await run(['--no-webhook'], envFor(fake))
  t.equal(r.code, 0, r.stderr)
  t.same(envBlock(t, r.stdout), { STRIPE_PRICE_SOLO: seeded.solo!.price, STRIPE_PRICE_STANDARD: seeded.standard!.price, STRIPE_PRICE_PRO: seeded.pro!.price }, 'the prices the account already sells')
  t.equal(fake.state.products.size, 3, 'no product of the same name is added')
  t.equal(fake.state.prices.size, 3, 'no price is added')
  t.same(fake.requestsTo('POST /v1/*').map((x) => x.path), [`/v1/products/${seeded.pro!.product}`], 'only the archived product is touched')
  t.equal(fake.state.products.get(seeded.pro!.product)?.active, true, 'reactivated: Checkout sells no price of an archived product')
  t.equal(fake.state.products.get(seeded.solo!.product)?.name, 'CTFHive Solo', 'names left as they were')
  t.match(r.stderr, new RegExp(`price ctfhive_solo_monthly: ${seeded.solo!.price} \\(\\$25/month USD\\) matches, reused`))
  t.notMatch(r.stderr, /created|takes the lookup key over|--archive-old-prices/)

  // A catalogue change makes the new price on the same product, and says who archives the
  // old one: not this tool, which archives only prices it made.
  const changed: Plan[] = PAID_PLANS.map((p) => (p.slug === 'solo' ? { ...p, amount: 3000 } : p))
  const moved = await run(['--no-webhook'], envFor(fake), { plans: changed })
  t.equal(moved.code, 0, moved.stderr)
  const solo = envBlock(t, moved.stdout).STRIPE_PRICE_SOLO!
  t.equal(fake.state.prices.get(solo)?.product, seeded.solo!.product, 'the new price sits on the plan\'s product')
  t.equal(fake.state.products.size, 3, 'still no new product')
  t.match(moved.stderr, new RegExp(`price ${seeded.solo!.price}: left active .* then archive it in the Stripe dashboard \\(it was not made by this tool, so --archive-old-prices leaves it alone\\)`))
  t.notMatch(moved.stderr, /then run again with --archive-old-prices/, 'no advice the tool would not follow')
  const archive = await run(['--no-webhook', '--archive-old-prices'], envFor(fake, { STRIPE_PRICE_SOLO: solo }), { plans: changed })
  t.equal(archive.code, 0, archive.stderr)
  t.equal(fake.state.prices.get(seeded.solo!.price)?.active, true, 'a price the tool did not make stays as it is')
  t.notMatch(archive.stderr, new RegExp(seeded.solo!.price), 'and is not mentioned as kept either')
})

t.test('--archive-old-prices after a run that died once it moved the lookup key: the price the app sells is kept', async (t) => {
  const fake = await startFakeStripe(t)
  const sold = envBlock(t, (await run(['--no-webhook'], envFor(fake))).stdout)
  const changed: Plan[] = PAID_PLANS.map((p) => (p.slug === 'solo' ? { ...p, amount: 3000 } : p))
  // Stripe makes the new price and moves the key; the reply never arrives, nothing is printed.
  fake.dropConnection('POST /v1/prices', { afterEffect: true })
  const died = await run(['--no-webhook', '--archive-old-prices'], envFor(fake, sold), { plans: changed })
  t.equal(died.code, 1)
  t.equal(died.stdout, '', 'the new price was never reported')
  const fresh = [...fake.state.prices.values()].find((p) => p.lookup_key === 'ctfhive_solo_monthly')!
  t.not(fresh.id, sold.STRIPE_PRICE_SOLO, 'yet the key moved')

  // The rerun finds the key on a matching price, as if all were done; the app still sells the old one.
  const again = await run(['--no-webhook', '--archive-old-prices'], envFor(fake, sold), { plans: changed })
  t.equal(again.code, 0, again.stderr)
  t.equal(envBlock(t, again.stdout).STRIPE_PRICE_SOLO, fresh.id, 'the new price reported now')
  t.equal(fake.state.prices.get(sold.STRIPE_PRICE_SOLO!)?.active, true, 'the price STRIPE_PRICE_SOLO names stays sellable')
  t.match(again.stderr, new RegExp(`price ${sold.STRIPE_PRICE_SOLO}: kept, not archived — STRIPE_PRICE_SOLO names it, so the running app sells it; set STRIPE_PRICE_SOLO=${fresh.id as string}, restart`))

  // Without STRIPE_PRICE_* the run cannot tell what the app sells: nothing is archived either.
  const blind = await run(['--no-webhook', '--archive-old-prices'], envFor(fake), { plans: changed })
  t.equal(blind.code, 0, blind.stderr)
  t.equal(fake.state.prices.get(sold.STRIPE_PRICE_SOLO!)?.active, true)
  t.match(blind.stderr, /STRIPE_PRICE_SOLO is not set in this environment, so this run cannot tell which price the running app sells/)
  t.equal(fake.requestsTo({ method: 'POST', path: `/v1/prices/${sold.STRIPE_PRICE_SOLO!}` }).length, 0, 'no archive request at all')

  // Once the app runs with the new price, the old one goes.
  const done = await run(['--no-webhook', '--archive-old-prices'], envFor(fake, { ...sold, STRIPE_PRICE_SOLO: fresh.id }), { plans: changed })
  t.equal(done.code, 0, done.stderr)
  t.equal(fake.state.prices.get(sold.STRIPE_PRICE_SOLO!)?.active, false, 'archived')
  t.equal(fake.state.prices.get(fresh.id)?.active, true)
})

t.test('--base-url is normalised as PUBLIC_BASE_URL is: what is printed is what Stripe posts to', async (t) => {
  const fake = await startFakeStripe(t)
  for (const [base, url] of [
    [' https://ctf.example.test', 'https://ctf.example.test/billing/webhook'],
    ['HTTPS://CTF.Example.TEST:443/', 'https://ctf.example.test/billing/webhook'],
    ['https://ctf.example.test//', 'https://ctf.example.test/billing/webhook']
  ] as const) {
    const r = await run(['--dry-run', '--base-url', base], envFor(fake))
    t.equal(r.code, 0, base)
    t.match(r.stderr, `webhook endpoint ${url} `, base)
  }
  // The app serves the webhook at the root only: an endpoint under a path would get a 404 for
  // every event. The full webhook URL, a likely slip, gets a hint.
  for (const [base, hint] of [
    ['https://ctf.example.test/billing/webhook', true],
    ['https://ctf.example.test/billing/webhook/', true],
    ['https://ctf.example.test/app', false],
    ['https://ctf.example.test/app//', false]
  ] as const) {
    const dry = await run(['--dry-run', '--base-url', base], envFor(fake))
    t.equal(dry.code, 2, base)
    t.match(dry.stderr, `error: --base-url must be an origin only (scheme, host and port; the app is served at the root), got ${JSON.stringify(base)}`, base)
    if (hint) t.match(dry.stderr, "; pass the site's address, --base-url https://ctf.example.test: /billing/webhook is added to it\n", base)
    else t.notMatch(dry.stderr, /pass the site's address/, base)
    t.notMatch(dry.stderr, /would ensure/, 'nothing planned')
    const real = await run(['--base-url', base], envFor(fake))
    t.equal(real.code, 2, base)
    t.equal(fake.requests.length, 0, 'no Stripe call')
  }
  for (const base of ['https://ctf.example.test/#', 'https://ctf.example.test/?', 'https://ctf.example.test?#']) {
    const r = await run(['--dry-run', '--base-url', base], envFor(fake))
    t.equal(r.code, 2, base)
    t.match(r.stderr, /^error: --base-url must not carry a query or a fragment/, base)
  }
  const creds = await run(['--dry-run', '--base-url', 'https://ops:hunter2@ctf.example.test'], envFor(fake))
  t.equal(creds.code, 2)
  t.match(creds.stderr, /^error: --base-url must not carry a user name or password/)
  t.notMatch(creds.stderr, /hunter2/)

  // A live key takes an upper-case HTTPS for what it is.
  const live = await run(['--live', '--base-url', 'HTTPS://ctf.example.test'], { ...envFor(fake), STRIPE_SECRET_KEY: 'sk_live_abc123' })
  t.equal(live.code, 0, live.stderr)
  t.same([...fake.state.webhookEndpoints.values()].map((e) => e.url), ['https://ctf.example.test/billing/webhook'])
})

t.test('a webhook URL Stripe cannot reach is refused before any Stripe call', async (t) => {
  const fake = await startFakeStripe(t)
  const local = [
    ['http://localhost:3000', /\(localhost\)/],
    ['http://app.localhost', /\(localhost\)/],
    ['http://127.0.0.1:3000', /\(a loopback address\)/],
    ['http://127.1:3000', /\(a loopback address\)/],
    ['http://[::1]:3000', /\(a loopback address\)/],
    ['http://[::ffff:127.0.0.1]', /\(a loopback address\)/],
    ['http://10.1.2.3', /\(a private address\)/],
    ['http://172.20.0.1', /\(a private address\)/],
    ['http://192.168.1.5:8080', /\(a private address\)/],
    ['http://[fd00::1]', /\(a private address\)/],
    ['http://169.254.169.254', /\(a link-local address\)/],
    ['http://[fe80::1]', /\(a link-local address\)/],
    ['http://ctfhive:3000', /\(a name without a dot\)/]
  ] as const
  for (const [base, why] of local) {
    for (const argv of [['--base-url', base], ['--base-url', base, '--dry-run']]) {
      const r = await run(argv, envFor(fake))
      t.equal(r.code, 2, argv.join(' '))
      t.equal(r.stdout, '', 'no env block')
      const lines = r.stderr.trim().split('\n')
      t.equal(lines.length, 1, 'one line')
      t.match(lines[0], /^error: the webhook URL .* is not publicly reachable /)
      t.match(lines[0], why, base)
      t.match(lines[0], /--base-url https:\/\/<public host>/)
      // The URL as Stripe would get it: 127.1 is written 127.0.0.1.
      t.match(lines[0], new RegExp(`--no-webhook and forward events with \`stripe listen --forward-to ${new URL(base).origin.replace(/[.[\]]/g, '\\$&')}/billing/webhook\``))
    }
  }
  // The documented local run: PUBLIC_BASE_URL left at its default.
  const byDefault = await run([], { STRIPE_SECRET_KEY: KEY, STRIPE_API_BASE: fake.url })
  t.equal(byDefault.code, 2)
  t.match(byDefault.stderr, /http:\/\/localhost:3000\/billing\/webhook is not publicly reachable/)
  t.equal(fake.requests.length, 0, 'no product or price was made first')

  const noWebhook = await run(['--no-webhook'], { STRIPE_SECRET_KEY: KEY, STRIPE_API_BASE: fake.url })
  t.equal(noWebhook.code, 0, noWebhook.stderr)
  t.same(Object.keys(envBlock(t, noWebhook.stdout)), ['STRIPE_PRICE_SOLO', 'STRIPE_PRICE_STANDARD', 'STRIPE_PRICE_PRO'])

  for (const ok of ['https://ctfhive.us/billing/webhook', 'https://93.184.215.14/billing/webhook', 'https://172.32.0.1/billing/webhook', 'https://[2606:4700::1]/billing/webhook']) {
    t.equal(webhookUrlProblem(ok), null, ok)
  }
})

t.test('an inactive but matching price is reactivated; a renamed or archived product is restored', async (t) => {
  const fake = await startFakeStripe(t)
  const env = envBlock(t, (await run(['--no-webhook'], envFor(fake))).stdout)
  fake.state.prices.get(env.STRIPE_PRICE_PRO!)!.active = false
  Object.assign(fake.state.products.get('ctfhive_pro')!, { active: false, name: 'Old name' })
  const r = await run(['--no-webhook'], envFor(fake))
  t.equal(r.code, 0, r.stderr)
  t.equal(envBlock(t, r.stdout).STRIPE_PRICE_PRO, env.STRIPE_PRICE_PRO)
  t.equal(fake.state.prices.get(env.STRIPE_PRICE_PRO!)?.active, true)
  t.equal(fake.state.products.get('ctfhive_pro')?.active, true)
  t.equal(fake.state.products.get('ctfhive_pro')?.name, 'CTFHive Pro')
  t.match(r.stderr, /reactivated/)
})

t.test('an existing endpoint is reused and its events brought up to date', async (t) => {
  const fake = await startFakeStripe(t)
  const stripe = new StripeClient({ apiKey: KEY, apiVersion: '2024-06-20', baseUrl: fake.url })
  const old = await stripe.request('POST', '/v1/webhook_endpoints', { url: `${BASE}/billing/webhook`, enabled_events: ['invoice.paid', 'charge.refunded'], api_version: '2023-10-16' })
  await stripe.request('POST', `/v1/webhook_endpoints/${old.id}`, { disabled: true })
  await stripe.request('POST', '/v1/webhook_endpoints', { url: 'https://elsewhere.test/hook', enabled_events: ['invoice.paid'] })

  const r = await run([], envFor(fake))
  t.equal(r.code, 0, r.stderr)
  t.notOk('STRIPE_WEBHOOK_SECRET' in envBlock(t, r.stdout), 'no secret for a reused endpoint')
  const e = fake.state.webhookEndpoints.get(old.id)
  t.same(e?.enabled_events, [...SUPPORTED_EVENTS], 'exactly the supported events')
  t.equal(e?.status, 'enabled', 're-enabled')
  t.equal(fake.state.webhookEndpoints.size, 2, 'nothing new')
  t.match(r.stderr, /removed charge\.refunded/)
  t.match(r.stderr, /re-enabled/)
  t.match(r.stderr, /API version 2023-10-16/, 'says the version differs')

  const force = await run(['--force-webhook'], envFor(fake))
  t.equal(force.code, 0, force.stderr)
  const env = envBlock(t, force.stdout)
  t.match(env.STRIPE_WEBHOOK_SECRET, /^whsec_/)
  t.equal(fake.state.webhookEndpoints.size, 3, 'a new endpoint')
  const created = [...fake.state.webhookEndpoints.values()].find((x) => x.secret === env.STRIPE_WEBHOOK_SECRET)
  t.equal(created?.api_version, '2024-06-20')
  t.match(force.stderr, new RegExp(`older endpoint\\(s\\) ${old.id as string}`))
})

t.test('--base-url wins over PUBLIC_BASE_URL; --no-webhook touches no endpoint', async (t) => {
  const fake = await startFakeStripe(t)
  const r = await run(['--base-url', 'https://other.example.test/'], envFor(fake))
  t.equal(r.code, 0, r.stderr)
  t.same([...fake.state.webhookEndpoints.values()].map((e) => e.url), ['https://other.example.test/billing/webhook'])
  const n = fake.requests.length
  const none = await run(['--no-webhook', '--base-url', 'https://third.example.test'], envFor(fake))
  t.equal(none.code, 0)
  t.equal(fake.requests.slice(n).filter((x) => x.path.startsWith('/v1/webhook_endpoints')).length, 0)
  t.notOk('STRIPE_WEBHOOK_SECRET' in envBlock(t, none.stdout))
  t.match(none.stderr, /--no-webhook/)
})

t.test('after PUBLIC_BASE_URL moves, the endpoint this tool made for the old address is named, to be deleted', async (t) => {
  const fake = await startFakeStripe(t)
  t.equal((await run([], { ...envFor(fake), PUBLIC_BASE_URL: 'https://old.example.test' })).code, 0)
  const old = [...fake.state.webhookEndpoints.values()][0]!
  const r = await run([], { ...envFor(fake), PUBLIC_BASE_URL: 'https://new.example.test' })
  t.equal(r.code, 0, r.stderr)
  t.match(r.stderr, new RegExp(`webhook ${old.id}: made by this tool for https://old\\.example\\.test/billing/webhook, and Stripe still sends every event there too\\. If that was this deployment's earlier address, delete it .* once the app answers at https://new\\.example\\.test/billing/webhook; if another deployment shares this Stripe account, leave it`))
  t.equal(fake.state.webhookEndpoints.size, 2, 'named, not deleted: the switch is the operator\'s')
  const same = await run([], { ...envFor(fake), PUBLIC_BASE_URL: 'https://old.example.test' })
  t.notMatch(same.stderr, new RegExp(`webhook ${old.id}: made by this tool for`), 'the endpoint of this run\'s own address is not named so')
})

t.test('--dry-run makes no request and needs no key', async (t) => {
  const fake = await startFakeStripe(t)
  for (const env of [{ STRIPE_API_BASE: fake.url }, envFor(fake), { STRIPE_API_BASE: fake.url, STRIPE_SECRET_KEY: 'sk_live_x1' }]) {
    const r = await run(['--dry-run', '--base-url', 'https://dry.example.test'], env)
    t.equal(r.code, 0, r.stderr)
    t.equal(r.stdout, '', 'stdout stays empty: there is nothing to paste')
    t.match(r.stderr, /would ensure product ctfhive_solo/)
    t.match(r.stderr, /ctfhive_pro_monthly: \$125\/month USD/)
    t.match(r.stderr, /https:\/\/dry\.example\.test\/billing\/webhook/)
    t.match(r.stderr, /skip enterprise/)
  }
  t.equal(fake.requests.length, 0, 'the fake saw no request at all')
})

t.test('bad keys: non-zero exit with one readable line, no request, never the key', async (t) => {
  const fake = await startFakeStripe(t)
  const cases: Array<[string, string | undefined, RegExp]> = [
    ['missing', undefined, /not set/],
    ['empty', '', /not set/],
    ['publishable', 'pk_test_abc123', /publishable key/],
    ['restricted', 'rk_test_abc123', /restricted key/],
    ['restricted live', 'rk_live_abc123', /restricted key/],
    ['webhook secret', 'whsec_abc123', /does not look like/],
    ['garbage', 'sk_test_abc$%^', /does not look like/],
    ['live without --live', 'sk_live_abc123', /live key: pass --live/]
  ]
  for (const [name, key, message] of cases) {
    const r = await run([], { STRIPE_API_BASE: fake.url, STRIPE_SECRET_KEY: key })
    t.equal(r.code, 2, name)
    t.equal(r.stdout, '', `${name}: nothing on stdout`)
    const lines = r.stderr.trim().split('\n')
    t.equal(lines.length, 1, `${name}: one line`)
    t.match(lines[0], /^error: /)
    t.match(lines[0], message, name)
    if (key !== undefined && key !== '') t.notMatch(r.stderr, key, `${name}: key not echoed`)
  }
  t.equal(fake.requests.length, 0)

  const plain = await run(['--live'], { STRIPE_API_BASE: fake.url, STRIPE_SECRET_KEY: 'sk_live_abc123', PUBLIC_BASE_URL: 'http://ctfhive.example' })
  t.equal(plain.code, 2, 'a live endpoint must be HTTPS')
  t.match(plain.stderr, /^error: http:\/\/ctfhive\.example\/billing\/webhook is not HTTPS, and Stripe delivers live events to HTTPS endpoints only/m)
  t.equal(fake.requests.length, 0, 'refused before anything is made')

  const live = await run(['--live', '--no-webhook'], { STRIPE_API_BASE: fake.url, STRIPE_SECRET_KEY: 'sk_live_abc123' })
  t.equal(live.code, 0, 'a live key runs with --live')
  t.match(live.stderr, /LIVE mode/)
})

t.test("Stripe's own errors: non-zero exit, one readable line; an env block only once the prices are done", async (t) => {
  const fake = await startFakeStripe(t, { apiKeys: ['sk_test_theOnlyGoodKey'] })
  const r = await run([], envFor(fake))
  t.equal(r.code, 1)
  t.equal(r.stdout, '')
  const last = r.stderr.trim().split('\n').at(-1)!
  t.match(last, /^error: Stripe refused to look up price ctfhive_solo_monthly: Invalid API Key provided/)
  t.match(last, /invalid_request_error\/api_key_invalid, HTTP 401/)
  t.notMatch(r.stderr, KEY)

  const good = await startFakeStripe(t)
  good.queueReply('POST /v1/prices', { status: 400, body: { error: { type: 'invalid_request_error', code: 'parameter_invalid_integer', param: 'unit_amount', message: 'Invalid integer:\n abc' } } })
  const bad = await run([], envFor(good))
  t.equal(bad.code, 1)
  t.equal(bad.stdout, '')
  const line = bad.stderr.trim().split('\n').at(-1)!
  t.match(line, /^error: Stripe refused to create price ctfhive_solo_monthly: Invalid integer: abc \(invalid_request_error\/parameter_invalid_integer, HTTP 400/)

  good.queueReply('GET /v1/webhook_endpoints', { status: 500, body: { error: { type: 'api_error', message: 'Something went wrong' } } })
  const down = await run([], envFor(good))
  t.equal(down.code, 1)
  t.match(down.stderr.trim().split('\n').at(-1), /^error: Stripe refused to list webhook endpoints: Something went wrong \(api_error, HTTP 500/)
  // The prices were made before the webhook step failed: their ids are not lost.
  const partial = envBlock(t, down.stdout)
  t.same(Object.keys(partial), ['STRIPE_PRICE_SOLO', 'STRIPE_PRICE_STANDARD', 'STRIPE_PRICE_PRO'], 'the price lines, no webhook secret')
  for (const id of Object.values(partial)) t.ok(good.state.prices.get(id)?.active, `${id} is a real, active price`)
  t.match(down.stderr, /STRIPE_PRICE_\* lines are on stdout/)

  const unreachable = await run([], { ...envFor(good), STRIPE_API_BASE: 'http://127.0.0.1:1' })
  t.equal(unreachable.code, 1)
  t.equal(unreachable.stdout, '')
  t.match(unreachable.stderr, /error: connection to Stripe at http:\/\/127\.0\.0\.1:1 failed while trying to look up price ctfhive_solo_monthly: Could not reach Stripe/)
  t.notMatch(unreachable.stderr, /refused/, 'not worded as a refusal')
})

t.test('a user name and password in STRIPE_API_BASE are never printed', async (t) => {
  const r = await run([], { STRIPE_SECRET_KEY: KEY, STRIPE_API_BASE: 'http://u:SECRETVALUE123@127.0.0.1:1', PUBLIC_BASE_URL: BASE })
  t.equal(r.code, 1)
  t.match(r.stderr, /error: connection to Stripe at http:\/\/\*\*\*@127\.0\.0\.1:1 failed while trying to look up price/)
  t.notMatch(r.stderr, /SECRETVALUE123|u:/)
})

t.test('a 2xx that is not a Stripe object: one line naming the step and the reply, no TypeError, nothing claimed', async (t) => {
  const fake = await startFakeStripe(t)
  fake.queueReply('POST /v1/products', { status: 200, body: 'null' })
  const r = await run([], envFor(fake))
  t.equal(r.code, 1)
  t.equal(r.stdout, '')
  t.notMatch(r.stderr, /product ctfhive_solo: created/, 'not reported as made')
  t.notMatch(r.stderr, /Cannot read properties/)
  t.equal(r.stderr.trim().split('\n').at(-1), `error: Stripe at ${fake.url} answered with a malformed reply while trying to create product ctfhive_solo: Stripe returned HTTP 200 with a body that is not a JSON object: null`)
  t.equal(fake.requestsTo('POST /v1/products').length, 1, 'not retried: the same base URL would answer the same')
})

t.test('a 2xx body too large to be Stripe\'s is a malformed reply too, not a refusal', async (t) => {
  const fake = await startFakeStripe(t)
  fake.queueReply('POST /v1/products', { status: 200, body: `{"id":"${'x'.repeat(5 * 1024 * 1024)}"}` })
  const r = await run([], envFor(fake))
  t.equal(r.code, 1)
  t.match(r.stderr.trim().split('\n').at(-1), `error: Stripe at ${fake.url} answered with a malformed reply while trying to create product ctfhive_solo: Stripe returned HTTP 200 with a body over 4 MiB`)
})

t.test('a Stripe slow to answer: shorter attempts than the app\'s, each retry said on stderr', async (t) => {
  t.ok(BOOTSTRAP_TIMEOUT_MS <= 20_000, 'at most 20 s an attempt, not the app client\'s 80 s: three attempts stay near a minute')
  const fake = await startFakeStripe(t)
  fake.delayReply('GET /v1/prices', 30_000, { times: 1 })
  fake.queueReply('GET /v1/prices', { status: 503, body: { error: { type: 'api_error', message: 'Busy' } } })
  const r = await run(['--no-webhook'], envFor(fake), { client: { maxRetries: 2, timeoutMs: 1000, sleep: async () => {} } })
  t.equal(r.code, 0, r.stderr)
  const retries = r.stderr.split('\n').filter((l) => /trying again in \d+\.\d s$/.test(l))
  t.match(retries, [
    /^look up price ctfhive_solo_monthly: Request to Stripe timed out after 1000 ms; trying again in /,
    /^look up price ctfhive_solo_monthly: Busy; trying again in /
  ])
  t.equal(retries.length, 2)
})

t.test('usage: --help, unknown flags, contradictions, bad URLs, bad config', async (t) => {
  const help = await run(['--help'], {})
  t.equal(help.code, 0)
  t.match(help.stdout, /--force-webhook/)
  t.match(help.stdout, /--dry-run/)
  for (const [argv, message] of [
    [['--frobnicate'], /Unknown option/],
    [['--no-webhook', '--force-webhook'], /contradict/],
    [['--base-url', 'ftp://x.test', '--dry-run'], /http\(s\)/],
    [['--base-url', 'not a url', '--dry-run'], /absolute/],
    [['--base-url', 'https://x.test/?a=1', '--dry-run'], /query/],
    [['stray'], /positional/i]
  ] as Array<[string[], RegExp]>) {
    const r = await run(argv, {})
    t.equal(r.code, 2, argv.join(' '))
    t.match(r.stderr, message, argv.join(' '))
    t.equal(r.stdout, '')
  }
  // parseArgs alone keeps the last in silence: the webhook would go to b.
  const twice = await run(['--base-url', 'https://a.org', '--base-url', 'https://b.org', '--dry-run'], {})
  t.equal(twice.code, 2)
  t.match(twice.stderr, /^error: --base-url given twice\n\nUsage: npm run stripe:bootstrap/)
  t.notMatch(twice.stderr, /would ensure/, 'nothing planned')
  t.equal(twice.stdout, '')
  t.equal((await run(['--dry-run', '--dry-run', '--no-webhook'], {})).code, 0, 'a repeated flag is harmless')
  const config = await run(['--dry-run'], { STRIPE_API_BASE: 'nope' })
  t.equal(config.code, 2)
  t.match(config.stderr, /^error: STRIPE_API_BASE/)
})
