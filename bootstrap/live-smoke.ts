#!/usr/bin/env node
// The live smoke test: exactly one real Stripe call — a Checkout Session made by the app's own
// POST /billing/checkout — proves the wiring to the REST API; then every supported webhook
// handler runs in-process with validly signed events and each outcome is checked. The only
// Stripe-side artefact is an unpaid session that expires on its own, so it is safe to re-run.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { constants as osConstants, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../api/app.ts'
import { ConfigError, loadConfig, type Config } from '../api/config.ts'
import { stripeKeyMode, SUPPORTED_EVENTS } from '../api/billing/events.ts'
import { StripeError } from '../api/billing/stripe-client.ts'
import { signPayload } from '../api/billing/signature.ts'
import { getPlan, PAID_PLANS } from '../api/plans.ts'
import { verifyStoredChain } from '../api/provisioning/audit.ts'
import { FakeExecutor } from '../api/provisioning/fake.ts'
import { SqliteStore } from '../api/store/sqlite.ts'
import type { Io } from './stripe-bootstrap.ts'
import { renderTable } from './table.ts'
import { isMain, refuseRepeated, runCli } from './cli-output.ts'

type Env = Record<string, string | undefined>

export const USAGE = `Usage: npm run smoke:live -- [--plan solo|standard|pro]

Makes ONE real Stripe call (a Checkout Session through POST /billing/checkout, in-process),
then drives every supported webhook handler with validly signed events against a temporary
database and a fake executor, and prints a table of expected and actual outcomes.

Environment: STRIPE_SECRET_KEY (a secret key, sk_test_… or rk_test_…; a live one needs ALLOW_LIVE=1),
STRIPE_PRICE_<PLAN> (from the bootstrap), STRIPE_WEBHOOK_SECRET (optional; a throwaway
secret is generated otherwise), STRIPE_API_VERSION, STRIPE_API_BASE.
Exit status: 0 every check passed, 1 a check failed, 2 refused or misconfigured,
130/143 interrupted (SIGINT/SIGTERM; the temporary database is removed).
`

/** Why the smoke test must not run with this key, or null. The message never holds the key. */
export function smokeKeyProblem (key: string, allowLive: boolean): string | null {
  if (key === '') return 'STRIPE_SECRET_KEY is not set: export a test key (sk_test_… or rk_test_…).'
  if (key.startsWith('pk_')) return 'STRIPE_SECRET_KEY holds a publishable key (pk_…); the smoke test needs a secret key (sk_test_… or rk_test_…).'
  if (/^(sk|rk)_test_/.test(key) || allowLive) return null
  return 'refusing to run: STRIPE_SECRET_KEY is not a test key (sk_test_… or rk_test_…). Set ALLOW_LIVE=1 to run against live mode anyway; it creates one unpaid Checkout Session that expires on its own.'
}

interface Check { step: string, expected: string, got: string, ok: boolean }

interface Expect { status: string | number, state?: string, plan?: string }

export function formatTable (checks: readonly Check[]): string {
  return renderTable(['#', 'step', 'expected', 'got', 'result'], checks.map((c, i) => [String(i + 1), c.step, c.expected, c.got, c.ok ? 'OK' : 'FAIL']))
}

class Driver {
  readonly checks: Check[] = []
  readonly sent = new Set<string>()
  private readonly app: FastifyInstance
  private readonly secret: string
  private readonly apiVersion: string
  private readonly livemode: boolean
  private readonly run = randomBytes(4).toString('hex')
  private clock = Math.floor(Date.now() / 1000)
  private n = 0

  /** `livemode`: the key's mode, as Stripe marks its events (the app ignores the other mode's). */
  constructor (app: FastifyInstance, secret: string, apiVersion: string, livemode: boolean) {
    this.app = app
    this.secret = secret
    this.apiVersion = apiVersion
    this.livemode = livemode
  }

  id (prefix: string): string {
    return `${prefix}_smoke_${this.run}_${++this.n}`
  }

  check (step: string, expected: string, got: string): boolean {
    const ok = expected === got
    this.checks.push({ step, expected, got, ok })
    return ok
  }

  event (type: string, object: Record<string, unknown>): Record<string, unknown> {
    // Strictly increasing `created`, so no step is judged stale by accident.
    return { id: this.id('evt'), object: 'event', type, created: ++this.clock, api_version: this.apiVersion, livemode: this.livemode, data: { object } }
  }

