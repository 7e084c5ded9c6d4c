import t from 'tap'
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadConfig, ConfigError, listenError, secretValues, stripeConfigured } from '../api/config.ts'

const strong = 'x'.repeat(40)

function variableOf (env: Record<string, string | undefined>): string | undefined {
  try {
    loadConfig(env)
    return undefined
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    if (!err.message.startsWith(`${err.variable}:`)) throw new Error('the message must start with the variable')
    return err.variable
  }
}

t.test('boots with nothing set, on safe development defaults', async (t) => {
  const c = loadConfig({})
  t.equal(c.host, '127.0.0.1')
  t.equal(c.port, 3000)
  t.equal(c.databaseUrl, 'sqlite:./data/ctfhive.db')
  t.equal(c.baseDomain, 'ctfhive.us')
  t.equal(c.publicBaseUrl, 'http://localhost:3000')
  t.equal(c.stripe.apiVersion, '2024-06-20')
  t.equal(c.stripe.successUrl, 'http://localhost:3000/billing/success?session_id={CHECKOUT_SESSION_ID}')
  t.equal(c.stripe.cancelUrl, 'http://localhost:3000/pricing')
  t.equal(c.stripe.webhookToleranceS, 300)
  t.same(c.stripe.webhookSecrets, [])
  t.equal(c.deprovisionGraceHours, 72)
  t.equal(c.provisionAttemptTimeoutS, 300)
  t.equal(c.provisionHealthTimeoutS, 1800)
  t.equal(c.docsSiteDir, 'docs-site/site')
  t.equal(c.marketingDistDir, fileURLToPath(new URL('../marketing/dist/', import.meta.url)), "the checkout's marketing/dist, whatever the working directory")
  t.equal(c.logLevel, 'info')
  t.equal(c.linode.region, 'us-east')
  t.equal(c.linode.image, 'linode/debian12')
  t.equal(c.linode.plan, 'g6-standard-2', "DESIGN §4's one type for every plan")
  t.equal(c.stripe.apiBase, 'https://api.stripe.com')
  t.equal(c.linode.apiBase, 'https://api.linode.com/v4')
  t.equal(c.webhookWaitMs, 2000, "DESIGN §7's short wait for provisioning")
  t.equal(c.linode.planGivenEmpty, false)
  t.equal(loadConfig({ LINODE_PLAN: ' ' }).linode.planGivenEmpty, true, 'given, but empty')
  t.notOk(stripeConfigured(c))
})

t.test('values are read and normalised', async (t) => {
  const c = loadConfig({
    PORT: '8080', PUBLIC_BASE_URL: 'https://ctfhive.example/', STRIPE_WEBHOOK_SECRET: 'whsec_a, whsec_b ,',
    BASE_DOMAIN: 'CTF.Example.org', STRIPE_PRICE_SOLO: 'price_1', TRUST_PROXY: '2', STRIPE_SECRET_KEY: 'sk_test_1'
  })
  t.equal(c.port, 8080)
  t.equal(c.publicBaseUrl, 'https://ctfhive.example', 'trailing slash dropped')
  t.same(c.stripe.webhookSecrets, ['whsec_a', 'whsec_b'], 'comma-separated secrets for rotation')
  t.equal(c.baseDomain, 'ctf.example.org')
  t.equal(loadConfig({ BASE_DOMAIN: 'ctfhive.xn--p1ai' }).baseDomain, 'ctfhive.xn--p1ai', 'an IDN top-level domain in its xn-- form')
  t.equal(loadConfig({ BASE_DOMAIN: `${'a.'.repeat(93)}org` }).baseDomain.length, 189, 'room left for a 63-character slug and its dot')
  t.equal(c.stripe.prices.STRIPE_PRICE_SOLO, 'price_1')
  t.equal(c.stripe.prices.STRIPE_PRICE_PRO, '')
  t.equal(c.trustProxy, 2)
  t.equal(loadConfig({ MARKETING_DIST_DIR: ' /srv/ctfhive/site ' }).marketingDistDir, '/srv/ctfhive/site')
  t.equal(loadConfig({ MARKETING_DIST_DIR: ' ' }).marketingDistDir, loadConfig({}).marketingDistDir, 'empty (as in .env.example) means the default')
  t.equal(loadConfig({ TRUST_PROXY: 'true' }).trustProxy, true)
  t.equal(loadConfig({ TRUST_PROXY: '10.0.0.0/8' }).trustProxy, '10.0.0.0/8')
  t.equal(loadConfig({ TRUST_PROXY: 'loopback, 192.0.2.7, 2001:db8::/32' }).trustProxy, 'loopback, 192.0.2.7, 2001:db8::/32', 'names, addresses and CIDRs, as Fastify reads them')
  t.equal(loadConfig({ PUBLIC_BASE_URL: 'https://CTFHive.Example:443/' }).publicBaseUrl, 'https://ctfhive.example', 'written as browsers see it')
  t.equal(loadConfig({ PUBLIC_BASE_URL: 'http://127.0.0.1:3000' }).publicBaseUrl, 'http://127.0.0.1:3000')
  t.ok(stripeConfigured(c))
})

