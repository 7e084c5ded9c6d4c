// Liveness and readiness: /healthz says the process answers, /readyz that the store does.
import type { FastifyInstance } from 'fastify'
import { Type } from '@fastify/type-provider-typebox'
import { AppError, ErrorReplySchema, RETRY_AFTER_HEADER } from '../errors.ts'
import { StoreRefusesWrites } from '../store/store.ts'

const BAD_REQUEST = 'bad_request: an HTTP/1.1 request without a Host header'

/**
 * Retry-After (seconds) of a 503 not_ready or shutting_down: a store that stopped answering
 * and a drain are both short, and a probe or client that waits longer only delays the recovery.
 */
export const UNAVAILABLE_RETRY_AFTER_S = 5
const retryAfter = { 'retry-after': String(UNAVAILABLE_RETRY_AFTER_S) }
/**
 * While readiness stays bad, its error is logged again at most this often: a load balancer
 * probing every second or two through an outage would otherwise write a stack a probe.
 */
export const NOT_READY_LOG_INTERVAL_MS = 60_000

export default async function healthRoutes (app: FastifyInstance): Promise<void> {
  /** When readiness turned bad (null while ready), and when that was last logged. */
  let failingSince: number | null = null
  let loggedAt = 0
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
        503: { ...ErrorReplySchema, headers: RETRY_AFTER_HEADER, description: 'not_ready: the store does not answer, or refuses writes (PostgreSQL read-only, or a standby); shutting_down: the server is draining' }
      }
    }
  }, async () => {
    try {
      await app.store.ping()
    } catch (err) {
      // app.log, not the request's: the route logs only warnings, and the recovery is info.
      const now = Date.now()
      if (failingSince === null || now - loggedAt >= NOT_READY_LOG_INTERVAL_MS) {
        app.log.error({ err, failing_s: failingSince === null ? 0 : Math.round((now - failingSince) / 1000) },
          failingSince === null ? 'store ping failed: not ready' : 'store ping still failing: not ready')
        loggedAt = now
      }
      failingSince ??= now
      const message = err instanceof StoreRefusesWrites ? `The store refuses writes: ${err.why}.` : 'The store is not reachable.'
      throw new AppError('not_ready', message, {}, retryAfter)
    }
    if (failingSince !== null) {
      app.log.info({ failed_s: Math.round((Date.now() - failingSince) / 1000) }, 'store ping answers again: ready')
      failingSince = null
    }
    return { status: 'ready' as const, store: app.store.kind }
  })
}
