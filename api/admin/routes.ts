// Operator API under /admin/*, behind `Authorization: Bearer ADMIN_TOKEN`; off when unset
// (the routes are not registered, so every /admin path is a plain 404). The operations
// themselves live in tenants/admin.ts, shared with the `ctfhive` CLI.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { AppError, errorReplies } from '../errors.ts'
import { AUDIT_ANCHOR_PATTERN, parseAuditAnchor } from '../provisioning/audit.ts'
import { EVENT_OUTCOMES } from '../store/store.ts'
import { MAX_EVENT_CURSOR, MAX_PAGE, TenantAdmin } from '../tenants/admin.ts'
import { STATES } from '../tenants/lifecycle.ts'
import { TenantIdParams, TenantStatusSchema, lowercaseTenantId } from '../tenants/routes.ts'

const nullableString = Type.Union([Type.String(), Type.Null()])

const TenantRecordSchema = Type.Composite([TenantStatusSchema, Type.Object({
  email: Type.String(),
  slug: Type.String(),
  customer_id: nullableString,
  server_id: nullableString,
  ipv4: nullableString,
  dns_record_id: nullableString
})])

const EventSummarySchema = Type.Object({
  id: Type.String(),
  type: Type.String(),
  created: Type.Integer(),
  received: Type.String(),
  outcome: Type.String(),
  tenant: nullableString
})

const Detail = Type.Record(Type.String(), Type.Unknown())

const TenantDetailSchema = Type.Object({
  tenant: TenantRecordSchema,
  subscriptions: Type.Array(Type.Object({
    id: nullableString,
    status: Type.String(),
    status_at: Type.Integer(),
    plan: nullableString,
    plan_at: Type.Integer(),
    ended: Type.Boolean(),
    ended_at: Type.Integer(),
    end_reason: nullableString,
    paid: Type.Boolean()
  })),
  checkout_failed: Type.Union([Type.Object({ at: Type.Integer(), reason: Type.String() }), Type.Null()]),
  events: Type.Array(EventSummarySchema),
  audit: Type.Array(Type.Object({ seq: Type.Integer(), at: Type.String(), action: Type.String(), detail: Detail })),
  jobs: Type.Array(Type.Object({
    id: Type.Integer(),
    kind: Type.String(),
    status: Type.String(),
    step: Type.String(),
    step_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    attempts: Type.Integer(),
    last_error: nullableString,
    created_at: Type.String(),
    updated_at: Type.String()
  }))
})

const AuditVerdictSchema = Type.Object({
  ok: Type.Boolean(),
  entries: Type.Integer(),
  lastSeq: Type.Optional(Type.Integer()),
  lastMac: Type.Optional(Type.String()),
  badSeq: Type.Optional(Type.Integer()),
  problem: Type.Optional(Type.String()),
  reason: Type.Optional(Type.String())
})

// Printable ASCII, as Stripe's ids (and our replay ids) are: PostgreSQL's text refuses a NUL.
// Up to 300: a replay's id (`<id>:replay:<n>`) of a stored id of 255.
const EventIdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 300, pattern: '^[\\x21-\\x7e]+$' }) })

// Far past any real tenant count, and small enough that offset + limit stays an exact
// integer the stores bind as one (9223372036854775808 reached SQLite and was a 500).
export const MAX_OFFSET = 1_000_000

/** The 401's challenge (the onRequest hook below). */
const WWW_AUTHENTICATE = { 'www-authenticate': { type: 'string', description: 'Bearer realm="ctfhive-admin"' } }

/** Every admin route's errors (a bad parameter, a missing token) and its own. */
function errors (own: Record<number, string> = {}): ReturnType<typeof errorReplies> {
  return errorReplies({
    400: 'invalid_request (with `field`): a parameter the route does not take or of the wrong shape',
    401: 'unauthorized: no Authorization: Bearer <ADMIN_TOKEN>, or another token (WWW-Authenticate)',
    ...own
  }, { headers: { 401: WWW_AUTHENTICATE } })
}

/** A POST reads no body, but one sent is parsed as the app parses any: JSON or nothing. */
const BODY_400 = 'invalid_json: a body that is not JSON (or not UTF-8)'
const BODY_415 = { 415: 'unsupported_media_type: a body that is not JSON (none is needed)' }
const NOT_FOUND = { 404: 'tenant_not_found' }
/** For routes that take no query: a parameter sent anyway (a filter, say) is a mistake to report. */
const NoQuery = Type.Object({}, { additionalProperties: false })

