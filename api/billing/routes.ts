// Checkout and the return from Checkout. Thin: validate, call the service, map the result.
import { join } from 'node:path'
import formbody from '@fastify/formbody'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { AppError, RETRY_AFTER_HEADER, errorReplies, isAppError, validationMessage } from '../errors.ts'
import { getPlan } from '../plans.ts'
import { stripeConfigured } from '../config.ts'
import { welcomePath } from '../tenants/welcome-token.ts'
import { StripeError } from './stripe-client.ts'
import { encodeTyped, typedCookie } from '../web/typed-values.ts'
import { parseForm } from '../request-bodies.ts'
import { NAME_MAX_LENGTH, NAME_PATTERN } from '../tenants/name.ts'
import { CHECKOUT_RETURN_ERRORS, type CheckoutReturnError } from '../web/buyer-text.ts'
import { prefersHtml, sendMessagePage } from '../web/headers.ts'
import { CHECKOUT_RETURN_FILE } from '../web/site-pages.ts'
import { readBuiltPage } from '../web/marketing.ts'

/** How long a link back from Checkout opens the order: two days past the session's creation. */
export const CHECKOUT_RETURN_MAX_AGE_S = 2 * 86_400

const CheckoutBody = Type.Object({
  plan: Type.String({ minLength: 1, maxLength: 200, description: 'Plan slug from the catalogue, e.g. "standard"' }),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: NAME_MAX_LENGTH, pattern: NAME_PATTERN, description: 'Event name; becomes the CTF address. No control characters, line separators or bidirectional overrides, and at least one visible character' })),
  email: Type.Optional(Type.String({ format: 'email', maxLength: 254 }))
})

const CheckoutReply = Type.Object({
  status: Type.Union([Type.Literal('checkout_created'), Type.Literal('checkout_not_configured')]),
  tenant_id: Type.String(),
  plan: Type.String(),
  message: Type.Optional(Type.String()),
  checkout_url: Type.Optional(Type.String()),
  session_id: Type.Optional(Type.String()),
  welcome_url: Type.Optional(Type.String())
})

/** A 303 in the OpenAPI document: no body, only where to go. */
const redirectReply = (description: string, headers = {}) => Type.Null({ description, headers: { location: Type.String(), ...headers } })

/** The per-client limit's refusal says when to try again. */
const RATE_LIMITED = { headers: { 429: RETRY_AFTER_HEADER } }

