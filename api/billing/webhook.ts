// POST /billing/webhook. Its own encapsulated plugin, so only this route sees raw bytes:
// the signature is checked over exactly what Stripe sent, before anything else happens.
import type { FastifyInstance } from 'fastify'
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
    if (!verdict.ok) throw new AppError('invalid_signature', verdict.message, { reason: verdict.reason })

    const text = raw.toString('utf8')
    let event: unknown
    try {
      event = JSON.parse(text)
    } catch {
      throw new AppError('invalid_event', 'The body is not JSON.')
    }
    if (!isStripeEvent(event)) throw new AppError('invalid_event', 'The body is not a Stripe event object (id, type, created, data.object).')

    // Answered 200 so Stripe stops sending it, and not recorded, as an unsupported type is not:
    // a live server must not bill for a test event, nor a test one provision for a live one.
    if (otherModeThanKey(event, keyMode)) {
      request.log.warn({ event: event.id, type: event.type, livemode: event.livemode, key_mode: keyMode }, 'webhook event from the other Stripe mode than STRIPE_SECRET_KEY ignored')
      return { status: 'ignored' as const, type: event.type, reason: 'livemode' }
    }

    try {
      const result = await tenants.handleEvent(event, text)
      request.log.info({ event: event.id, type: event.type, result: result.status }, 'webhook handled')
      return result
    } catch (err) {
      // Nothing was committed; a 500 makes Stripe deliver the event again later.
      request.log.error({ err, event: event.id, type: event.type }, 'webhook could not be stored')
      const message = err instanceof StoreError ? 'The event could not be stored; Stripe will retry.' : 'The event could not be processed; Stripe will retry.'
      throw new AppError('store_unavailable', message)
    }
  })
}
