// buildApp(config, deps): registers plugins and routes, never listens (server.ts does).
import { randomUUID } from 'node:crypto'
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifySchema, type FastifySchemaCompiler } from 'fastify'
import { AjvCompiler } from '@fastify/ajv-compiler'
import cookie from '@fastify/cookie'
import rateLimit from '@fastify/rate-limit'
import swagger from '@fastify/swagger'
import type { Logger } from 'pino'
import { PAID_PLANS } from './plans.ts'
import { DEFAULT_LINODE_TYPE, PER_PLAN, isLoopback, stripeConfigured, type Config } from './config.ts'
import { AppError, ERROR_CODES, errorBody, isAppError, validationMessage, type ErrorCode } from './errors.ts'
import { AccessLog, createLogger } from './logger.ts'
import { StoreError, type Store } from './store/store.ts'
import type { Executor } from './provisioning/executor.ts'
import { FakeExecutor } from './provisioning/fake.ts'
import { createExecutor } from './provisioning/select.ts'
import { JobRunner, type JobRunnerOptions } from './provisioning/jobs.ts'
import { TenantService } from './tenants/service.ts'
import { StripeClient } from './billing/stripe-client.ts'
import billingRoutes from './billing/routes.ts'
import { storeRateLimit } from './billing/rate-limit-store.ts'
import webhookRoutes from './billing/webhook.ts'
import tenantRoutes from './tenants/routes.ts'
import healthRoutes, { UNAVAILABLE_RETRY_AFTER_S } from './web/health.ts'
import adminRoutes from './admin/routes.ts'
import webRoutes, { sendSiteNotFound } from './web/site.ts'
import { BodyError, useStrictBodies } from './request-bodies.ts'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    store: Store
    executor: Executor
    jobs: JobRunner
    tenants: TenantService
    stripe: StripeClient | null
  }
}

export interface AppDeps {
  store: Store
  /** Default: LinodeExecutor when LINODE_API_TOKEN is set, else FakeExecutor. */
  executor?: Executor
  /** Default: a client for STRIPE_API_BASE when STRIPE_SECRET_KEY is set, else none. */
  stripe?: StripeClient | null
  /** Default: pino per config (tests pass one writing to a buffer). */
  logger?: Logger
  /** Job runner tuning (tests shorten polls and backoff). */
  jobs?: Partial<Pick<JobRunnerOptions, 'pollIntervalMs' | 'idleIntervalMs' | 'backoffMs' | 'bootGraceMs' | 'concurrency' | 'owner' | 'leaseMs' | 'planWaitMs' | 'planPollMs'>>
  /** Start the job runner when the app is ready (default true). */
  runJobs?: boolean
}

/**
 * Paths whose misses are JSON 404s: each of these, bare or with a query, and everything under
 * it. Everything else is the site's HTML 404.
 */
export const API_PREFIXES = ['/billing', '/tenants', '/admin', '/healthz', '/readyz', '/openapi.json']

function isApiPath (url: string): boolean {
  return API_PREFIXES.some((p) => url === p || url.startsWith(`${p}/`) || url.startsWith(`${p}?`))
}