function digest (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

/** Compares digests, so the time taken says nothing about the token, not even its length. */
export function bearerMatches (header: string | undefined, expected: Buffer): boolean {
  const match = /^Bearer +(\S+) *$/i.exec(header ?? '')
  const given = digest(match?.[1] ?? '')
  return timingSafeEqual(given, expected) && match !== null
}

/**
 * ajv's coercion turns a decimal too long for a double (`limit=9…9`, 400 digits) into Infinity
 * and then skips minimum and maximum (ajv-validator/ajv#2212; its strictNumbers option does not
 * cover coerced values), so a validated number may still be infinite: refuse it here. Only the
 * admin routes take numbers, so only they pay for the check.
 */
async function rejectNonFiniteNumbers (request: FastifyRequest): Promise<void> {
  for (const [part, values] of [['querystring', request.query], ['params', request.params]] as const) {
    if (values === null || typeof values !== 'object') continue
    for (const [field, value] of Object.entries(values)) {
      if ((Array.isArray(value) ? value : [value]).some((v) => typeof v === 'number' && !Number.isFinite(v))) {
        throw new AppError('invalid_request', `${part}.${field}: must be a finite number`, { field })
      }
    }
  }
}

/**
 * ajv coerces a query string's number as JavaScript reads one: `0x1f` is 31, `0b11` 3, `1e2`
 * 100, and a blank (`%20`) 0. The contract says a number there is read from its digits: any
 * other spelling of an integer parameter is refused before ajv sees it (a minus sign stays, so
 * that `-1` is told the range it misses).
 */
async function requireDecimalIntegers (request: FastifyRequest): Promise<void> {
  const properties = (request.routeOptions.schema?.querystring as { properties?: Record<string, { type?: unknown }> } | undefined)?.properties
  const query = request.query as Record<string, unknown> | null
  if (properties === undefined || query === null || typeof query !== 'object') return
  for (const [field, property] of Object.entries(properties)) {
    if (property.type !== 'integer' || query[field] === undefined) continue
    if ([query[field]].flat().some((v) => typeof v !== 'string' || !/^-?[0-9]+$/.test(v))) {
      throw new AppError('invalid_request', `querystring.${field}: must be an integer in decimal digits`, { field })
    }
  }
}

export default async function adminRoutes (fastify: FastifyInstance): Promise<void> {
  if (fastify.config.adminToken === '') return
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const expected = digest(app.config.adminToken)
  const admin = new TenantAdmin({ store: app.store, tenants: app.tenants, auditSecret: app.config.auditSecret, stripeSecretKey: app.config.stripe.secretKey })

  app.addHook('onRequest', async (request: FastifyRequest) => {
    if (!bearerMatches(request.headers.authorization, expected)) {
      throw new AppError('unauthorized', 'Send Authorization: Bearer <ADMIN_TOKEN>.', {}, { 'www-authenticate': 'Bearer realm="ctfhive-admin"' })
    }
  })
  app.addHook('preValidation', requireDecimalIntegers)
  app.addHook('preValidation', lowercaseTenantId)
  app.addHook('preHandler', rejectNonFiniteNumbers)

  const tags = ['admin']
  const security = [{ bearerAuth: [] }]

  app.get('/admin/tenants', {
    schema: {
      summary: 'List tenants, newest first, optionally in one state',
      operationId: 'adminListTenants',
      tags,
      security,
      querystring: Type.Object({
        state: Type.Optional(Type.Union(STATES.map((s) => Type.Literal(s)))),
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE, default: 50 })),
        // No default: an offset given with `after`, even 0, is refused, not read as "none".
        offset: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_OFFSET })),
        after: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: '^[A-Za-z0-9_-]+$', description: 'the `next` of the page before: the page after it, which tenants added or removed meanwhile do not shift' }))
      // A misspelt filter (?status=failed) must not quietly list every tenant.
      }, { additionalProperties: false }),
      response: {
        200: Type.Object({ total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer(), tenants: Type.Array(TenantRecordSchema), next: Type.Union([Type.String(), Type.Null()], { description: 'pass as `after` for the next page; null on the last' }) }),
        ...errors({ 400: 'invalid_request: a bad query, an `after` this server did not give out, or both `offset` and `after`' })
      }
    }
  }, async (request) => admin.listTenants(request.query))

  app.get('/admin/tenants/export', {
    schema: {
      summary: 'Every tenant as JSON (no secrets)',
      operationId: 'adminExportTenants',
      querystring: NoQuery,
      tags,
      security,
      response: { 200: Type.Object({ exported_at: Type.String(), count: Type.Integer(), tenants: Type.Array(TenantRecordSchema) }), ...errors() }
    }
  }, async () => {
    const tenants = await admin.exportTenants()
    return { exported_at: new Date().toISOString(), count: tenants.length, tenants }
  })

  app.get('/admin/tenants/:id', {
    schema: {
      summary: 'One tenant with its events, audit entries and jobs',
      operationId: 'adminGetTenant',
      querystring: NoQuery,
      tags,
      security,
      params: TenantIdParams,
      response: { 200: TenantDetailSchema, ...errors(NOT_FOUND) }
    }
  }, async (request) => admin.showTenant(request.params.id))

  app.get('/admin/tenants/:id/welcome-link', {
    schema: {
      summary: "A tenant's welcome link, for support to send its buyer (a bearer link: it opens the CTF administrator's password)",
      operationId: 'adminWelcomeLink',
      querystring: NoQuery,
      tags,
      security,
      params: TenantIdParams,
      response: { 200: Type.Object({ tenant_id: Type.String(), email: Type.String(), welcome_url: Type.String() }), ...errors(NOT_FOUND) }
    }
  }, async (request, reply) => {
    reply.header('cache-control', 'no-store')
    return admin.welcomeLink(request.params.id, app.config.secretKey, app.config.publicBaseUrl)
  })

  app.post('/admin/tenants/:id/retry', {
    schema: {
      summary: "Retry a tenant's failed provisioning or resize, or a canceled tenant's failed teardown",
      operationId: 'adminRetryTenant',
      querystring: NoQuery,
      tags,
      security,
      params: TenantIdParams,
      response: {
        200: TenantRecordSchema,
        ...errors({
          400: `invalid_request (with \`field\`): a parameter the route does not take or of the wrong shape; ${BODY_400}`,
          ...NOT_FOUND,
          409: 'conflict (with `state`): no failed provisioning, resize or teardown to retry',
          ...BODY_415
        })
      }
    }
  }, async (request) => {
    const id = request.params.id
    await admin.retry(id)
    // Like the webhook: wait briefly so a quick executor's result is in the answer.
    await app.jobs.waitForTenant(id, app.config.webhookWaitMs)
    return admin.tenantRecord(id)
  })

  app.get('/admin/audit/verify', {
    schema: {
      summary: 'Walk the audit chain and report the first bad entry',
      operationId: 'adminVerifyAudit',
      description: 'With `anchor` (`seq:mac`, a head an earlier verification answered, kept away from the database), the chain must also still reach that entry unchanged: entries cut from its end are found only so.',
      querystring: Type.Object({ anchor: Type.Optional(Type.String({ pattern: AUDIT_ANCHOR_PATTERN })) }, { additionalProperties: false }),
      tags,
      security,
      response: { 200: AuditVerdictSchema, ...errors() }
    }
  }, async (request) => admin.verifyAudit(request.query.anchor === undefined ? undefined : parseAuditAnchor(request.query.anchor)))

  app.get('/admin/events', {
    schema: {
      summary: 'Stripe events, the last received first, optionally of one outcome, a page at a time',
      operationId: 'adminListEvents',
      tags,
      security,
      querystring: Type.Object({
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE, default: 50 })),
        outcome: Type.Optional(Type.Union(EVENT_OUTCOMES.map((o) => Type.Literal(o)), { description: 'only the events of this outcome (`unmatched`: those to replay once their tenant exists)' })),
        after: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_EVENT_CURSOR, pattern: '^[A-Za-z0-9_-]+$', description: 'the `next` of the page before: the page after it' }))
      }, { additionalProperties: false }),
      response: {
        200: Type.Object({ events: Type.Array(EventSummarySchema), next: Type.Union([Type.String(), Type.Null()], { description: 'pass as `after` for the next page; null on the last' }) }),
        ...errors({ 400: 'invalid_request (with `field`): a bad query, or an `after` this server did not give out' })
      }
    }
  }, async (request) => admin.listEvents(request.query))

  app.post('/admin/events/:id/replay', {
    schema: {
      summary: "Run a stored event's payload through the webhook rules again",
      operationId: 'adminReplayEvent',
      querystring: NoQuery,
      description: 'Recorded as a new event `<id>:replay:<n>`; the tenant is looked up now, the event keeps its own `created` for ordering, and canceled stays terminal.',
      tags,
      security,
      params: EventIdParams,
      response: {
        200: Type.Object({
          event_id: Type.String(),
          replay_id: Type.String(),
          original_outcome: Type.String(),
          result: Type.Object({
            status: Type.String(),
            type: Type.Optional(Type.String()),
            tenant_id: Type.Optional(Type.String()),
            tenant_state: Type.Optional(Type.String())
          })
        }),
        ...errors({
          400: `invalid_request: an id that is not printable ASCII; invalid_event: the stored payload is not a Stripe event, or retention removed it; ${BODY_400}`,
          404: 'event_not_found',
          409: 'conflict: replayed too many times, or from the other Stripe mode than STRIPE_SECRET_KEY',
          ...BODY_415
        })
      }
    }
  }, async (request) => admin.replayEvent(request.params.id))
}