t.test('a bad value names its variable', async (t) => {
  const bad: Array<[Record<string, string>, string]> = [
    [{ PORT: 'eighty' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ PUBLIC_BASE_URL: 'not a url' }, 'PUBLIC_BASE_URL'],
    [{ PUBLIC_BASE_URL: 'ftp://x.y' }, 'PUBLIC_BASE_URL'],
    [{ PUBLIC_BASE_URL: 'https://ctfhive.example/shop' }, 'PUBLIC_BASE_URL'],
    [{ PUBLIC_BASE_URL: 'https://ctfhive.example/?ref=1' }, 'PUBLIC_BASE_URL'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    [{ BASE_DOMAIN: 'no_underscores.com' }, 'BASE_DOMAIN'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ DATABASE_URL: 'sqlite:' }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'sqlite://' }, 'DATABASE_URL'],
    [{ TRUST_PROXY: 'yes' }, 'TRUST_PROXY'],
    [{ ADMIN_TOKEN: 'two words' }, 'ADMIN_TOKEN'],
    [{ ADMIN_TOKEN: 'tökenwithumlaut' }, 'ADMIN_TOKEN'],
    [{ TRUST_PROXY: '10.0.0.0/8,10.0.0.300' }, 'TRUST_PROXY'],
    [{ TRUST_PROXY: '10.0.0.0/33' }, 'TRUST_PROXY'],
    [{ PROVISION_ATTEMPT_TIMEOUT_S: '30' }, 'PROVISION_ATTEMPT_TIMEOUT_S'],
    [{ PROVISION_ATTEMPT_TIMEOUT_S: '1801' }, 'PROVISION_ATTEMPT_TIMEOUT_S'],
    [{ PROVISION_HEALTH_TIMEOUT_S: '59' }, 'PROVISION_HEALTH_TIMEOUT_S'],
    [{ PROVISION_HEALTH_TIMEOUT_S: '86401' }, 'PROVISION_HEALTH_TIMEOUT_S'],
    [{ PROVISION_HEALTH_TIMEOUT_S: '1e3' }, 'PROVISION_HEALTH_TIMEOUT_S'],
    [{ DEPROVISION_GRACE_HOURS: '-1' }, 'DEPROVISION_GRACE_HOURS'],
    [{ DEPROVISION_GRACE_HOURS: '87601' }, 'DEPROVISION_GRACE_HOURS'],
    [{ DEPROVISION_GRACE_HOURS: '1e10' }, 'DEPROVISION_GRACE_HOURS'],
    [{ BASE_DOMAIN: 'localhost' }, 'BASE_DOMAIN'],
    [{ BASE_DOMAIN: 'ctfhive.123' }, 'BASE_DOMAIN'],
    [{ BASE_DOMAIN: `${'a'.repeat(64)}.org` }, 'BASE_DOMAIN'],
    [{ BASE_DOMAIN: `${'a.'.repeat(94)}org` }, 'BASE_DOMAIN'],
    [{ STRIPE_WEBHOOK_TOLERANCE_S: '0' }, 'STRIPE_WEBHOOK_TOLERANCE_S'],
    [{ STRIPE_SUCCESS_URL: '/relative' }, 'STRIPE_SUCCESS_URL'],
    [{ STRIPE_SUCCESS_URL: 'javascript:alert(1)' }, 'STRIPE_SUCCESS_URL'],
    // Our return page without the session it needs: every paying buyer would meet an error.
    [{ STRIPE_SUCCESS_URL: 'https://ctfhive.example/billing/success' }, 'STRIPE_SUCCESS_URL'],
    [{ STRIPE_SUCCESS_URL: 'https://ctfhive.example/billing/success?ref=mail' }, 'STRIPE_SUCCESS_URL'],
    [{ STRIPE_CANCEL_URL: 'ftp://example.org/pricing' }, 'STRIPE_CANCEL_URL'],
    [{ LINODE_API_BASE: 'linode' }, 'LINODE_API_BASE'],
    [{ STRIPE_API_VERSION: '2024-06-20 x' }, 'STRIPE_API_VERSION'],
    [{ STRIPE_API_VERSION: 'latest' }, 'STRIPE_API_VERSION'],
    [{ STRIPE_SECRET_KEY: 'sk_test_abc def' }, 'STRIPE_SECRET_KEY'],
    [{ STRIPE_SECRET_KEY: 'sk_test_ünï' }, 'STRIPE_SECRET_KEY'],
    [{ LINODE_PLAN: 'G6-Standard-2' }, 'LINODE_PLAN'],
    [{ LINODE_PLAN: 'per plan' }, 'LINODE_PLAN'],
    [{ LINODE_API_TOKEN: 'abc def' }, 'LINODE_API_TOKEN'],
    [{ LINODE_API_TOKEN: 'tökenwithumlaut' }, 'LINODE_API_TOKEN']
  ]
  for (const [env, variable] of bad) {
    t.equal(variableOf(env), variable, variable)
  }
  t.throws(() => loadConfig({ STRIPE_SECRET_KEY: 'sk_test_abc hunter2' }), { message: /^STRIPE_SECRET_KEY: (?!.*hunter2)/ }, 'a malformed key is not echoed')
  t.throws(() => loadConfig({ LINODE_API_TOKEN: 'abc\nhunter2' }), { message: /^LINODE_API_TOKEN: (?!.*hunter2)/ }, 'a malformed Linode token is not echoed')
  t.equal(loadConfig({ STRIPE_API_VERSION: '2025-03-31.basil' }).stripe.apiVersion, '2025-03-31.basil', 'named versions are fine')
  t.throws(() => loadConfig({ STRIPE_SUCCESS_URL: 'https://ctfhive.example/billing/success' }), { message: /^STRIPE_SUCCESS_URL: points at \/billing\/success without session_id=\{CHECKOUT_SESSION_ID\}/ })
  for (const url of ['https://ctfhive.example/billing/success?session_id={CHECKOUT_SESSION_ID}&ref=mail', 'https://ctfhive.example/thanks']) {
    t.equal(loadConfig({ STRIPE_SUCCESS_URL: url }).stripe.successUrl, url, `${url} is taken`)
  }
  t.throws(() => loadConfig({ LOG_LEVEL: 'verbose' }), { message: /LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"/ }, 'the allowed levels are named')
})

t.test('production refuses defaults and weak secrets', async (t) => {
  const base = { NODE_ENV: 'production', SECRET_KEY: strong, PROVISION_AUDIT_SECRET: strong }
  t.ok(loadConfig(base))
  const refuse = (env: Record<string, string>, variable: string) => t.equal(variableOf({ ...base, ...env }), variable, variable)
  refuse({ SECRET_KEY: '' }, 'SECRET_KEY')
  refuse({ SECRET_KEY: 'short' }, 'SECRET_KEY')
  refuse({ SECRET_KEY: 'x'.repeat(31) }, 'SECRET_KEY')
  refuse({ PROVISION_AUDIT_SECRET: 'audit-dev-secret' }, 'PROVISION_AUDIT_SECRET')
  refuse({ PROVISION_AUDIT_SECRET: 'y'.repeat(31) }, 'PROVISION_AUDIT_SECRET')
  refuse({ STRIPE_SECRET_KEY: 'sk_live_x' }, 'STRIPE_WEBHOOK_SECRET')
  // A first deploy meets this before it has the secret: the line says where it comes from.
  t.throws(() => loadConfig({ ...base, STRIPE_SECRET_KEY: 'sk_test_x' }), {
    message: "STRIPE_WEBHOOK_SECRET: must be set when STRIPE_SECRET_KEY is set in production (printed by npm run stripe:bootstrap, or the Stripe Dashboard → Webhooks → the endpoint's signing secret)"
  }, 'the webhook secret: where to get it')
  refuse({ ADMIN_TOKEN: 'admin' }, 'ADMIN_TOKEN')
  refuse({ ADMIN_TOKEN: 'z'.repeat(31) }, 'ADMIN_TOKEN')
  t.ok(loadConfig({ ...base, ADMIN_TOKEN: 'z'.repeat(32) }), 'a long admin token is fine')
  const live = { STRIPE_SECRET_KEY: 'sk_live_x', STRIPE_WEBHOOK_SECRET: 'whsec_1' }
  refuse(live, 'LINODE_API_TOKEN')
  refuse({ ...live, STRIPE_SECRET_KEY: 'rk_live_x' }, 'LINODE_API_TOKEN')
  t.throws(() => loadConfig({ ...base, ...live }), { message: /^LINODE_API_TOKEN: must be set when STRIPE_SECRET_KEY is a live key in production/ }, 'servers would only be pretended')
  t.ok(loadConfig({ ...base, ...live, LINODE_API_TOKEN: 'linode-token-1', PUBLIC_BASE_URL: 'https://ctfhive.example' }))
  t.ok(loadConfig({ ...base, STRIPE_SECRET_KEY: 'sk_test_x', STRIPE_WEBHOOK_SECRET: 'whsec_1' }), 'a test key may stage the flow on the fake executor')
  t.ok(loadConfig({ NODE_ENV: 'development', SECRET_KEY: 'short', ...live }), 'development, said outright, allows anything')
})

t.test('secretValues lists what must never be logged', async (t) => {
  const c = loadConfig({ SECRET_KEY: strong, STRIPE_SECRET_KEY: 'sk_test_abcdefgh', STRIPE_WEBHOOK_SECRET: 'whsec_one1,whsec_two2', LINODE_API_TOKEN: 'linode-token-1', ADMIN_TOKEN: 'admin-token-1' })
  const s = secretValues(c)
  for (const v of [strong, 'sk_test_abcdefgh', 'whsec_one1', 'whsec_two2', 'linode-token-1', 'admin-token-1', 'audit-dev-secret']) t.ok(s.includes(v), v)
})

t.test('.env.example lists every variable the config reads, each with a comment', async (t) => {
  const { readFileSync } = await import('node:fs')
  const source = readFileSync(new URL('../api/config.ts', import.meta.url), 'utf8')
  const example = readFileSync(new URL('../.env.example', import.meta.url), 'utf8')
  const read = new Set([...source.matchAll(/(?:str|int|num|httpUrl|shaped|apiBase)\(env, '([A-Z_]+)'/g)].map((m) => m[1]!))
  for (const shapedOne of ['STRIPE_SECRET_KEY', 'STRIPE_API_VERSION', 'ADMIN_TOKEN', 'STRIPE_API_BASE', 'LINODE_API_BASE']) t.ok(read.has(shapedOne), `${shapedOne} is found where the config reads it`)
  for (const slug of ['SOLO', 'STANDARD', 'PRO']) read.add(`STRIPE_PRICE_${slug}`)
  read.add('TRUST_PROXY')
  t.ok(read.size >= 30, `found ${read.size} variables`)
  const lines = example.split('\n')
  for (const name of read) {
    // A few are listed commented out (their default must not override a service manager's).
    const i = lines.findIndex((l) => l.startsWith(`${name}=`) || l.startsWith(`# ${name}=`))
    t.ok(i >= 0, `${name} is listed`)
    const commented = lines.slice(Math.max(0, i - 6), i).some((l) => l.startsWith('#'))
    t.ok(commented, `${name} has a comment above it`)
  }
})

/** The message loadConfig stops with (and that it names `variable` first). */
function refusal (env: Record<string, string>, variable: string): string {
  try {
    loadConfig(env)
  } catch (err) {
    if (err instanceof ConfigError && err.variable === variable && err.message.startsWith(`${variable}: `)) return err.message
    throw err
  }
  throw new Error(`${JSON.stringify(env)} was accepted`)
}

t.test('HOST must be an IP address or a host name', async (t) => {
  for (const host of ['127.0.0.1', '0.0.0.0', '::', '::1', 'fe80::1%eth0', 'localhost', 'app1', 'my_db', 'ctfhive.example', 'ctfhive.example.']) {
    t.equal(loadConfig({ HOST: host }).host, host, host)
  }
  for (const host of ['not a host', '300.1.1.1', '10.0.0', '[::1]', 'http://ctfhive.example', 'a..b', '-x.example', '127.0.0.1:3000']) {
    t.match(refusal({ HOST: host }, 'HOST'), /^HOST: must be an IP address \(127\.0\.0\.1 for this machine only, 0\.0\.0\.0 or :: for every interface\) or a host name, got /, host)
  }
})

t.test('a listen error that HOST or PORT causes is worded as a bad setting', async (t) => {
  const error = (code: string): Error => Object.assign(new Error(`listen ${code}`), { code })
  t.match(listenError(error('ENOTFOUND'), 'ctfhive.invalid', 3000), { variable: 'HOST', message: /^HOST: "ctfhive\.invalid" resolves to no address \(ENOTFOUND\)/ })
  t.match(listenError(error('EADDRNOTAVAIL'), '8.8.8.8', 3000), { variable: 'HOST', message: /^HOST: 8\.8\.8\.8 is not an address of this machine \(EADDRNOTAVAIL\): use one of its own, 127\.0\.0\.1/ })
  t.match(listenError(error('EINVAL'), 'fe80::1', 3000), { variable: 'HOST', message: /^HOST: fe80::1 cannot be listened on \(EINVAL; a link-local IPv6 address needs its interface/ })
  // "EADDRINUSE" stays in the line: tests/helpers/server-process.ts retries another port on it.
  t.match(listenError(error('EADDRINUSE'), '127.0.0.1', 3000), { variable: 'PORT', message: /^PORT: 3000 on 127\.0\.0\.1 is already in use \(EADDRINUSE\)/ })
  t.match(listenError(error('EACCES'), '0.0.0.0', 80), { variable: 'PORT', message: /^PORT: 80 on 0\.0\.0\.0 may not be opened by this process \(EACCES\): a port below 1024 needs privileges/ })
  t.equal(listenError(error('EAI_AGAIN'), 'ctfhive.example', 3000), null, 'a DNS outage is no bad setting: a restart may cure it')
  t.equal(listenError(new Error('other'), '127.0.0.1', 3000), null)
})

t.test('production with a live Stripe key wants a public https:// address for Checkout to return to', async (t) => {
  const live = { NODE_ENV: 'production', SECRET_KEY: strong, PROVISION_AUDIT_SECRET: strong, STRIPE_SECRET_KEY: 'sk_live_x', STRIPE_WEBHOOK_SECRET: 'whsec_1', LINODE_API_TOKEN: 'linode-token-1' }
  t.match(refusal(live, 'PUBLIC_BASE_URL'), /^PUBLIC_BASE_URL: must be a public https:\/\/ address when STRIPE_SECRET_KEY is a live key in production \(Checkout returns buyers there\), got "http:\/\/localhost:3000"$/, 'unset: the development default')
  for (const url of ['http://ctfhive.example', 'https://localhost', 'https://app.localhost:8443', 'https://127.0.0.1', 'https://127.1.2.3:3000', 'https://[::1]', 'https://0.0.0.0',
    // The URL parser writes these as [::ffff:7f00:1], [::] and "localhost.".
    'https://[::ffff:127.0.0.1]', 'https://[::]', 'https://localhost.']) {
    refusal({ ...live, PUBLIC_BASE_URL: url }, 'PUBLIC_BASE_URL')
    refusal({ ...live, PUBLIC_BASE_URL: url, STRIPE_SECRET_KEY: 'rk_live_x' }, 'PUBLIC_BASE_URL')
  }
  const pub = { ...live, PUBLIC_BASE_URL: 'https://ctfhive.example' }
  t.equal(loadConfig(pub).stripe.successUrl, 'https://ctfhive.example/billing/success?session_id={CHECKOUT_SESSION_ID}')
  refusal({ ...pub, STRIPE_SUCCESS_URL: 'http://localhost:3000/billing/success' }, 'STRIPE_SUCCESS_URL')
  refusal({ ...pub, STRIPE_CANCEL_URL: 'http://ctfhive.example/pricing' }, 'STRIPE_CANCEL_URL')
  t.ok(loadConfig({ ...live, STRIPE_SECRET_KEY: 'sk_test_x' }), 'a test key may stage the flow on localhost')
  t.ok(loadConfig({ ...live, NODE_ENV: 'development' }), 'development allows it')
})

t.test('a live Stripe key brings the production rules, whatever NODE_ENV says, unless it says development or test', async (t) => {
  const ready = { SECRET_KEY: strong, PROVISION_AUDIT_SECRET: strong, STRIPE_SECRET_KEY: 'sk_live_x', STRIPE_WEBHOOK_SECRET: 'whsec_1', LINODE_API_TOKEN: 'linode-token-1', PUBLIC_BASE_URL: 'https://ctfhive.example' }
  // Unset or mistyped: the public development defaults, the FakeExecutor, localhost return URLs.
  for (const nodeEnv of [undefined, '', 'prod', 'Production', 'staging']) {
    const env: Record<string, string> = nodeEnv === undefined ? {} : { NODE_ENV: nodeEnv }
    const shown = nodeEnv === undefined || nodeEnv === '' ? 'unset' : JSON.stringify(nodeEnv)
    t.equal(refusal({ ...env, STRIPE_SECRET_KEY: 'sk_live_x' }, 'SECRET_KEY'),
      `SECRET_KEY: must be set to a random value of at least 32 characters in production (a live STRIPE_SECRET_KEY means production unless NODE_ENV is development or test; NODE_ENV is ${shown})`, `NODE_ENV ${shown}: says why`)
    refusal({ ...env, ...ready, STRIPE_SECRET_KEY: 'rk_live_x', LINODE_API_TOKEN: '' }, 'LINODE_API_TOKEN')
    refusal({ ...env, ...ready, PUBLIC_BASE_URL: '' }, 'PUBLIC_BASE_URL')
    t.match(refusal({ ...env, ...ready, STRIPE_WEBHOOK_SECRET: '' }, 'STRIPE_WEBHOOK_SECRET'),
      /^STRIPE_WEBHOOK_SECRET: must be set when STRIPE_SECRET_KEY is set in production \(a live .*\) \(printed by npm run stripe:bootstrap, or the Stripe Dashboard → Webhooks → the endpoint's signing secret\)$/, `NODE_ENV ${shown}: says where the webhook secret comes from`)
    t.ok(loadConfig({ ...env, ...ready }), `NODE_ENV ${shown}: starts once production-ready`)
    t.ok(loadConfig({ ...env, STRIPE_SECRET_KEY: 'sk_test_x' }), `NODE_ENV ${shown}: a test key keeps the development defaults`)
  }
  // Said outright: what the operator tools do for a run that is not a server start.
  for (const nodeEnv of ['development', 'test', ' development ']) t.ok(loadConfig({ NODE_ENV: nodeEnv, STRIPE_SECRET_KEY: 'sk_live_x' }), `NODE_ENV=${nodeEnv}`)
  t.match(refusal({ NODE_ENV: 'production', STRIPE_SECRET_KEY: 'sk_live_x' }, 'SECRET_KEY'), /in production$/, 'NODE_ENV=production needs no reason')
})

t.test('STRIPE_API_BASE does not end in the /v1 its client adds; neither API base takes a query or fragment', async (t) => {
  t.match(refusal({ STRIPE_API_BASE: 'https://api.stripe.com/v1' }, 'STRIPE_API_BASE'), /^STRIPE_API_BASE: must not end in \/v1, which the client adds itself \(like https:\/\/api\.stripe\.com\), got "https:\/\/api\.stripe\.com\/v1"$/, "copied from Stripe's docs: /v1/v1/…")
  for (const url of ['https://api.stripe.com/v1/', 'http://proxy.internal/stripe/v1']) refusal({ STRIPE_API_BASE: url }, 'STRIPE_API_BASE')
  t.equal(loadConfig({ STRIPE_API_BASE: 'http://proxy.internal/stripe/' }).stripe.apiBase, 'http://proxy.internal/stripe', 'a proxy\'s prefix is a path like any')
  for (const [name, base] of [['STRIPE_API_BASE', 'https://api.stripe.com'], ['LINODE_API_BASE', 'https://api.linode.com/v4']] as const) {
    for (const tail of ['?x=1', '/?x=1', '#f', '/#f', '?', '#']) {
      t.match(refusal({ [name]: `${base}${tail}` }, name), new RegExp(`^${name}: must not carry a query or fragment \\(each request's path is appended to it\\)`), `${name}: ${tail}`)
    }
  }
  t.equal(loadConfig({ STRIPE_API_BASE: 'https://api.stripe.com/' }).stripe.apiBase, 'https://api.stripe.com')
  t.equal(loadConfig({ STRIPE_API_BASE: 'http://127.0.0.1:12111' }).stripe.apiBase, 'http://127.0.0.1:12111', 'a local stand-in (stripe-mock)')
  t.equal(loadConfig({}).linode.apiBase, 'https://api.linode.com/v4')
  t.equal(loadConfig({ LINODE_API_BASE: 'https://api.linode.com/v4beta/' }).linode.apiBase, 'https://api.linode.com/v4beta', "Linode's base has a path")
})

t.test('CONTACT_DOMAIN is BASE_DOMAIN unless given, and a domain name only', async (t) => {
  t.equal(loadConfig({ BASE_DOMAIN: 'ctf.example' }).contactDomain, 'ctf.example')
  t.equal(loadConfig({ BASE_DOMAIN: 'ctf.example', CONTACT_DOMAIN: ' ' }).contactDomain, 'ctf.example', 'empty, as .env.example leaves it')
  t.equal(loadConfig({ BASE_DOMAIN: 'ctf.example', CONTACT_DOMAIN: 'CTFHive.com.' }).contactDomain, 'ctfhive.com')
  t.match(refusal({ CONTACT_DOMAIN: 'support@ctfhive.com' }, 'CONTACT_DOMAIN'), /^CONTACT_DOMAIN: must be a domain name only, like ctfhive\.us, without a mailbox name before an @, got "support@ctfhive\.com"$/)
  t.match(refusal({ CONTACT_DOMAIN: 'https://ctfhive.com' }, 'CONTACT_DOMAIN'), /^CONTACT_DOMAIN: must be a domain name only, like ctfhive\.us, without a scheme/)
  t.match(refusal({ CONTACT_DOMAIN: 'localhost' }, 'CONTACT_DOMAIN'), /^CONTACT_DOMAIN: must be a domain name like ctfhive\.us: two or more dot-separated labels/)
})

t.test('BASE_DOMAIN and DATABASE_URL are refused in plain words; a final dot and an upper-case scheme are fine', async (t) => {
  t.equal(loadConfig({ BASE_DOMAIN: 'ctfhive.us.' }).baseDomain, 'ctfhive.us', 'the final dot of a DNS name is dropped')
  t.equal(loadConfig({ BASE_DOMAIN: 'CTFHive.US.' }).baseDomain, 'ctfhive.us')
  t.match(refusal({ BASE_DOMAIN: 'https://ctfhive.us' }, 'BASE_DOMAIN'), /^BASE_DOMAIN: must be a domain name only, like ctfhive\.us, without a scheme, got "https:\/\/ctfhive\.us"$/)
  t.match(refusal({ BASE_DOMAIN: 'ctfhive.us:443' }, 'BASE_DOMAIN'), /without a port or path, got "ctfhive\.us:443"$/)
  t.match(refusal({ BASE_DOMAIN: 'ctfhive.us/' }, 'BASE_DOMAIN'), /without a port or path/)
  t.match(refusal({ BASE_DOMAIN: 'ctfhive.us..' }, 'BASE_DOMAIN'), /^BASE_DOMAIN: must be a domain name like ctfhive\.us: two or more dot-separated labels of letters, digits and hyphens .*, got "ctfhive\.us\.\."$/, 'one final dot only')
  t.match(refusal({ BASE_DOMAIN: 'localhost' }, 'BASE_DOMAIN'), /two or more dot-separated labels/)
  t.match(refusal({ BASE_DOMAIN: `${'a.'.repeat(94)}org` }, 'BASE_DOMAIN'), /^BASE_DOMAIN: must be at most 189 characters, so that a 63-character slug and its dot still fit/)

  t.equal(loadConfig({ DATABASE_URL: 'SQLITE:/var/lib/ctfhive/ctfhive.db' }).databaseUrl, 'sqlite:/var/lib/ctfhive/ctfhive.db', 'the scheme as the store looks for it')
  t.equal(loadConfig({ DATABASE_URL: 'PostgreSQL://u:p@db/ctfhive' }).databaseUrl, 'postgresql://u:p@db/ctfhive')
  t.match(refusal({ DATABASE_URL: 'mysql://ctfhive:hunter2secretpw@db/ctfhive' }, 'DATABASE_URL'), /^DATABASE_URL: must be sqlite:<file> \(like sqlite:\.\/data\/ctfhive\.db or sqlite:\/\/\/absolute\/path\.db\) or postgres:\/\/user:password@host:5432\/db, got a mysql: URL$/)
  t.match(refusal({ DATABASE_URL: 'ctfhive.db' }, 'DATABASE_URL'), /, got no scheme$/)
  t.match(refusal({ DATABASE_URL: 'postgres:/db' }, 'DATABASE_URL'), /got a postgres: URL$/)
  for (const url of ['postgres://u:hunter2@127.0.0.1:99999/db', 'postgresql://u:hunter2@[db/ctfhive']) {
    const message = refusal({ DATABASE_URL: url }, 'DATABASE_URL')
    t.match(message, /^DATABASE_URL: is not a valid postgres:\/\/ URL: check the port/, url)
    t.notMatch(message, 'hunter2')
  }
  for (const env of [{ BASE_DOMAIN: 'no_underscores.com' }, { DATABASE_URL: 'mysql://x' }, { BASE_DOMAIN: 'ctfhive.123' }]) {
    t.throws(() => loadConfig(env), { message: /^(?!.*(Expected|\^|\(\?))/ }, `no pattern shown: ${JSON.stringify(env)}`)
  }
})

t.test('an in-memory SQLite database is refused: every tenant would be lost at exit', async (t) => {
  for (const url of ['sqlite::memory:', 'SQLITE::memory:', 'sqlite://:memory:']) {
    t.match(refusal({ DATABASE_URL: url }, 'DATABASE_URL'), /^DATABASE_URL: is an in-memory database, lost with every tenant at exit: use a file/, url)
  }
  refusal({ NODE_ENV: 'production', SECRET_KEY: strong, PROVISION_AUDIT_SECRET: strong, DATABASE_URL: 'sqlite::memory:' }, 'DATABASE_URL')
})

t.test('a URL in a message never shows its user or password', async (t) => {
  const pw = 'hunter2secretpw'
  const cases: Array<[Record<string, string>, string]> = [
    [{ PUBLIC_BASE_URL: `https://user:${pw}@ctfhive.us` }, 'PUBLIC_BASE_URL'],
    [{ PUBLIC_BASE_URL: `https://user:${pw}@` }, 'PUBLIC_BASE_URL'],
    [{ PUBLIC_BASE_URL: `user:${pw}@ctfhive.us` }, 'PUBLIC_BASE_URL'],
    [{ LINODE_API_BASE: `ftp://u:${pw}@api.linode.com` }, 'LINODE_API_BASE'],
    [{ STRIPE_API_BASE: `https://u:p@ss${pw}@api.stripe.com:x` }, 'STRIPE_API_BASE'],
    [{ STRIPE_SUCCESS_URL: `javascript://u:${pw}@x` }, 'STRIPE_SUCCESS_URL'],
    [{ DATABASE_URL: `mysql://ctfhive:${pw}@db/ctfhive` }, 'DATABASE_URL'],
    [{ NODE_ENV: 'production', SECRET_KEY: strong, PROVISION_AUDIT_SECRET: strong, STRIPE_SECRET_KEY: 'sk_live_x', STRIPE_WEBHOOK_SECRET: 'whsec_1', LINODE_API_TOKEN: 'linode-token-1', PUBLIC_BASE_URL: 'https://ctfhive.example', STRIPE_CANCEL_URL: `http://u:${pw}@ctfhive.example/pricing` }, 'STRIPE_CANCEL_URL']
  ]
  for (const [env, variable] of cases) {
    const message = refusal(env, variable)
    t.notMatch(message, pw, `${variable}: ${message}`)
  }
  t.match(refusal({ PUBLIC_BASE_URL: `https://user:${pw}@ctfhive.us` }, 'PUBLIC_BASE_URL'), /got "https:\/\/\*\*\*@ctfhive\.us"$/, 'the rest of the URL is shown')
})

t.test('Stripe keys must have the shape of their kind, and are never echoed', async (t) => {
  for (const key of ['sk_test_abc', 'sk_live_abc', 'rk_test_abc', 'rk_live_abc']) t.equal(loadConfig({ NODE_ENV: 'development', STRIPE_SECRET_KEY: key }).stripe.secretKey, key, key)
  const publishable = refusal({ STRIPE_SECRET_KEY: 'pk_test_hunter2' }, 'STRIPE_SECRET_KEY')
  t.match(publishable, /^STRIPE_SECRET_KEY: holds a publishable key \(pk_…\); it must be a secret key \(sk_…\) or a restricted key \(rk_…\)/)
  const webhook = refusal({ STRIPE_SECRET_KEY: 'whsec_hunter2' }, 'STRIPE_SECRET_KEY')
  t.match(webhook, /^STRIPE_SECRET_KEY: does not look like a Stripe secret key: it holds a webhook signing secret \(whsec_…\), which belongs in STRIPE_WEBHOOK_SECRET/)
  const other = refusal({ STRIPE_SECRET_KEY: 'hunter2' }, 'STRIPE_SECRET_KEY')
  t.match(other, /^STRIPE_SECRET_KEY: does not look like a Stripe secret key \(expected sk_test_…, sk_live_… or a restricted rk_…\)$/)
  for (const message of [publishable, webhook, other]) t.notMatch(message, 'hunter2')
  // With pk_live_ taken, the live-key rules never saw a live key at all.
  refusal({ NODE_ENV: 'production', SECRET_KEY: strong, PROVISION_AUDIT_SECRET: strong, STRIPE_SECRET_KEY: 'pk_live_x', STRIPE_WEBHOOK_SECRET: 'whsec_1' }, 'STRIPE_SECRET_KEY')

  t.same(loadConfig({ STRIPE_WEBHOOK_SECRET: 'whsec_a,whsec_b' }).stripe.webhookSecrets, ['whsec_a', 'whsec_b'])
  const one = refusal({ STRIPE_WEBHOOK_SECRET: 'sk_test_hunter2' }, 'STRIPE_WEBHOOK_SECRET')
  t.match(one, /^STRIPE_WEBHOOK_SECRET: is not a webhook signing secret: it must start with whsec_ .*; an API key \(sk_, rk_, pk_…\) does not go here$/)
  const second = refusal({ STRIPE_WEBHOOK_SECRET: 'whsec_a, hunter2' }, 'STRIPE_WEBHOOK_SECRET')
  t.match(second, /^STRIPE_WEBHOOK_SECRET: entry 2 of 2 is not a webhook signing secret: each must start with whsec_ \(the endpoint's signing secret in the Stripe dashboard, or the one stripe listen prints\)$/)
  for (const message of [one, second]) t.notMatch(message, 'hunter2')
})

t.test('numbers are decimal: no hex, binary or exponent', async (t) => {
  t.equal(loadConfig({ DEPROVISION_GRACE_HOURS: '1.5' }).deprovisionGraceHours, 1.5)
  t.equal(loadConfig({ DEPROVISION_GRACE_HOURS: ' 0 ' }).deprovisionGraceHours, 0)
  for (const raw of ['0x10', '0b101', '0o7', '1e3', '.5', '5.', '+5', 'Infinity']) {
    t.match(refusal({ DEPROVISION_GRACE_HOURS: raw }, 'DEPROVISION_GRACE_HOURS'), /^DEPROVISION_GRACE_HOURS: must be a decimal number from 0 to 87600 \(like 72 or 1\.5\), got "/, raw)
  }
  for (const raw of ['0x10', '1e3', '+80']) refusal({ PORT: raw }, 'PORT')
})

t.test('DOCS_SITE_DIR and MARKETING_DIST_DIR must not be files (absent is fine: not built yet)', async (t) => {
  const file = fileURLToPath(import.meta.url)
  for (const name of ['DOCS_SITE_DIR', 'MARKETING_DIST_DIR']) {
    t.match(refusal({ [name]: file }, name), new RegExp(`^${name}: must be a directory, and ".*config\\.test\\.ts" is a file \\(or lies under one\\)$`))
    refusal({ [name]: `${file}/site` }, name)
    t.ok(loadConfig({ [name]: '/nonexistent/ctfhive/site' }), `${name}: not built yet`)
  }
})

t.test('DOCS_SITE_DIR and MARKETING_DIST_DIR this process cannot look at stop the start with one line naming the reason, exit 78', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-dirs-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const loop = join(dir, 'loop')
  symlinkSync(loop, loop)
  const closed = join(dir, 'closed')
  mkdirSync(join(closed, 'site'), { recursive: true })
  const cases: Array<[string, string]> = [[join(loop, 'site'), 'ELOOP'], [join(dir, 'a'.repeat(300)), 'ENAMETOOLONG']]
  for (const name of ['DOCS_SITE_DIR', 'MARKETING_DIST_DIR']) {
    for (const [path, code] of cases) {
      t.match(refusal({ [name]: path }, name), new RegExp(`^${name}: ".*" cannot be read by this process \\(${code}: [^)]+\\)$`), `${name}: ${code}`)
    }
  }

  // As the operator meets it: not the static plugin's stack trace and exit 1.
  // As another user, without tap's NODE_OPTIONS: its exit hook would write into .tap/ as that user.
  const start = (env: Record<string, string>, uid?: number) => spawnSync(uid === undefined ? process.execPath : 'env', [...(uid === undefined ? [] : ['-u', 'NODE_OPTIONS', process.execPath]), 'api/server.ts'], {
    cwd: new URL('..', import.meta.url),
    env: { PATH: process.env.PATH ?? '', DATABASE_URL: `sqlite:${join(dir, 'ctfhive.db')}`, LOG_LEVEL: 'silent', ...env },
    encoding: 'utf8',
    timeout: 60_000,
    ...(uid === undefined ? {} : { uid, gid: uid })
  })
  const oneLine = (r: SpawnSyncReturns<string>, line: RegExp, what: string) => {
    t.equal(r.status, 78, `${what}: exit 78 (EX_CONFIG)`)
    t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line: ${r.stderr}`)
    t.match(r.stderr, line, what)
  }
  oneLine(start({ DOCS_SITE_DIR: join(loop, 'site') }), /^ctfhive: configuration error: DOCS_SITE_DIR: ".*" cannot be read by this process \(ELOOP: /, 'a symlink loop')
  oneLine(start({ MARKETING_DIST_DIR: join(dir, 'a'.repeat(300)) }), /^ctfhive: configuration error: MARKETING_DIST_DIR: ".*" cannot be read by this process \(ENAMETOOLONG: /, 'a name too long')

  // A directory above it this user may not search (root may search any: the server runs as nobody).
  const uid = process.getuid?.()
  if (uid === 0) {
    chmodSync(dir, 0o700)
    oneLine(start({ DOCS_SITE_DIR: join(closed, 'site') }, 65534), /^ctfhive: configuration error: DOCS_SITE_DIR: ".*" cannot be read by this process \(EACCES: a directory on the way is not searchable/, 'no permission')
  } else {
    chmodSync(closed, 0)
    t.teardown(() => { chmodSync(closed, 0o700) })
    t.match(refusal({ MARKETING_DIST_DIR: join(closed, 'site') }, 'MARKETING_DIST_DIR'), /\(EACCES: a directory on the way is not searchable/)
  }
})
