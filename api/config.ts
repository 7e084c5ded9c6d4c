// Environment → typed, validated Config, read once at start-up. Every variable has a safe
// development default so the app boots with nothing set; a bad value stops the process with
// one line naming the variable. The TypeBox schema documents the result and re-checks it.
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { isIP } from 'node:net'
import { fileURLToPath } from 'node:url'
import proxyAddr from '@fastify/proxy-addr'
import { BASE_DOMAIN_MAX_LENGTH, HOSTNAME } from './tenants/address.ts'
import { ConfigError, EX_CONFIG, apiBase, directory, httpUrl, int, isLoopback, listenError, num, shaped, str, withoutUserinfo, type Env } from './config-values.ts'

export { ConfigError, EX_CONFIG, isLoopback, listenError, withoutUserinfo }

export const DEFAULT_SECRET_KEY = 'dev-insecure-change-me'
export const DEFAULT_AUDIT_SECRET = 'audit-dev-secret'
/** marketing/dist of this checkout, wherever the process was started from. */
const DEFAULT_MARKETING_DIST = fileURLToPath(new URL('../marketing/dist/', import.meta.url))

/** LINODE_PLAN's value for each plan's own server type (api/plans.ts), resized on plan changes. */
export const PER_PLAN = 'per-plan'
/** DESIGN §4's LINODE_PLAN default: one server type for every plan. */
export const DEFAULT_LINODE_TYPE = 'g6-standard-2'
/** A Linode type id (g6-standard-2, g1-gpu-rtx6000-1): it goes in request paths and bodies. */
const LINODE_TYPE = /^[a-z0-9]+(-[a-z0-9]+)*$/

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

const ConfigSchema = Type.Object({
  nodeEnv: Type.String(),
  host: Type.String({ minLength: 1 }),
  port: Type.Integer({ minimum: 0, maximum: 65535 }),
  databaseUrl: Type.String({ pattern: '^(sqlite:|postgres(ql)?://)' }),
  secretKey: Type.String({ minLength: 1 }),
  // As the server's bootstrap takes it, with room for the longest slug in front.
  baseDomain: Type.String({ pattern: HOSTNAME.source, maxLength: BASE_DOMAIN_MAX_LENGTH }),
  /** The domain of the site's mailboxes (sales@, support@, billing@): CONTACT_DOMAIN, else BASE_DOMAIN. */
  contactDomain: Type.String({ pattern: HOSTNAME.source }),
  publicBaseUrl: Type.String(),
  stripe: Type.Object({
    secretKey: Type.String(),
    publishableKey: Type.String(),
    webhookSecrets: Type.Array(Type.String({ minLength: 1 })),
    prices: Type.Record(Type.String(), Type.String()),
    apiVersion: Type.String({ minLength: 1 }),
    apiBase: Type.String(),
    successUrl: Type.String(),
    cancelUrl: Type.String(),
    webhookToleranceS: Type.Integer({ minimum: 1 })
  }),
  auditSecret: Type.String({ minLength: 1 }),
  linode: Type.Object({
    token: Type.String(),
    region: Type.String({ minLength: 1 }),
    /** `per-plan`: each plan's own server type (api/plans.ts); any other value: the type of every plan. */
    plan: Type.Union([Type.Literal(PER_PLAN), Type.String({ pattern: LINODE_TYPE.source })]),
    /** LINODE_PLAN given but empty: older releases read that as per-plan (app.ts warns at start). */
    planGivenEmpty: Type.Boolean(),
    image: Type.String({ minLength: 1 }),
    apiBase: Type.String()
  }),
  adminToken: Type.String(),
  deprovisionGraceHours: Type.Number({ minimum: 0 }),
  provisionAttemptTimeoutS: Type.Integer({ minimum: 60, maximum: 1800 }),
  provisionHealthTimeoutS: Type.Integer({ minimum: 60, maximum: 86400 }),
  provisionMaxAttempts: Type.Integer({ minimum: 1, maximum: 50 }),
  webhookWaitMs: Type.Integer({ minimum: 0, maximum: 10000 }),
  docsSiteDir: Type.String({ minLength: 1 }),
  marketingDistDir: Type.String({ minLength: 1 }),
  logLevel: Type.Union(LOG_LEVELS.map((l) => Type.Literal(l))),
  trustProxy: Type.Union([Type.Boolean(), Type.Integer({ minimum: 0 }), Type.String()]),
  checkoutRateLimit: Type.Integer({ minimum: 0 }),
  pg: Type.Object({
    poolSize: Type.Integer({ minimum: 1, maximum: 200 }),
    statementTimeoutMs: Type.Integer({ minimum: 0 })
  })
})