/** The scheme and authority of an absolute-form target (`GET http://host/path`, as sent to a proxy). */
const ABSOLUTE_FORM = /^https?:\/\/[^/?#]*/i

/**
 * A request's target in origin form: an absolute-form target (RFC 9112 §3.2.2) as its path and
 * query. Everything after routing reads request.url (redirects, which 404 page), and a redirect
 * must stay on this site, never lead to the host a client wrote in the request line.
 */
function originForm (req: IncomingMessage): string {
  const url = req.url ?? '/'
  // Nearly every request: origin form already, and no expression run on it.
  if (url.startsWith('/')) return url
  const authority = ABSOLUTE_FORM.exec(url)
  if (authority === null) return url
  const rest = url.slice(authority[0].length)
  return rest.startsWith('/') ? rest : `/${rest}`
}

/** 4xx errors from plugins (@fastify/static's send) that have a code of their own. */
const PLUGIN_ERRORS = new Map<number, { code: ErrorCode, message: string }>([
  [403, { code: 'forbidden', message: 'This path may not be read.' }],
  [412, { code: 'precondition_failed', message: 'A conditional header of the request does not hold for this file.' }],
  [416, { code: 'range_not_satisfiable', message: 'The requested range lies outside the file.' }]
])

/**
 * The webhook's body, for /openapi.json only. The route has no body schema: Fastify would
 * validate the Buffer it reads, and the signature must be checked over the raw bytes first,
 * whatever the Content-Type.
 */
const WEBHOOK_BODY_DOC = {
  type: 'object',
  description: 'A Stripe event, exactly as Stripe sent it: read as raw bytes whatever the Content-Type, since Stripe-Signature covers those bytes. A body that is not a Stripe event (id, type, created, data.object) is 400 invalid_event.',
  required: ['id', 'type', 'created', 'data'],
  properties: {
    id: { type: 'string' },
    type: { type: 'string' },
    created: { type: 'integer' },
    livemode: { type: 'boolean' },
    data: { type: 'object', required: ['object'], properties: { object: { type: 'object' } } }
  },
  additionalProperties: true
} as const

/** Sent on every response (the onSend hook below), so declared on every reply in the document. */
const REQUEST_ID_HEADER = { 'x-request-id': { type: 'string', description: "the request's id in the logs: the client's X-Request-Id when a short printable word, else a new UUID" } }

/**
 * A route's schema as /openapi.json shows it: the webhook's body, and X-Request-Id on every
 * reply. New objects: the route's own schema still validates and serializes.
 */
function documentedSchema (schema: FastifySchema, url: string): FastifySchema {
  const doc: FastifySchema = url === '/billing/webhook' ? { ...schema, body: WEBHOOK_BODY_DOC } : { ...schema }
  const replies = schema.response as Record<string, { headers?: Record<string, unknown> }> | undefined
  if (replies !== undefined) {
    doc.response = Object.fromEntries(Object.entries(replies).map(([status, reply]) => [status, { ...reply, headers: { ...REQUEST_ID_HEADER, ...reply.headers } }]))
  }
  return doc
}

/** How often the store's clock is compared with this host's again. */
const CLOCK_SYNC_MS = 10 * 60_000
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const

/** The methods a route of its own takes at this URL; a static file's wildcard does not count. */
function allowedMethods (app: FastifyInstance, url: string): string[] {
  return METHODS.filter((method) => {
    const route = app.findRoute({ method, url })
    return route !== null && route.params['*'] === undefined
  })
}

/**
 * No route: 405 with Allow when the path takes other methods; else JSON for the API and for
 * methods other than GET or HEAD, the site's HTML page otherwise.
 */
function notFound (request: FastifyRequest, reply: FastifyReply): unknown {
  const path = request.url.split('?')[0]
  const allow = allowedMethods(request.server, request.url)
  // A route that sends its own miss (a hidden file) takes this very method: that is a 404.
  if (allow.length > 0 && !allow.includes(request.method)) {
    return reply.code(405).header('allow', allow.join(', ')).send(errorBody('method_not_allowed', `${path} takes ${allow.join(', ')}, not ${request.method}.`))
  }
  if (isApiPath(request.url) || (request.method !== 'GET' && request.method !== 'HEAD')) {
    return reply.code(404).send(errorBody('not_found', `No route for ${request.method} ${path}.`))
  }
  return sendSiteNotFound(request, reply)
}

/** Headers that describe a file's bytes (set before its stream failed), not an error's JSON. */
const FILE_HEADERS = ['content-type', 'content-length', 'content-encoding', 'content-range', 'etag', 'last-modified', 'accept-ranges']

/**
 * A static file whose read fails after its headers were set (EMFILE, a .br renamed away by a
 * rebuild): Fastify has already copied them to the raw response, so our JSON would go out as
 * that file, `Content-Encoding: br` included, or not at all (a JSON body under text/css).
 */
function dropFileHeaders (reply: FastifyReply): void {
  for (const name of FILE_HEADERS) reply.removeHeader(name)
  // An error is never cached, least of all for a fingerprinted file's year.
  if (reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store')
}

function handleError (err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  dropFileHeaders(reply)
  // No route, and a body that would not parse (bad JSON, a content type nobody takes), or
  // none at all where the method requires a Content-Type (QUERY): the miss is the answer,
  // whatever the body was.
  const bodyError = String(err.code).startsWith('FST_ERR_CTP_') || err.code === 'FST_ERR_ROUTE_MISSING_CONTENT_TYPE' || err instanceof BodyError
  if (request.is404 && bodyError) {
    void notFound(request, reply)
    return
  }
  if (isAppError(err)) {
    if (err.statusCode >= 500) request.log.warn({ code: err.code }, err.message)
    reply.headers(err.headers).code(err.statusCode).send(err.toBody())
    return
  }
  if (err.validation !== undefined) {
    const { field, message } = validationMessage(err)
    reply.code(400).send(errorBody('invalid_request', message, { field }))
    return
  }
  switch (err.code) {
    case 'FST_ERR_BAD_URL':
      reply.code(400).send(errorBody('bad_url', 'The URL path is not valid: it has a malformed percent-encoding.'))
      return
    case 'FST_ERR_MAX_PARAM_LENGTH':
      reply.code(414).send(errorBody('uri_too_long', 'A segment of the URL path is too long.'))
      return
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': {
      // What this route takes, as its schema declares it (checkout: JSON or a form).
      const consumes = (request.routeOptions.schema as { consumes?: string[] } | undefined)?.consumes ?? ['application/json']
      reply.code(415).send(errorBody('unsupported_media_type', `Send ${consumes.join(' or ')}.`))
      return
    }
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      reply.code(413).send(errorBody('payload_too_large', 'The request body is too large.'))
      return
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      reply.code(400).send(errorBody('invalid_json', 'The body is not valid JSON.'))
      return
  }
  if (err.statusCode === 429) {
    reply.code(429).send(errorBody('rate_limited', err.message))
    return
  }
  const known = err.statusCode === undefined ? undefined : PLUGIN_ERRORS.get(err.statusCode)
  if (known !== undefined) {
    // A 416 says which ranges exist (Content-Range: bytes */size).
    const range = (err as { headers?: Record<string, string> }).headers?.['Content-Range']
    if (range !== undefined) reply.header('content-range', range)
    reply.code(err.statusCode!).send(errorBody(known.code, known.message))
    return
  }
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
    reply.code(err.statusCode).send(errorBody('invalid_request', err.message))
    return
  }
  // The database, not the code, failed (PostgreSQL down, SQLite's disk full): say so, so a
  // client knows a retry may work; the details stay in the log.
  if (err instanceof StoreError || (err as { code?: unknown }).code === 'ERR_SQLITE_ERROR') {
    request.log.error({ err }, 'the store failed')
    reply.code(500).send(errorBody('store_unavailable', 'Our database did not answer; try again in a moment.'))
    return
  }
  request.log.error({ err }, 'unhandled error')
  reply.code(500).send(errorBody('internal_error', 'Something went wrong on our side.'))
}

