// Liveness and readiness: /healthz says the process answers, /readyz that the store does.
import type { FastifyInstance } from 'fastify'
import { Type } from '@fastify/type-provider-typebox'
import { AppError, ErrorReplySchema, RETRY_AFTER_HEADER } from '../errors.ts'

const BAD_REQUEST = 'bad_request: an HTTP/1.1 request without a Host header'

/**
 * Retry-After (seconds) of a 503 not_ready or shutting_down: a store that stopped answering
 * and a drain are both short, and a probe or client that waits longer only delays the recovery.
 */
export const UNAVAILABLE_RETRY_AFTER_S = 5
const retryAfter = { 'retry-after': String(UNAVAILABLE_RETRY_AFTER_S) }

export default async function healthRoutes (app: FastifyInstance): Promise<void> {
  app.get('/healthz', {
    logLevel: 'warn',
    schema: {
      summary: 'Liveness',
      operationId: 'healthz',
      tags: ['operations'],
      // The app's onRequest hook answers every request once closing has begun, and one
      // without Host (HTTP/1.1) with a 400.
      response: {
        200: Type.Object({ status: Type.Literal('ok') }),
        '4xx': { ...ErrorReplySchema, description: BAD_REQUEST },
        503: { ...ErrorReplySchema, headers: RETRY_AFTER_HEADER, description: 'shutting_down: the server is draining; retry on another connection' }
      }
    }
  }, async () => ({ status: 'ok' as const }))

  app.get('/readyz', {
    logLevel: 'warn',
    schema: {
      summary: 'Readiness: the store answers',
      operationId: 'readyz',
      tags: ['operations'],
      response: {
        200: Type.Object({ status: Type.Literal('ready'), store: Type.String() }),
        '4xx': { ...ErrorReplySchema, description: BAD_REQUEST },
        503: { ...ErrorReplySchema, headers: RETRY_AFTER_HEADER, description: 'not_ready: the store does not answer; shutting_down: the server is draining' }
      }
    }
  }, async (request) => {
    try {
      await app.store.ping()
    } catch (err) {
      request.log.error({ err }, 'store ping failed')
      throw new AppError('not_ready', 'The store is not reachable.', {}, retryAfter)
    }
    return { status: 'ready' as const, store: app.store.kind }
  })
}