/** A form post: media types are case-insensitive (RFC 9110). */
function isForm (request: FastifyRequest): boolean {
  return (request.headers['content-type'] ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded')
}

/** A plain HTML form post (no script): answer with redirects instead of JSON. */
function wantsRedirect (request: FastifyRequest): boolean {
  return isForm(request) && prefersHtml(request)
}

/**
 * A checkout another site's page posts to ours: it would choose the event name and the email
 * Checkout then locks for the buyer (and their CTF's administrator). Browsers say where a
 * request comes from: Sec-Fetch-Site, or, in older ones, only Origin ("null" when the page's
 * referrer policy withholds it, as ours does). Programs send neither, and JSON cannot come
 * across sites at all without CORS, which this server never allows. "same-site" is no better
 * than another site: every tenant's CTF runs at <slug>.BASE_DOMAIN, with pages its buyer
 * writes, so there only our own Origin is taken.
 */
function crossSite (request: FastifyRequest, publicHost: string): boolean {
  const site = request.headers['sec-fetch-site']
  if (site === 'cross-site') return true
  if (site === 'same-origin' || site === 'none') return false
  const origin = request.headers.origin
  if (origin === undefined || origin === 'null') return site === 'same-site'
  try {
    const host = new URL(origin).host
    return host !== publicHost && host !== request.headers.host
  } catch {
    return true
  }
}

// Values are trimmed. An empty form field means "not given" (a browser sends every input),
// not "invalid"; an empty string in JSON was sent on purpose, and the schema judges it.
function trimFields (request: FastifyRequest, _reply: FastifyReply, done: () => void): void {
  const body = request.body as Record<string, unknown> | undefined
  const form = isForm(request)
  if (body !== null && typeof body === 'object') {
    for (const [k, v] of Object.entries(body)) {
      if (typeof v === 'string') {
        const trimmed = v.trim()
        if (trimmed === '' && form) delete body[k]
        else body[k] = trimmed
      }
    }
  }
  done()
}

export default async function billingRoutes (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  // JSON (the app's) and forms are taken here; anything else is a 415.
  await app.register(formbody, { parser: parseForm })
  const { config, tenants } = app
  const publicHost = new URL(config.publicBaseUrl).host
  // CHECKOUT_RATE_LIMIT a minute per client; each route counts its own (rate-limit-store.ts).
  const perClientLimit = config.checkoutRateLimit > 0 ? { max: config.checkoutRateLimit, timeWindow: 60_000 } : false

  app.post('/billing/checkout', {
    // Counted once the small body is read, so a form the limit refuses comes back with the
    // buyer's plan and what they typed, not the default plan (a shared school address hits it).
    config: { rateLimit: perClientLimit === false ? false : { ...perClientLimit, hook: 'preHandler' as const } },
    // Before the body is read: a refused form leaves nothing of itself (no typed values).
    onRequest: async (request) => {
      if (crossSite(request, publicHost)) throw new AppError('cross_site_request', 'A checkout cannot be started from another website; use the form on this site.')
    },
    preValidation: trimFields,
    // A plain form post goes back to the form on every refusal (a schema failure, the rate
    // limit's, thrown before the body is read, our own): the form shows the message. JSON
    // clients get the error as usual.
    errorHandler: (err, request, reply) => {
      if (!wantsRedirect(request) || (err.validation === undefined && !isAppError(err))) throw err
      const body = (request.body ?? {}) as Record<string, unknown>
      const plan = typeof body.plan === 'string' ? body.plan : undefined
      // Back to the form with what was typed (web/typed-values.ts).
      const typed = encodeTyped(body)
      if (typed !== undefined) {
        const cookie = typedCookie(config.publicBaseUrl)
        reply.setCookie(cookie.name, typed, cookie.options)
      }
      if (err.validation !== undefined) {
        const { field } = validationMessage(err)
        return reply.redirect(`/register?plan=${encodeURIComponent(plan ?? '')}&error=invalid_request&field=${encodeURIComponent(field)}`, 303)
      }
      const field = isAppError(err) && typeof err.extra.field === 'string' ? `&field=${encodeURIComponent(err.extra.field)}` : ''
      return reply.redirect(`/register?${plan === undefined ? '' : `plan=${encodeURIComponent(plan)}&`}error=${err.code}${field}`, 303)
    },
    schema: {
      summary: 'Start a checkout for a plan',
      operationId: 'createCheckout',
      tags: ['billing'],
      consumes: ['application/json', 'application/x-www-form-urlencoded'],
      body: CheckoutBody,
      response: {
        200: CheckoutReply,
        303: redirectReply("A plain form post (Accept: text/html): to Stripe Checkout (to the welcome page without Stripe), or back to /register with the error's code (with Retry-After when rate limited)", RETRY_AFTER_HEADER),
        ...errorReplies({
          400: 'invalid_request (with `field`): a body the schema refuses, or an email Stripe refuses; invalid_json; unknown_plan; plan_requires_contact: a plan sold through our team',
          403: 'cross_site_request: posted from another website',
          415: 'unsupported_media_type: neither JSON nor a form',
          429: 'rate_limited: past CHECKOUT_RATE_LIMIT a minute from one client (Retry-After)',
          502: 'stripe_checkout_failed (with `stripe_error`): Stripe refused or did not answer; nothing was kept',
          503: "price_not_configured: the plan's Stripe price is not set"
        }, RATE_LIMITED)
      }
    }
  }, async (request, reply) => {
    const { plan: slug, name, email } = request.body
    const plan = getPlan(slug)
    if (plan === undefined) throw new AppError('unknown_plan', `There is no plan called "${slug}".`, { plan: slug })
    if (plan.ctaKind === 'contact') {
      throw new AppError('plan_requires_contact', `The ${plan.name} plan is sold through our team: contact us.`, { plan: slug })
    }
    const configured = stripeConfigured(config)
    const priceId = config.stripe.prices[plan.stripePriceEnv!] ?? ''
    // Checked before a tenant exists, so a misconfiguration leaves nothing behind.
    if (configured && priceId === '') {
      throw new AppError('price_not_configured', `set ${plan.stripePriceEnv} (run the bootstrap CLI)`, { plan: slug })
    }
    const tenant = await tenants.createPendingTenant({ name: name ?? 'ctfhive-event', email: email ?? '', plan: plan.slug })
    const welcomeUrl = welcomePath(config.secretKey, tenant.id)
    if (!configured || app.stripe === null) {
      if (wantsRedirect(request)) return reply.redirect(welcomeUrl, 303)
      return {
        status: 'checkout_not_configured' as const,
        message: 'Stripe is not configured; created a pending tenant.',
        tenant_id: tenant.id,
        plan: plan.slug,
        welcome_url: welcomeUrl
      }
    }
    let session: { id: string, url: string }
    try {
      session = await app.stripe.createCheckoutSession({
        mode: 'subscription',
        line_items: [{ price: priceId, quantity: 1 }],
        client_reference_id: tenant.id,
        metadata: { plan: plan.slug, tenant_id: tenant.id, name: tenant.name },
        subscription_data: { metadata: { tenant_id: tenant.id } },
        customer_email: email,
        success_url: config.stripe.successUrl,
        cancel_url: config.stripe.cancelUrl
      }, `ctfhive-checkout-${tenant.id}`)
    } catch (err) {
      // An address our schema took and Stripe refuses is the buyer's to fix, not ours to retry.
      const badEmail = err instanceof StripeError && err.type === 'invalid_request_error' && err.param === 'customer_email'
      request.log[badEmail ? 'info' : 'error']({ err, tenant: tenant.id }, 'stripe checkout failed')
      await tenants.removePendingTenant(tenant.id, badEmail ? 'email refused by stripe' : 'stripe checkout failed')
      if (badEmail) throw new AppError('invalid_request', 'body.email: Stripe does not accept this email address.', { field: 'email' })
      const extra = err instanceof StripeError ? { stripe_error: { type: err.type, code: err.code } } : {}
      throw new AppError('stripe_checkout_failed', 'Stripe could not start the checkout; please try again.', extra)
    }
    if (wantsRedirect(request)) return reply.redirect(session.url, 303)
    return { status: 'checkout_created' as const, tenant_id: tenant.id, plan: plan.slug, checkout_url: session.url, session_id: session.id }
  })

  /** The site's frame for a message page, when the site is built (web/headers.ts sendMessagePage). */
  const returnFrame = (): string | undefined => {
    try {
      return readBuiltPage(join(config.marketingDistDir, CHECKOUT_RETURN_FILE))
    } catch {
      return undefined
    }
  }

  app.get('/billing/success', {
    // Each answer costs a Stripe request: one client must not spend the account's quota.
    config: { rateLimit: perClientLimit },
    // The buyer's browser, back from Checkout, gets a page with the way on, with the same
    // status; programs (and every other failure) the JSON error as usual. A mangled session id
    // is as good as an unknown one to the buyer.
    errorHandler: (err, request, reply) => {
      const code = err.validation !== undefined ? 'not_found' : isAppError(err) ? err.code : undefined
      if (!prefersHtml(request) || code === undefined || !Object.hasOwn(CHECKOUT_RETURN_ERRORS, code)) throw err
      const text = CHECKOUT_RETURN_ERRORS[code as CheckoutReturnError]
      const again = `/billing/success?session_id=${encodeURIComponent(String((request.query as { session_id?: unknown }).session_id ?? ''))}`
      if (isAppError(err)) reply.headers(err.headers)
      reply.code(err.statusCode ?? 500)
      return sendMessagePage(reply, config, {
        heading: text.heading,
        text: text.text,
        actions: text.links.map((l) => ({ href: l.href ?? again, label: l.label }))
      }, returnFrame())
    },
    schema: {
      summary: 'Return from Stripe Checkout: fulfil the order, then go to the welcome page',
      operationId: 'returnFromCheckout',
      tags: ['billing'],
      querystring: Type.Object({ session_id: Type.String({ pattern: '^cs_[A-Za-z0-9_]{1,250}$' }) }),
      response: {
        303: redirectReply('To the welcome page (/welcome?tenant=<id>&token=<signed>) once the order is found, else to /pricing'),
        ...errorReplies({
          400: 'invalid_request (`field: "session_id"`): missing, or not a Checkout Session id',
          404: 'not_found: a session Stripe does not know or refuses (another account or mode)',
          410: 'link_expired: a session made more than two days ago',
          429: 'rate_limited: past CHECKOUT_RATE_LIMIT a minute from one client (Retry-After)',
          502: 'stripe_unavailable: Stripe did not answer',
          503: 'stripe_not_configured: no STRIPE_SECRET_KEY'
        }, { html: [400, 404, 410, 429, 502], ...RATE_LIMITED })
      }
    }
  }, async (request, reply) => {
    if (app.stripe === null) throw new AppError('stripe_not_configured', 'Stripe is not configured on this server.')
    let session: Record<string, any>
    try {
      session = await app.stripe.retrieveCheckoutSession(request.query.session_id)
    } catch (err) {
      // Stripe answers a session id it cannot use (unknown, another account or mode) with 404 or 400.
      if (err instanceof StripeError && (err.statusCode === 404 || err.statusCode === 400)) throw new AppError('not_found', 'No such checkout session.')
      request.log.error({ err }, 'could not retrieve the checkout session')
      throw new AppError('stripe_unavailable', 'Stripe could not be reached; reload this page in a moment.')
    }
    // The session id is kept in the stored events: whoever reads the database (or a backup)
    // must not be able to turn an old one into the welcome link and its CTF admin password.
    // A buyer comes back from Checkout at once; Checkout Sessions live 24 h at most.
    if (typeof session.created !== 'number' || Date.now() / 1000 - session.created > CHECKOUT_RETURN_MAX_AGE_S) {
      throw new AppError('link_expired', 'This link back from Checkout has expired; open your order from its welcome link, or ask support for a new one.')
    }
    // Same idempotent fulfilment as checkout.session.completed: a late webhook never strands a buyer.
    const tenant = session.status === 'complete'
      ? await tenants.fulfilCheckoutSession(session)
      : await tenants.getTenant(String(session.metadata?.tenant_id ?? ''))
    if (tenant === undefined) return reply.redirect('/pricing', 303)
    return reply.redirect(welcomePath(config.secretKey, tenant.id), 303)
  })
}