export type Config = Static<typeof ConfigSchema>

/**
 * The site's own origin. The app serves the site at the root, so a path would only make every
 * canonical link and sitemap entry a 404; the host is written as browsers and crawlers see it.
 */
function publicOrigin (env: Env): string {
  const raw = httpUrl(env, 'PUBLIC_BASE_URL', 'http://localhost:3000')
  const url = new URL(raw)
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new ConfigError('PUBLIC_BASE_URL', `must be an origin only (scheme, host and port; the site is served at the root), got ${JSON.stringify(withoutUserinfo(raw))}`)
  }
  return url.origin
}

function trustProxy (env: Env): boolean | number | string {
  const raw = str(env, 'TRUST_PROXY', 'false')
  if (raw === 'true') return true
  if (raw === 'false') return false
  if (/^\d+$/.test(raw)) return Number(raw)
  // A comma-separated list of addresses or CIDRs, as Fastify's trustProxy accepts: compiled
  // here by the same library, so a typo stops the start with this line, not a stack trace.
  try {
    proxyAddr.compile(raw.split(',').map((part) => part.trim()))
  } catch (err) {
    throw new ConfigError('TRUST_PROXY', `must be true, false, a number of proxy hops, or a comma-separated list of addresses, CIDRs, loopback, linklocal or uniquelocal (${(err as Error).message})`)
  }
  return raw
}

function logLevel (env: Env): Config['logLevel'] {
  const raw = str(env, 'LOG_LEVEL', 'info')
  if (!(LOG_LEVELS as readonly string[]).includes(raw)) throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(raw)}`)
  return raw as Config['logLevel']
}

function databaseUrl (env: Env): string {
  const given = str(env, 'DATABASE_URL', 'sqlite:./data/ctfhive.db')
  // A scheme is case-insensitive: written as the store adapters look for it.
  const scheme = /^(sqlite:|postgres(ql)?:\/\/)/i.exec(given)?.[0]
  if (scheme === undefined) {
    // Only the scheme is shown: the rest may hold a password.
    const other = /^[a-z][a-z0-9+.-]*:/i.exec(given)?.[0]
    throw new ConfigError('DATABASE_URL', `must be sqlite:<file> (like sqlite:./data/ctfhive.db or sqlite:///absolute/path.db) or postgres://user:password@host:5432/db, got ${other === undefined ? 'no scheme' : `a ${other} URL`}`)
  }
  const raw = scheme.toLowerCase() + given.slice(scheme.length)
  // node:sqlite opens an empty path as a temporary database and :memory: as one in memory:
  // every tenant would be lost at exit, never what is meant.
  if (/^sqlite:(\/\/)?$/.test(raw)) throw new ConfigError('DATABASE_URL', 'names no database file: use sqlite:./data/ctfhive.db or sqlite:///absolute/path.db')
  if (/^sqlite:(\/\/)?:memory:$/.test(raw)) throw new ConfigError('DATABASE_URL', 'is an in-memory database, lost with every tenant at exit: use a file, like sqlite:./data/ctfhive.db')
  // Else the driver says only "Invalid URL" at every restart. Not echoed: it holds a password.
  if (raw.startsWith('postgres') && !URL.canParse(raw)) {
    throw new ConfigError('DATABASE_URL', 'is not a valid postgres:// URL: check the port (1–65535) and percent-encode @ : / ? # in the user name and password')
  }
  return raw
}

/** The apex of tenant addresses, as the server's bootstrap takes it (a final dot, as in DNS, dropped). */
function baseDomain (env: Env): string {
  const raw = domainName(env, 'BASE_DOMAIN', 'ctfhive.us')
  if (raw.length > BASE_DOMAIN_MAX_LENGTH) {
    throw new ConfigError('BASE_DOMAIN', `must be at most ${BASE_DOMAIN_MAX_LENGTH} characters, so that a 63-character slug and its dot still fit in a 253-character address; it has ${raw.length}`)
  }
  return raw
}

