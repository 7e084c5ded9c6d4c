// One place for error codes and the error body shape. Callers branch on `code`, never on
// message text. Every error body is {"error": "<snake_code>", "message": "…", …extra}.

export const ERROR_CODES = {
  invalid_request: 400,
  bad_request: 400,
  bad_url: 400,
  invalid_json: 400,
  invalid_signature: 400,
  invalid_event: 400,
  unknown_plan: 400,
  plan_requires_contact: 400,
  stripe_not_configured: 503,
  unauthorized: 401,
  forbidden: 403,
  cross_site_request: 403,
  not_found: 404,
  tenant_not_found: 404,
  event_not_found: 404,
  method_not_allowed: 405,
  request_timeout: 408,
  conflict: 409,
  link_expired: 410,
  tenant_not_ready: 409,
  precondition_failed: 412,
  credential_unavailable: 404,
  credential_unreadable: 502,
  payload_too_large: 413,
  uri_too_long: 414,
  unsupported_media_type: 415,
  range_not_satisfiable: 416,
  expectation_failed: 417,
  rate_limited: 429,
  header_too_large: 431,
  internal_error: 500,
  store_unavailable: 500,
  stripe_checkout_failed: 502,
  stripe_unavailable: 502,
  price_not_configured: 503,
  docs_not_built: 503,
  site_not_built: 503,
  not_ready: 503,
  shutting_down: 503
} as const

export type ErrorCode = keyof typeof ERROR_CODES

export interface ErrorBody {
  error: ErrorCode
  message: string
  [extra: string]: unknown
}

export class AppError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly extra: Record<string, unknown>
  readonly headers: Record<string, string>

  constructor (code: ErrorCode, message: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
    super(message)
    this.name = 'AppError'
    this.code = code
    this.statusCode = ERROR_CODES[code]
    this.extra = extra
    this.headers = headers
  }

  toBody (): ErrorBody {
    return { error: this.code, message: this.message, ...this.extra }
  }
}

export function errorBody (code: ErrorCode, message: string, extra: Record<string, unknown> = {}): ErrorBody {
  return { error: code, message, ...extra }
}

export function isAppError (err: unknown): err is AppError {
  return err instanceof AppError
}

/** The JSON Schema of an error reply, for route schemas and the OpenAPI document. */
export const ErrorReplySchema = {
  type: 'object',
  required: ['error', 'message'],
  properties: {
    error: { type: 'string' },
    message: { type: 'string' }
  },
  additionalProperties: true
} as const

/** What any route may answer besides its own errors (the HTTP layer's refusals, the drain). */
const ANY_4XX = 'Any route: bad_request (a request HTTP cannot read), bad_url (a path whose percent-escapes do not decode), header_too_large, uri_too_long, payload_too_large, request_timeout, method_not_allowed, expectation_failed (an Expect other than 100-continue)'
const ANY_5XX = 'Any route: internal_error, store_unavailable (the store failed; nothing was written), shutting_down (503, Retry-After: the server is draining)'

/** A reply schema's `headers` (read by @fastify/swagger): when to ask again, in seconds. */
export const RETRY_AFTER_HEADER = { 'retry-after': { type: 'integer', description: 'seconds to wait before asking again' } } as const

type ReplyHeaders = Record<string, { type: string, description?: string }>

/** The drain's 503 may answer any route: its 503 and 5xx replies carry Retry-After. */
const SHUTTING_DOWN = 'shutting_down (Retry-After): the server is draining'

/**
 * A route's error replies for its schema, and so for /openapi.json: each status the route
 * answers of its own, described by the codes it carries (`{ 404: 'tenant_not_found: …' }`).
 * Statuses in `html` also answer a browser (Accept: text/html) with a page; `headers` are the
 * response headers a status sends (`{ 429: RETRY_AFTER_HEADER }`).
 */
// Typed by the ranges alone: the statuses inside them stay numbers a handler may send.
export function errorReplies (statuses: Record<number, string>, opts: { html?: number[], headers?: Record<number, ReplyHeaders> } = {}): { '4xx': typeof ErrorReplySchema, '5xx': typeof ErrorReplySchema } {
  const replies: Record<string, unknown> = {}
  for (const [status, own] of Object.entries(statuses)) {
    const drain = status === '503'
    const description = drain ? `${own}; ${SHUTTING_DOWN}` : own
    const headers = { ...(drain ? RETRY_AFTER_HEADER : {}), ...opts.headers?.[Number(status)] }
    const withHeaders = Object.keys(headers).length > 0 ? { headers } : {}
    replies[status] = opts.html?.includes(Number(status)) === true
      ? { description: `${description}. A browser gets a page with the same status`, ...withHeaders, content: { 'application/json': { schema: ErrorReplySchema }, 'text/html': { schema: { type: 'string' } } } }
      : { ...ErrorReplySchema, ...withHeaders, description }
  }
  replies['4xx'] = { ...ErrorReplySchema, description: ANY_4XX }
  replies['5xx'] = { ...ErrorReplySchema, headers: RETRY_AFTER_HEADER, description: ANY_5XX }
  return replies as { '4xx': typeof ErrorReplySchema, '5xx': typeof ErrorReplySchema }
}

/** The field and a readable sentence for a schema failure (Fastify's `err.validation`). */
export function validationMessage (err: {
  message: string
  validation?: Array<{ instancePath?: string, keyword?: string, message?: string, params?: unknown }>
  validationContext?: string
}): { message: string, field: string } {
  const first = err.validation?.[0]
  const context = err.validationContext ?? 'body'
  const path = first?.instancePath?.replace(/^\//, '').replace(/\//g, '.') ?? ''
  const params = first?.params as { missingProperty?: string, additionalProperty?: string } | undefined
  const named = params?.missingProperty ?? params?.additionalProperty
  const field = named ?? (path !== '' ? path : context)
  // A union of literals (a state, an outcome) fails once per literal with "must be equal to
  // constant": name the values it takes instead.
  const allowed = first?.keyword === 'const'
    ? (err.validation ?? []).filter((e) => e.keyword === 'const' && e.instancePath === first.instancePath).map((e) => (e.params as { allowedValue?: unknown }).allowedValue)
    : []
  const said = allowed.length > 1 ? `must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}` : first?.message ?? err.message
  return { field, message: `${context}${field !== context ? `.${field}` : ''}: ${said}` }
}