/**
 * Errors the router raises before any route (and its hooks, which set the id and write the
 * access line) is chosen.
 */
function handleFrameworkError (accessLog: AccessLog, err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  accessLog.frameworkErrorRequest(request, reply)
  reply.header('x-request-id', request.id)
  handleError(err, request, reply)
}

/** Node's HTTP parser errors → our codes; any other parse error is bad_request. */
const CLIENT_ERRORS = new Map<string, { code: ErrorCode, message: string }>([
  ['HPE_HEADER_OVERFLOW', { code: 'header_too_large', message: 'The request line and headers are too large.' }],
  ['HPE_CHUNK_EXTENSIONS_OVERFLOW', { code: 'payload_too_large', message: 'The chunk extensions are too large.' }],
  ['ERR_HTTP_REQUEST_TIMEOUT', { code: 'request_timeout', message: 'The request took too long to arrive.' }]
])

/** The headers and body of an error answered outside Fastify; the connection closes after it. */
function rawError (code: ErrorCode, message: string): { status: number, headers: Record<string, string>, body: string } {
  const body = JSON.stringify(errorBody(code, message))
  return { status: ERROR_CODES[code], headers: { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(Buffer.byteLength(body)), Connection: 'close' }, body }
}

/** A complete HTTP/1.1 error response for a socket with no request object to reply on. */
function rawErrorResponse (code: ErrorCode, message: string, extraHeaders: Record<string, string> = {}): string {
  const { status, headers, body } = rawError(code, message)
  const lines = Object.entries({ ...extraHeaders, ...headers }).map(([name, value]) => `${name}: ${value}\r\n`).join('')
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${lines}\r\n${body}`
}

/** Answers on a socket Node has handed over (a parse error, CONNECT), then closes it. */
function endWithError (socket: Socket, code: ErrorCode, message: string, extraHeaders: Record<string, string> = {}): void {
  socket.end(rawErrorResponse(code, message, extraHeaders), () => { socket.destroy() })
}

/** A request Node could not parse (Fastify's clientErrorHandler): answer, then close. */
function handleClientError (this: FastifyInstance, err: Error & { code?: string }, socket: Socket): void {
  // Reset, or already ending (a second parse error after our answer): nothing more to send.
  if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable) return
  const known = CLIENT_ERRORS.get(err.code ?? '') ?? { code: 'bad_request' as const, message: 'The request is not valid HTTP.' }
  // Only the code: the error's rawPacket holds the request bytes, query tokens included.
  this.log.debug({ code: err.code }, `client error: ${known.code}`)
  // As Node does: once a response on this socket has begun, nothing else may be written.
  if ((socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true) {
    socket.destroy()
    return
  }
  endWithError(socket, known.code, known.message)
}

/**
 * An `Expect` other than 100-continue: Node would answer a bare 417 and never pass the request
 * on. Ours says why, as JSON; the body the client may still send is not read.
 */
function handleExpectation (this: FastifyInstance, req: IncomingMessage, res: ServerResponse): void {
  this.log.debug({ method: req.method }, 'client error: expectation_failed')
  const { status, headers, body } = rawError('expectation_failed', 'Only "Expect: 100-continue" is supported.')
  res.writeHead(status, headers).end(body)
}

/** CONNECT (a proxy's method): Node hands the socket over and, with nobody listening, drops it. */
function handleConnect (this: FastifyInstance, req: IncomingMessage, socket: Socket): void {
  // Node's own error listener is gone from a socket it hands over: a reset must not throw.
  socket.on('error', () => { socket.destroy() })
  // A path gets the methods it takes; an authority (host:port), the usual target, takes none.
  const url = req.url ?? ''
  const allow = url.startsWith('/') ? allowedMethods(this, url) : []
  this.log.debug('client error: method_not_allowed (CONNECT)')
  endWithError(socket, 'method_not_allowed', `This server is not a proxy: it does not take CONNECT${allow.length > 0 ? `; ${url.split('?')[0]} takes ${allow.join(', ')}` : ''}.`, { Allow: allow.join(', ') })
}

/**
 * Query strings, params and headers are text, so their numbers need coercion (an admin
 * `limit`). A JSON body carries its own types: a number, or a one-element array, where the
 * schema wants a string is the sender's mistake, answered with a 400, not quietly converted.
 */
function validatorCompiler (): FastifySchemaCompiler<unknown> {
  const build = AjvCompiler()
  const shared = { removeAdditional: false, allErrors: false }
  const coercing = build({}, { customOptions: { ...shared, coerceTypes: 'array' } })
  const exact = build({}, { customOptions: { ...shared, coerceTypes: false } })
  return (route) => (route.httpPart === 'body' ? exact : coercing)(route)
}

export async function buildApp (config: Config, deps: AppDeps): Promise<FastifyInstance> {
  const logger = deps.logger ?? createLogger(config)
  const accessLog = new AccessLog()
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: accessLog,
    // A number means "trust that many hops", as proxy-addr counts them.
    trustProxy: typeof config.trustProxy === 'number'
      ? ((hops: number) => (_addr: string, i: number) => i < hops)(config.trustProxy)
      : config.trustProxy,
    // A proxy's request id is kept only when it is a short printable word: it is echoed in a
    // header and written into every log line of the request.
    requestIdHeader: false,
    rewriteUrl: originForm,
    genReqId: (req) => {
      const id = req.headers['x-request-id']
      return typeof id === 'string' && /^[\x21-\x7e]{1,128}$/.test(id) ? id : randomUUID()
    },
    // Webhook and form bodies are small; a larger body is a mistake or an attack.
    bodyLimit: 64 * 1024,
    // maxParamLength above Node's 16 KiB header limit: a long tenant id reaches its route and
    // gets the schema's 400, instead of falling through to the site's GET catch-all (404).
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 16 * 1024 },
    frameworkErrors: (err, request, reply) => { handleFrameworkError(accessLog, err, request, reply) },
    clientErrorHandler: handleClientError,
    // Fastify's own 503 body is not ours: the onRequest hook below answers while closing.
    return503OnClosing: false,
    // The onRequest hook below answers a missing Host with our JSON error.
    http: { requireHostHeader: false }
  })
  app.setValidatorCompiler(validatorCompiler())
  app.server.on('checkExpectation', handleExpectation.bind(app))
  app.server.on('connect', handleConnect.bind(app))

  const executor = deps.executor ?? createExecutor(config, logger.child({ component: 'linode' }))
  const stripe = deps.stripe !== undefined
    ? deps.stripe
    : stripeConfigured(config)
      // A buyer waits on every call this client makes (checkout, the return from it): fail in
      // about 20 s (30 s while Stripe still works on a timed-out attempt) rather than Stripe's own 80 s × 3.
      ? new StripeClient({ apiKey: config.stripe.secretKey, apiVersion: config.stripe.apiVersion, baseUrl: config.stripe.apiBase, timeoutMs: 10_000, maxRetries: 1 })
      : null
  const jobs = new JobRunner({ store: deps.store, executor, config, log: logger.child({ component: 'jobs' }), ...deps.jobs })
  const tenants = new TenantService({ store: deps.store, config, jobs, log: logger.child({ component: 'tenants' }) })

  app.decorate('config', config)
  app.decorate('store', deps.store)
  app.decorate('executor', executor)
  app.decorate('jobs', jobs)
  app.decorate('tenants', tenants)
  app.decorate('stripe', stripe)

  // Set before the other preClose hooks run (the job runner's may take a while).
  let closing = false
  app.addHook('preClose', async () => { closing = true })
  // Every method some route takes, for `OPTIONS *`; a GET route answers HEAD too.
  const serverMethods = new Set<string>(['OPTIONS'])
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      serverMethods.add(method)
      if (method === 'GET') serverMethods.add('HEAD')
    }
  })
  app.addHook('onRequest', async (request, reply) => {
    if (closing) throw new AppError('shutting_down', 'The server is shutting down; retry on another connection.', {}, { 'retry-after': String(UNAVAILABLE_RETRY_AFTER_S) })
    // HTTP/1.1 requires Host (RFC 9112 §3.2); Node's own check answers an empty 400, ours JSON.
    if (request.headers.host === undefined && request.raw.httpVersion === '1.1') throw new AppError('bad_request', 'An HTTP/1.1 request needs a Host header.')
    // The asterisk form names the server, not a resource, and only OPTIONS takes it (RFC 9112
    // §3.2.4); the router would otherwise match `*` as a path.
    if (request.raw.url === '*') {
      if (request.method !== 'OPTIONS') throw new AppError('bad_request', `The target * is only for OPTIONS, not ${request.method}.`)
      const allow = [...METHODS, 'OPTIONS'].filter((m) => serverMethods.has(m))
      return reply.code(204).header('allow', allow.join(', ')).send()
    }
  })
  // The access line is written when a request ends (logger.ts, AccessLog): one the client
  // gave up on first would leave none.
  app.addHook('onRequestAbort', async (request) => { request.log.info({ req: request }, 'request aborted') })
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id)
    // server.close() closes only the connections idle at that moment: a kept-alive one whose
    // request was in flight would stay open, idle, until its keep-alive timeout outlasts the
    // drain's grace. Closed after this response instead.
    if (closing) reply.header('connection', 'close')
  })
  useStrictBodies(app)
  app.setErrorHandler(handleError)
  app.setNotFoundHandler(notFound)

  await app.register(swagger, {
    openapi: {
      info: { title: 'CTFHive control plane', version: '1.0.0', description: 'Checkout, Stripe webhooks and tenant status. Every GET operation also answers HEAD, with the same status and headers and no body.' },
      servers: [{ url: config.publicBaseUrl }],
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN' } } }
    },
    // Changes the document only, never the route's validation.
    transform: ({ schema, url }) => ({ schema: schema === undefined ? schema : documentedSchema(schema, url), url })
  })
  await app.register(rateLimit, {
    global: false,
    // Counted in the store, so every instance on one database shares a client's limit.
    store: storeRateLimit(deps.store),
    errorResponseBuilder: (_request, context) => new AppError('rate_limited',
      `Too many requests; try again in ${Math.ceil(context.ttl / 1000)} s.`, {}, { 'retry-after': String(Math.ceil(context.ttl / 1000)) })
  })

  // Only the sign-up form's round trip without script uses one (web/typed-values.ts).
  await app.register(cookie)
  await app.register(healthRoutes)
  await app.register(billingRoutes)
  await app.register(webhookRoutes)
  await app.register(tenantRoutes)
  await app.register(adminRoutes)
  await app.register(webRoutes)

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  // Measured again now and then: this host's clock may be stepped while it runs (NTP at boot).
  let clockTimer: NodeJS.Timeout | undefined
  let clockOff = false
  const syncClock = async (): Promise<void> => {
    try {
      const offset = await deps.store.syncClock()
      const off = Math.abs(offset) > 5000
      if (off && !clockOff) {
        app.log.warn({ offset_ms: Math.round(offset) }, "this host's clock and the database's differ by more than 5 s: jobs keep to the database's clock, but this host's log times are off; keep it in step (NTP)")
      }
      clockOff = off
    } catch (err) {
      app.log.warn({ err }, "could not compare this host's clock with the database's; jobs keep to the offset measured last")
    }
  }
  app.addHook('onReady', async () => {
    // After a rollback: the older code runs on a schema a newer release migrated. Migrations
    // so far only add tables, indexes and columns that may be empty or have a default, so it
    // works; the operator should know before rolling back further.
    const { unknown } = await deps.store.schema()
    if (unknown.length > 0) app.log.warn({ versions: unknown }, 'the database has migrations this release does not know: a newer release migrated it')
    // Tenants an older release made have no stored address: it is the one they got then.
    // Until this succeeds readers derive the same (tenantFqdn), so a failure only waits.
    try {
      const placed = await deps.store.assignFqdns(config.baseDomain)
      if (placed > 0) app.log.info({ tenants: placed, baseDomain: config.baseDomain }, 'gave tenants made by an older release their address under BASE_DOMAIN')
    } catch (err) {
      app.log.error({ err }, 'could not store the address of tenants made by an older release; the next start tries again')
    }
    // Job times keep to the database's clock (Store.now), so instances agree on leases.
    await syncClock()
    clockTimer = setInterval(() => { void syncClock() }, CLOCK_SYNC_MS).unref()
    // Allowed with a test Stripe key (config.ts refuses a live one): staging the whole flow.
    if (config.nodeEnv === 'production' && executor instanceof FakeExecutor) {
      app.log.warn('LINODE_API_TOKEN is not set: provisioning only pretends (the in-memory FakeExecutor); no server is made for any tenant')
    }
    // Else a buyer is the first to find out: the plan's checkout answers 503 price_not_configured.
    const unpriced = PAID_PLANS.map((p) => p.stripePriceEnv!).filter((name) => (config.stripe.prices[name] ?? '') === '')
    if (stripeConfigured(config) && unpriced.length > 0) {
      app.log.warn({ variables: unpriced }, `STRIPE_SECRET_KEY is set but ${unpriced.join(', ')} ${unpriced.length === 1 ? 'is' : 'are'} empty: those plans cannot be bought (503 price_not_configured); run npm run stripe:bootstrap and set them`)
    }
    // The line older .env.example files carried: it used to mean each plan's own server type.
    if (config.linode.planGivenEmpty) {
      app.log.warn(`LINODE_PLAN is empty: every plan's server is ${DEFAULT_LINODE_TYPE}; releases before this one sized each plan's server by its plan with it empty: set LINODE_PLAN=${PER_PLAN} for that, or LINODE_PLAN=${DEFAULT_LINODE_TYPE} to keep one type`)
    }
    // Listening on loopback only in production means a proxy on the same host: without
    // TRUST_PROXY every buyer is 127.0.0.1 to the logs and shares one checkout rate limit.
    if (config.nodeEnv === 'production' && config.trustProxy === false && isLoopback(config.host) && config.host !== '0.0.0.0' && config.host !== '::') {
      app.log.warn('TRUST_PROXY is off while the server listens on loopback only: behind a proxy on this host every client appears as the proxy; set TRUST_PROXY=1')
    }
  })
  if (deps.runJobs !== false) app.addHook('onReady', async () => { jobs.start() })
  app.addHook('preClose', async () => {
    clearInterval(clockTimer)
    await jobs.stop()
  })
  return app
}