/** A DNS name (lower case, a final dot dropped), refused with a line saying what is wrong with it. */
function domainName (env: Env, name: string, fallback: string): string {
  const given = str(env, name, fallback).toLowerCase()
  const raw = given.endsWith('.') ? given.slice(0, -1) : given
  const got = `, got ${JSON.stringify(given)}`
  if (raw.includes('://')) throw new ConfigError(name, `must be a domain name only, like ctfhive.us, without a scheme${got}`)
  if (/[/:]/.test(raw)) throw new ConfigError(name, `must be a domain name only, like ctfhive.us, without a port or path${got}`)
  if (raw.includes('@')) throw new ConfigError(name, `must be a domain name only, like ctfhive.us, without a mailbox name before an @${got}`)
  if (!HOSTNAME.test(raw)) {
    throw new ConfigError(name, `must be a domain name like ctfhive.us: two or more dot-separated labels of letters, digits and hyphens (no hyphen at either end, 63 characters at most), the last one letters or an IDN's xn--… form${got}`)
  }
  return raw
}

/** A listen address: an IP literal or a host name that resolves to one of this machine's. */
function listenHost (env: Env): string {
  const raw = str(env, 'HOST', '127.0.0.1')
  if (isIP(raw) !== 0) return raw
  // Labels of letters, digits, hyphens (and underscores, as some container names have); a
  // last label of digits only is a mistyped IP address, not a name.
  const name = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/i
  if (!name.test(raw) || /(^|\.)\d+\.?$/.test(raw)) {
    throw new ConfigError('HOST', `must be an IP address (127.0.0.1 for this machine only, 0.0.0.0 or :: for every interface) or a host name, got ${JSON.stringify(raw)}`)
  }
  return raw
}

/** Stripe's secret (sk_…) or restricted (rk_…) key; the value is never echoed. */
function stripeSecretKey (env: Env): string {
  const key = shaped(env, 'STRIPE_SECRET_KEY', '', /^[!-~]+$/, 'one word of printable ASCII (it goes in a header)', true)
  if (key === '' || /^(sk|rk)_/.test(key)) return key
  if (key.startsWith('pk_')) {
    throw new ConfigError('STRIPE_SECRET_KEY', 'holds a publishable key (pk_…); it must be a secret key (sk_…) or a restricted key (rk_…), from the Stripe dashboard, Developers → API keys')
  }
  if (key.startsWith('whsec_')) {
    throw new ConfigError('STRIPE_SECRET_KEY', 'does not look like a Stripe secret key: it holds a webhook signing secret (whsec_…), which belongs in STRIPE_WEBHOOK_SECRET; expected sk_… or rk_…')
  }
  throw new ConfigError('STRIPE_SECRET_KEY', 'does not look like a Stripe secret key (expected sk_test_…, sk_live_… or a restricted rk_…)')
}

/** The endpoints' signing secrets; only a whsec_… one can ever verify a signature. Never echoed. */
function stripeWebhookSecrets (env: Env): string[] {
  const secrets = str(env, 'STRIPE_WEBHOOK_SECRET', '').split(',').map((s) => s.trim()).filter(Boolean)
  secrets.forEach((secret, i) => {
    if (secret.startsWith('whsec_')) return
    const which = secrets.length === 1 ? 'is not a webhook signing secret: it' : `entry ${i + 1} of ${secrets.length} is not a webhook signing secret: each`
    const apiKey = /^(sk|rk|pk)_/.test(secret) ? '; an API key (sk_, rk_, pk_…) does not go here' : ''
    throw new ConfigError('STRIPE_WEBHOOK_SECRET', `${which} must start with whsec_ (the endpoint's signing secret in the Stripe dashboard, or the one stripe listen prints)${apiKey}`)
  })
  return secrets
}