  async deliver (step: string, event: Record<string, unknown>, expect: Expect, header?: string): Promise<void> {
    const body = JSON.stringify(event)
    this.sent.add(String(event.type))
    const r = await this.app.inject({
      method: 'POST',
      url: '/billing/webhook',
      headers: { 'content-type': 'application/json', 'stripe-signature': header ?? signPayload(this.secret, body) },
      payload: body
    })
    const json = r.json() as Record<string, unknown>
    let expected = String(expect.status)
    let got = r.statusCode === 200 ? String(json.status) : `${r.statusCode} ${String(json.error)}`
    if (expect.state !== undefined) {
      expected += ` / ${expect.state}`
      got += ` / ${String(json.tenant_state)}`
    }
    if (expect.plan !== undefined) {
      const tenant = await this.app.tenants.getTenant(String(json.tenant_id))
      expected += ` / plan ${expect.plan}`
      got += ` / plan ${String(tenant?.plan)}`
    }
    this.check(step, expected, got)
  }
}

function invoiceFor (subscriptionId: string, apiVersion: string, id: string): Record<string, unknown> {
  // Only the subscription id, no metadata: the durable subscription index must find the tenant.
  const base = { id, object: 'invoice', customer: 'cus_smoke', status: 'paid' }
  return apiVersion >= '2025-03-31'
    ? { ...base, parent: { type: 'subscription_details', subscription_details: { subscription: subscriptionId, metadata: {} } } }
    : { ...base, subscription: subscriptionId }
}

/** Stripe's own words about the last failed call, from the app's error log, or undefined. */
type StripeSaid = () => string | undefined

async function drive (app: FastifyInstance, config: Config, secret: string, planSlug: string, io: Io, stripeSaid: StripeSaid): Promise<Check[]> {
  const d = new Driver(app, secret, config.stripe.apiVersion, stripeKeyMode(config.stripe.secretKey) === 'live')
  const say = (line: string): void => { io.stderr.write(`${line}\n`) }

  say('1 real Stripe call: POST /billing/checkout → Stripe Checkout Session')
  const r = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: planSlug, name: 'CTFHive live smoke' } })
  const body = r.json() as Record<string, any>
  const created = r.statusCode === 200 && body.status === 'checkout_created' && /^cs_/.test(String(body.session_id)) && /^https:\/\//.test(String(body.checkout_url))
  d.check('checkout session via POST /billing/checkout', '200 checkout_created',
    created ? '200 checkout_created' : `${r.statusCode} ${String(body.status ?? body.error)}: ${String(body.message ?? '')}${body.stripe_error !== undefined ? ` ${JSON.stringify(body.stripe_error)}` : ''}`)
  if (!created) {
    // The app answers only "stripe_checkout_failed"; the reason (an inactive price, a bad key) is Stripe's.
    const said = stripeSaid()
    if (said !== undefined) say(`  Stripe: ${said}`)
    return d.checks
  }
  say(`  session ${String(body.session_id)} (unpaid; it expires on its own)`)
  say('in-process: signed webhook events through POST /billing/webhook')

  const a = String(body.tenant_id)
  const sub = d.id('sub')
  const other = planSlug === 'pro' ? 'standard' : 'pro'
  const lookupKey = (slug: string): string | null => getPlan(slug)?.lookupKey ?? null
  const session = (tenant: string, paymentStatus: string, id = d.id('cs'), subscription: string | null = sub) => ({
    id, object: 'checkout.session', mode: 'subscription', status: 'complete', payment_status: paymentStatus,
    client_reference_id: tenant, customer: 'cus_smoke', customer_email: null, subscription,
    metadata: { plan: planSlug, tenant_id: tenant, name: 'CTFHive live smoke' }
  })
  const subscription = (status: string, slug: string) => ({
    id: sub, object: 'subscription', status, customer: 'cus_smoke', metadata: { tenant_id: a },
    items: { object: 'list', data: [{ id: d.id('si'), price: { id: d.id('price'), lookup_key: lookupKey(slug) } }] }
  })

  const completed = d.event('checkout.session.completed', session(a, 'paid', String(body.session_id)))
  await d.deliver('checkout completed (paid) → provisioned', completed, { status: 'ok', state: 'active' })
  const tampered = JSON.stringify(completed).replace('"paid"', '"free"')
  await d.deliver('forged signature rejected', JSON.parse(tampered), { status: '400 invalid_signature' }, signPayload(secret, JSON.stringify(completed)))
  await d.deliver('subscription created', d.event('customer.subscription.created', subscription('active', planSlug)), { status: 'ok', state: 'active', plan: planSlug })
  const paid = d.event('invoice.paid', invoiceFor(sub, config.stripe.apiVersion, d.id('in')))
  await d.deliver('invoice paid (renewal)', paid, { status: 'ok', state: 'active' })
  await d.deliver('invoice payment failed', d.event('invoice.payment_failed', invoiceFor(sub, config.stripe.apiVersion, d.id('in'))), { status: 'ok', state: 'past_due' })
  await d.deliver('invoice payment succeeded (recovered)', d.event('invoice.payment_succeeded', invoiceFor(sub, config.stripe.apiVersion, d.id('in'))), { status: 'ok', state: 'active' })
  await d.deliver(`plan change to ${other} (subscription updated)`, d.event('customer.subscription.updated', subscription('active', other)), { status: 'ok', state: 'active', plan: other })
  await d.deliver('subscription deleted → canceled', d.event('customer.subscription.deleted', subscription('canceled', other)), { status: 'ok', state: 'canceled' })
  await d.deliver('late invoice after cancel', d.event('invoice.paid', invoiceFor(sub, config.stripe.apiVersion, d.id('in'))), { status: 'ignored_terminal', state: 'canceled' })
  await d.deliver('redelivered event', paid, { status: 'duplicate' })

  // The asynchronous-payment paths, on pending tenants made in-process (no more Stripe calls).
  const pending = async (): Promise<string> => (await app.tenants.createPendingTenant({ name: 'CTFHive live smoke', email: '', plan: planSlug })).id
  const b = await pending()
  const bSession = session(b, 'unpaid', d.id('cs'), d.id('sub'))
  await d.deliver('checkout completed, payment pending', d.event('checkout.session.completed', bSession), { status: 'ok', state: 'provisioning' })
  await d.deliver('async payment succeeded', d.event('checkout.session.async_payment_succeeded', { ...bSession, payment_status: 'paid' }), { status: 'ok', state: 'active' })
  const c = await pending()
  await d.deliver('async payment failed', d.event('checkout.session.async_payment_failed', session(c, 'unpaid', d.id('cs'), null)), { status: 'ok', state: 'canceled' })
  const e = await pending()
  await d.deliver('checkout expired', d.event('checkout.session.expired', { ...session(e, 'unpaid', d.id('cs'), null), status: 'expired' }), { status: 'ok', state: 'canceled' })

  await d.deliver('invoice for an unknown subscription', d.event('invoice.paid', invoiceFor(d.id('sub'), config.stripe.apiVersion, d.id('in'))), { status: 'unmatched' })
  await d.deliver('unsupported event type', d.event('customer.created', { id: 'cus_smoke', object: 'customer' }), { status: 'ignored' })

  const missing = SUPPORTED_EVENTS.filter((type) => !d.sent.has(type))
  d.check('every supported event exercised', 'none missing', missing.length === 0 ? 'none missing' : `missing ${missing.join(', ')}`)
  const verdict = await verifyStoredChain(app.store, config.auditSecret)
  d.check('audit chain verifies', 'ok', verdict.ok ? 'ok' : `bad seq ${verdict.badSeq}: ${verdict.reason}`)
  return d.checks
}

