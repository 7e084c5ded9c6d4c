import t from 'tap'
import { fileURLToPath } from 'node:url'
import { loadConfig, ConfigError, secretValues, stripeConfigured } from '../api/config.ts'

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
  t.equal(loadConfig({ DATABASE_URL: 'sqlite::memory:' }).databaseUrl, 'sqlite::memory:')
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
    [{ STRIPE_CANCEL_URL: 'ftp://example.org/pricing' }, 'STRIPE_CANCEL_URL'],
    [{ LINODE_API_BASE: 'linode' }, 'LINODE_API_BASE'],
    [{ STRIPE_API_VERSION: '2024-06-20 x' }, 'STRIPE_API_VERSION'],
    [{ STRIPE_API_VERSION: 'latest' }, 'STRIPE_API_VERSION'],
    [{ STRIPE_SECRET_KEY: 'sk_test_abc def' }, 'STRIPE_SECRET_KEY'],
    [{ STRIPE_SECRET_KEY: 'sk_test_ünï' }, 'STRIPE_SECRET_KEY'],
    [{ LINODE_API_TOKEN: 'abc def' }, 'LINODE_API_TOKEN'],
    [{ LINODE_API_TOKEN: 'tökenwithumlaut' }, 'LINODE_API_TOKEN']
  ]
  for (const [env, variable] of bad) {
    t.equal(variableOf(env), variable, variable)
  }
  t.throws(() => loadConfig({ STRIPE_SECRET_KEY: 'sk_test_abc hunter2' }), { message: /^STRIPE_SECRET_KEY: (?!.*hunter2)/ }, 'a malformed key is not echoed')
  t.throws(() => loadConfig({ LINODE_API_TOKEN: 'abc\nhunter2' }), { message: /^LINODE_API_TOKEN: (?!.*hunter2)/ }, 'a malformed Linode token is not echoed')
  t.equal(loadConfig({ STRIPE_API_VERSION: '2025-03-31.basil' }).stripe.apiVersion, '2025-03-31.basil', 'named versions are fine')
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
  refuse({ ADMIN_TOKEN: 'admin' }, 'ADMIN_TOKEN')
  refuse({ ADMIN_TOKEN: 'z'.repeat(31) }, 'ADMIN_TOKEN')
  t.ok(loadConfig({ ...base, ADMIN_TOKEN: 'z'.repeat(32) }), 'a long admin token is fine')
  const live = { STRIPE_SECRET_KEY: 'sk_live_x', STRIPE_WEBHOOK_SECRET: 'whsec_1' }
  refuse(live, 'LINODE_API_TOKEN')
  refuse({ ...live, STRIPE_SECRET_KEY: 'rk_live_x' }, 'LINODE_API_TOKEN')
  t.throws(() => loadConfig({ ...base, ...live }), { message: /^LINODE_API_TOKEN: must be set when STRIPE_SECRET_KEY is a live key in production/ }, 'servers would only be pretended')
  t.ok(loadConfig({ ...base, ...live, LINODE_API_TOKEN: 'linode-token-1' }))
  t.ok(loadConfig({ ...base, STRIPE_SECRET_KEY: 'sk_test_x', STRIPE_WEBHOOK_SECRET: 'whsec_1' }), 'a test key may stage the flow on the fake executor')
  t.ok(loadConfig({ SECRET_KEY: 'short', ...live }), 'development allows anything')
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
  const read = new Set([...source.matchAll(/(?:str|int|num|httpUrl|shaped)\(env, '([A-Z_]+)'/g)].map((m) => m[1]!))
  for (const shapedOne of ['STRIPE_SECRET_KEY', 'STRIPE_API_VERSION', 'ADMIN_TOKEN']) t.ok(read.has(shapedOne), `${shapedOne} is found where the config reads it`)
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
