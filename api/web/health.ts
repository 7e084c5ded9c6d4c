// Liveness and readiness: /healthz says the process answers, /readyz that the store does.
import type { FastifyInstance } from 'fastify'
import { Type } from '@fastify/type-provider-typebox'
import { AppError, ErrorReplySchema } from '../errors.ts'

export default async function healthRoutes (app: FastifyInstance): Promise<void> {
  app.get('/healthz', {
    logLevel: 'warn',
    schema: {
      summary: 'Liveness',
      tags: ['operations'],
      // The app's onRequest hook answers every request once closing has begun.
      response: {
        200: Type.Object({ status: Type.Literal('ok') }),
        503: { ...ErrorReplySchema, description: 'shutting_down: the server is draining; retry on another connection' }
      }
    }
  }, async () => ({ status: 'ok' as const }))

  app.get('/readyz', {
    logLevel: 'warn',
    schema: {
      summary: 'Readiness: the store answers',
      tags: ['operations'],
      response: { 200: Type.Object({ status: Type.Literal('ready'), store: Type.String() }), 503: ErrorReplySchema }
    }
  }, async (request) => {
    try {
      await app.store.ping()
    } catch (err) {
      request.log.error({ err }, 'store ping failed')
      throw new AppError('not_ready', 'The store is not reachable.')
    }
    return { status: 'ready' as const, store: app.store.kind }
  })
}