export async function main (argv: string[], env: Env = process.env, io: Io = process): Promise<number> {
  const fail = (code: number, message: string): number => {
    io.stderr.write(`error: ${message}\n`)
    return code
  }
  let args
  try {
    const parsed = parseArgs({ args: argv, strict: true, allowPositionals: false, tokens: true, options: { plan: { type: 'string', default: 'solo' }, help: { type: 'boolean', short: 'h', default: false } } })
    refuseRepeated(parsed.tokens)
    args = parsed.values
  } catch (err) {
    return fail(2, `${(err as Error).message}\n\n${USAGE}`)
  }
  if (args.help) {
    io.stdout.write(USAGE)
    return 0
  }
  const plan = PAID_PLANS.find((p) => p.slug === args.plan)
  if (plan === undefined) return fail(2, `--plan must be one of ${PAID_PLANS.map((p) => p.slug).join(', ')}`)

  const key = (env.STRIPE_SECRET_KEY ?? '').trim()
  const problem = smokeKeyProblem(key, env.ALLOW_LIVE === '1')
  if (problem !== null) return fail(2, problem)
  const priceEnv = plan.stripePriceEnv!
  if ((env[priceEnv] ?? '').trim() === '') return fail(2, `${priceEnv} is not set: run \`npm run stripe:bootstrap\` and put its output in the environment.`)

  let dir: string
  try {
    dir = mkdtempSync(join(tmpdir(), 'ctfhive-smoke-'))
  } catch (err) {
    // TMPDIR missing, not a directory or not writable: the reason, without mkdtemp's name template.
    return fail(2, `cannot create a temporary directory in ${tmpdir()}: ${(err as Error).message.replace(/, mkdtemp '.*'$/s, '')}`)
  }

  const configured = (env.STRIPE_WEBHOOK_SECRET ?? '').split(',').map((s) => s.trim()).find((s) => s !== '')
  const secret = configured ?? `whsec_smoke_${randomBytes(24).toString('hex')}`
  if (configured === undefined) io.stderr.write('STRIPE_WEBHOOK_SECRET is not set: signing with a throwaway secret for the in-process app\n')

  let config: Config
  try {
    config = loadConfig({
      ...env,
      // A throwaway in-process app: its own database, no production guard, no rate limit.
      NODE_ENV: 'development',
      DATABASE_URL: `sqlite:${join(dir, 'smoke.db')}`,
      STRIPE_WEBHOOK_SECRET: secret,
      LOG_LEVEL: 'silent',
      CHECKOUT_RATE_LIMIT: '0',
      WEBHOOK_WAIT_MS: '5000',
      ADMIN_TOKEN: ''
    })
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    if (err instanceof ConfigError) return fail(2, err.message)
    throw err
  }

  const store = new SqliteStore({ path: join(dir, 'smoke.db') })
  let app: FastifyInstance | undefined
  // The app logs a failed Stripe call with its StripeError: keep that error, print no log line.
  let stripeError: StripeError | undefined
  const keepStripeError = (err: unknown): unknown => {
    if (err instanceof StripeError) stripeError = err
    return pino.stdSerializers.err(err as Error)
  }
  const stripeSaid: StripeSaid = () => {
    if (stripeError === undefined) return undefined
    const tags = [stripeError.code ?? '', stripeError.statusCode === null ? '' : `HTTP ${stripeError.statusCode}`].filter((x) => x !== '')
    const said = `${stripeError.message.replace(/\s+/g, ' ').trim()}${tags.length > 0 ? ` (${tags.join(', ')})` : ''}`
    return said.split(key).join('[redacted]')
  }
  const interrupt = onInterrupt(dir)
  try {
    const run = (async () => {
      // Never a real server: the fake executor, whatever LINODE_API_TOKEN says.
      app = await buildApp(config, {
        store,
        executor: new FakeExecutor(),
        logger: pino({ level: 'error', serializers: { err: keepStripeError } }, { write: () => {} }),
        jobs: { pollIntervalMs: 5, idleIntervalMs: 200, backoffMs: () => 10 }
      })
      await app.ready()
      return await drive(app, config, secret, plan.slug, io, stripeSaid)
    })()
    // Once interrupted, the run fails as its app and store close under it: no one's concern,
    // and left unhandled that rejection would end the process before the cleanup.
    run.catch(() => {})
    const checks = await Promise.race([run, interrupt.signalled])
    if (!Array.isArray(checks)) return 128 + osConstants.signals[checks]
    io.stdout.write(formatTable(checks))
    const failed = checks.filter((c) => !c.ok).length
    io.stdout.write(failed === 0 ? `all ${checks.length} checks OK\n` : `${failed} of ${checks.length} checks FAILED\n`)
    return failed === 0 ? 0 : 1
  } finally {
    try {
      await app?.close()
      await store.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
      interrupt.done(io)
    }
  }
}

