// POST /billing/webhook. Its own encapsulated plugin, so only this route sees raw bytes:
// the signature is checked over exactly what Stripe sent, before anything else happens.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { AppError, errorReplies } from '../errors.ts'
import { StoreError } from '../store/store.ts'
import { verifyStripeSignature } from './signature.ts'
import { isStripeEvent, otherModeThanKey, stripeKeyMode } from './events.ts'

export const WEBHOOK_BODY_LIMIT = 1024 * 1024

const WebhookReply = Type.Object({
  status: Type.Union(['ok', 'duplicate', 'stale', 'ignored_terminal', 'unmatched', 'ignored'].map((s) => Type.Literal(s))),
  type: Type.Optional(Type.String()),
  tenant_id: Type.Optional(Type.String()),
  tenant_state: Type.Optional(Type.String()),
  /** Why an `ignored` event was (`livemode`: from the other mode than STRIPE_SECRET_KEY). */
  reason: Type.Optional(Type.String())
})

/**
 * A refusal, logged once at warn: a mistyped or half-rotated STRIPE_WEBHOOK_SECRET, or a
 * skewed clock, stops all billing and must be told apart from forged posts. Neither the
 * signature header nor the body is logged; the event id only once the signature held.
 */
function refuse (request: FastifyRequest, code: 'invalid_signature' | 'invalid_event', reason: string, message: string, event?: unknown): AppError {
  const id = (event as { id?: unknown } | null | undefined)?.id
  request.log.warn({ code, reason, ...(typeof id === 'string' ? { event: id.slice(0, 255) } : {}) }, 'webhook refused')
  return new AppError(code, message, code === 'invalid_signature' ? { reason } : {})
}

export default async function webhookRoutes (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { config, tenants } = app
  const keyMode = stripeKeyMode(config.stripe.secretKey)

  // Every body arrives as a Buffer: verification decides, not the parser. Whatever the sender
  // declared is read as bytes: Fastify answers a Content-Type it cannot parse (empty, no
  // slash) with 415 before any parser, which would come before the signature.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: WEBHOOK_BODY_LIMIT }, (_req, body, done) => { done(null, body) })
  app.addHook('onRequest', async (request) => { request.headers['content-type'] = 'application/octet-stream' })

  app.post('/billing/webhook', {
    bodyLimit: WEBHOOK_BODY_LIMIT,
    schema: {
      summary: 'Stripe webhook endpoint (signed)',
      operationId: 'receiveStripeWebhook',
      tags: ['billing'],
      headers: Type.Object({ 'stripe-signature': Type.Optional(Type.String()) }),
      response: {
        200: WebhookReply,
        ...errorReplies({
          400: 'invalid_signature (with `reason`: no_secret, no_header, malformed, stale, no_match): nothing was read or written; invalid_event: a signed body that is not JSON or not a Stripe event',
          413: 'payload_too_large: a body over 1 MiB',
          500: 'store_unavailable: the event could not be stored, nothing was written; Stripe delivers it again'
        })
      }
    }
  }, async (request) => {
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0)
    const verdict = verifyStripeSignature({
      secrets: config.stripe.webhookSecrets,
      header: request.headers['stripe-signature'],
      rawBody: raw,
      toleranceS: config.stripe.webhookToleranceS
    })
    if (!verdict.ok) throw refuse(request, 'invalid_signature', verdict.reason, verdict.message)

    const text = raw.toString('utf8')
    let event: unknown
    try {
      event = JSON.parse(text)
    } catch {
      throw refuse(request, 'invalid_event', 'not_json', 'The body is not JSON.')
    }
    if (!isStripeEvent(event)) throw refuse(request, 'invalid_event', 'not_an_event', 'The body is not a Stripe event object (id, type, created, data.object).', event)

    // Answered 200 so Stripe stops sending it, and not recorded, as an unsupported type is not:
    // a live server must not bill for a test event, nor a test one provision for a live one.
    if (otherModeThanKey(event, keyMode)) {
      request.log.warn({ event: event.id, type: event.type, livemode: event.livemode, key_mode: keyMode }, 'webhook event from the other Stripe mode than STRIPE_SECRET_KEY ignored')
      return { status: 'ignored' as const, type: event.type, reason: 'livemode' }
    }

    try {
      const result = await tenants.handleEvent(event, text)
      // The tenant too, when there is one, so its story can be followed in the logs.
      const tenant = 'tenant_id' in result ? { tenant: result.tenant_id, tenant_state: result.tenant_state } : {}
      request.log.info({ event: event.id, type: event.type, result: result.status, ...tenant }, 'webhook handled')
      return result
    } catch (err) {
      // Nothing was committed; a 500 makes Stripe deliver the event again later.
      request.log.error({ err, event: event.id, type: event.type }, 'webhook could not be stored')
      const message = err instanceof StoreError ? 'The event could not be stored; Stripe will retry.' : 'The event could not be processed; Stripe will retry.'
      throw new AppError('store_unavailable', message)
    }
  })
}