export function loadConfig (env: Env = process.env): Config {
  const publicBaseUrl = publicOrigin(env)
  const prices: Record<string, string> = {}
  for (const slug of ['solo', 'standard', 'pro']) {
    const name = `STRIPE_PRICE_${slug.toUpperCase()}`
    prices[name] = str(env, name, '')
  }
  const apex = baseDomain(env)
  const config: Config = {
    nodeEnv: str(env, 'NODE_ENV', 'development'),
    host: listenHost(env),
    port: int(env, 'PORT', 3000, 0, 65535),
    databaseUrl: databaseUrl(env),
    secretKey: str(env, 'SECRET_KEY', DEFAULT_SECRET_KEY),
    baseDomain: apex,
    contactDomain: domainName(env, 'CONTACT_DOMAIN', apex),
    publicBaseUrl,
    stripe: {
      secretKey: stripeSecretKey(env),
      publishableKey: str(env, 'STRIPE_PUBLISHABLE_KEY', ''),
      webhookSecrets: stripeWebhookSecrets(env),
      prices,
      apiVersion: shaped(env, 'STRIPE_API_VERSION', '2024-06-20', /^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$/, "a Stripe API version like 2024-06-20 or 2025-03-31.basil"),
      apiBase: apiBase(env, 'STRIPE_API_BASE', 'https://api.stripe.com', '/v1'),
      successUrl: str(env, 'STRIPE_SUCCESS_URL', `${publicBaseUrl}/billing/success?session_id={CHECKOUT_SESSION_ID}`),
      cancelUrl: str(env, 'STRIPE_CANCEL_URL', `${publicBaseUrl}/pricing`),
      webhookToleranceS: int(env, 'STRIPE_WEBHOOK_TOLERANCE_S', 300, 1, 86400)
    },
    auditSecret: str(env, 'PROVISION_AUDIT_SECRET', DEFAULT_AUDIT_SECRET),
    linode: {
      token: shaped(env, 'LINODE_API_TOKEN', '', /^[!-~]+$/, 'one word of printable ASCII (it is sent as a bearer token)', true),
      region: str(env, 'LINODE_REGION', 'us-east'),
      plan: shaped(env, 'LINODE_PLAN', DEFAULT_LINODE_TYPE, LINODE_TYPE, `${PER_PLAN} (each plan's own server type) or one Linode type id for every plan, like ${DEFAULT_LINODE_TYPE}`),
      planGivenEmpty: env.LINODE_PLAN !== undefined && env.LINODE_PLAN.trim() === '',
      image: str(env, 'LINODE_IMAGE', 'linode/debian12'),
      apiBase: apiBase(env, 'LINODE_API_BASE', 'https://api.linode.com/v4')
    },
    adminToken: shaped(env, 'ADMIN_TOKEN', '', /^[!-~]+$/, 'one word of printable ASCII (it is sent as a bearer token)', true),
    // Ten years is "never" for a teardown, and its time stays a valid date.
    deprovisionGraceHours: num(env, 'DEPROVISION_GRACE_HOURS', 72, 0, 87_600),
    provisionAttemptTimeoutS: int(env, 'PROVISION_ATTEMPT_TIMEOUT_S', 300, 60, 1800),
    provisionHealthTimeoutS: int(env, 'PROVISION_HEALTH_TIMEOUT_S', 1800, 60, 86400),
    provisionMaxAttempts: int(env, 'PROVISION_MAX_ATTEMPTS', 5, 1, 50),
    webhookWaitMs: int(env, 'WEBHOOK_WAIT_MS', 2000, 0, 10000),
    docsSiteDir: directory('DOCS_SITE_DIR', str(env, 'DOCS_SITE_DIR', 'docs-site/site')),
    marketingDistDir: directory('MARKETING_DIST_DIR', str(env, 'MARKETING_DIST_DIR', DEFAULT_MARKETING_DIST)),
    logLevel: logLevel(env),
    trustProxy: trustProxy(env),
    checkoutRateLimit: int(env, 'CHECKOUT_RATE_LIMIT', 20, 0, 1_000_000),
    pg: {
      poolSize: int(env, 'PG_POOL_SIZE', 10, 1, 200),
      statementTimeoutMs: int(env, 'PG_STATEMENT_TIMEOUT_MS', 15000, 0, 3_600_000)
    }
  }

  for (const [name, url] of [['STRIPE_SUCCESS_URL', config.stripe.successUrl], ['STRIPE_CANCEL_URL', config.stripe.cancelUrl]] as const) {
    // Checkout sends the buyer there: only a web address (not javascript:, ftp:…) can be one.
    if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) throw new ConfigError(name, `must be an absolute http(s) URL, got ${JSON.stringify(withoutUserinfo(url))}`)
  }
  // Our return page needs the session to fulfil and hand out the welcome link; without the
  // placeholder every paying buyer would land on "we cannot find this checkout".
  if (new URL(config.stripe.successUrl).pathname.endsWith('/billing/success') && !config.stripe.successUrl.includes('{CHECKOUT_SESSION_ID}')) {
    throw new ConfigError('STRIPE_SUCCESS_URL', `points at /billing/success without session_id={CHECKOUT_SESSION_ID}, which Stripe fills in and the page needs, got ${JSON.stringify(withoutUserinfo(config.stripe.successUrl))}`)
  }
  const firstError = Value.Errors(ConfigSchema, config).First()
  if (firstError) throw new ConfigError(pathToVariable(firstError.path), firstError.message)
  const production = productionRules(env, config)
  if (production !== null) checkProduction(config, production)
  return config
}