interface Interrupt {
  /** Settles with the first SIGINT or SIGTERM; never rejects. */
  signalled: Promise<NodeJS.Signals>
  /** After the cleanup: stops listening, or, when a signal came, says so and ends the process. */
  done: (io: Io) => void
}

/**
 * Ctrl-C or SIGTERM during a run (Stripe not answering, say) must not leave the temporary
 * database behind: the first signal lets main close the app and the store and remove `dir`;
 * a second one, if that cleanup hangs, removes `dir` and exits at once.
 */
function onInterrupt (dir: string): Interrupt {
  let received: NodeJS.Signals | undefined
  let resolve: (signal: NodeJS.Signals) => void = () => {}
  const signalled = new Promise<NodeJS.Signals>((r) => { resolve = r })
  const status = (signal: NodeJS.Signals): number => 128 + osConstants.signals[signal]
  const handler = (signal: NodeJS.Signals): void => {
    if (received !== undefined) {
      rmSync(dir, { recursive: true, force: true })
      process.exit(status(received))
    }
    received = signal
    resolve(signal)
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
  return {
    signalled,
    done: (io) => {
      process.off('SIGINT', handler)
      process.off('SIGTERM', handler)
      if (received === undefined) return
      io.stderr.write(`interrupted (${received}): the temporary database is removed\n`)
      // The Stripe call still in flight would hold the process open until its timeout.
      process.exit(status(received))
    }
  }
}

if (isMain(import.meta)) await runCli(main)