const PATH_TO_VARIABLE: Record<string, string> = {
  '/host': 'HOST',
  '/databaseUrl': 'DATABASE_URL',
  '/baseDomain': 'BASE_DOMAIN',
  '/contactDomain': 'CONTACT_DOMAIN',
  '/logLevel': 'LOG_LEVEL',
  '/stripe/apiVersion': 'STRIPE_API_VERSION',
  '/linode/region': 'LINODE_REGION',
  '/linode/plan': 'LINODE_PLAN',
  '/linode/image': 'LINODE_IMAGE',
  '/docsSiteDir': 'DOCS_SITE_DIR',
  '/marketingDistDir': 'MARKETING_DIST_DIR'
}

function pathToVariable (path: string): string {
  return PATH_TO_VARIABLE[path] ?? path
}

const LIVE_KEY = /^(sk|rk)_live_/

/**
 * Whether the production rules apply, as the refusal puts it (null: they do not). A live
 * Stripe key takes real money, so NODE_ENV unset or mistyped ('prod', 'Production') does not
 * start it on the development defaults; only NODE_ENV=development or test, said outright,
 * does (the operator tools load their settings so: a tool run is not a server start).
 */
function productionRules (env: Env, config: Config): string | null {
  if (config.nodeEnv === 'production') return 'in production'
  const given = env.NODE_ENV?.trim() ?? ''
  if (!LIVE_KEY.test(config.stripe.secretKey) || given === 'development' || given === 'test') return null
  return `in production (a live STRIPE_SECRET_KEY means production unless NODE_ENV is development or test; NODE_ENV is ${given === '' ? 'unset' : JSON.stringify(given)})`
}

/** Production refuses defaults and weak secrets: a leaked dev default would sign real links. */
function checkProduction (config: Config, where: string): void {
  if (config.secretKey === DEFAULT_SECRET_KEY || config.secretKey.length < 32) {
    throw new ConfigError('SECRET_KEY', `must be set to a random value of at least 32 characters ${where}`)
  }
  if (config.auditSecret === DEFAULT_AUDIT_SECRET || config.auditSecret.length < 32) {
    throw new ConfigError('PROVISION_AUDIT_SECRET', `must be set to a random value of at least 32 characters ${where}`)
  }
  if (config.stripe.secretKey !== '' && config.stripe.webhookSecrets.length === 0) {
    // Say where the value comes from: a first deploy meets this before it has one.
    throw new ConfigError('STRIPE_WEBHOOK_SECRET', `must be set when STRIPE_SECRET_KEY is set ${where} (printed by npm run stripe:bootstrap, or the Stripe Dashboard → Webhooks → the endpoint's signing secret)`)
  }
  // Without a token servers are only pretended (the in-memory FakeExecutor): real buyers would
  // be told their CTF is live. A test key may stage the whole flow without Linode.
  if (LIVE_KEY.test(config.stripe.secretKey) && config.linode.token === '') {
    throw new ConfigError('LINODE_API_TOKEN', `must be set when STRIPE_SECRET_KEY is a live key ${where}: without it no server is made, only pretended`)
  }
  // Checkout sends paying buyers back there: the development default (localhost) or plain
  // http would strand them on a page that is not ours, or not there.
  if (LIVE_KEY.test(config.stripe.secretKey)) {
    for (const [name, url] of [['PUBLIC_BASE_URL', config.publicBaseUrl], ['STRIPE_SUCCESS_URL', config.stripe.successUrl], ['STRIPE_CANCEL_URL', config.stripe.cancelUrl]] as const) {
      const parsed = new URL(url)
      if (parsed.protocol !== 'https:' || isLoopback(parsed.hostname)) {
        throw new ConfigError(name, `must be a public https:// address when STRIPE_SECRET_KEY is a live key ${where} (Checkout returns buyers there), got ${JSON.stringify(withoutUserinfo(url))}`)
      }
    }
  }
  // The operator API can retry jobs, replay events and list every tenant: no guessable token.
  if (config.adminToken !== '' && config.adminToken.length < 32) {
    throw new ConfigError('ADMIN_TOKEN', `must be a random value of at least 32 characters ${where} (or empty: operator API off)`)
  }
}

export function stripeConfigured (config: Config): boolean {
  return config.stripe.secretKey !== ''
}

/** Values that must never appear in a log line, an error body or an audit entry. */
export function secretValues (config: Config): string[] {
  return [
    config.secretKey,
    config.auditSecret,
    config.stripe.secretKey,
    ...config.stripe.webhookSecrets,
    config.linode.token,
    config.adminToken
  ].filter((v) => v.length >= 8)
}
