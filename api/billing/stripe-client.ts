// A deliberately small Stripe REST client: form encoding, stripe-node's retry rules, stable
// idempotency keys and one error class. We use four endpoints; the SDK is not worth its surface.
import { randomUUID } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import { request } from 'undici'
import type { Dispatcher } from 'undici'
import { parseRetryAfter, readCapped } from '../http-reply.ts'

export interface StripeClientOptions {
  apiKey: string
  apiVersion: string
  baseUrl: string
  timeoutMs?: number
  maxRetries?: number
  sleep?: (ms: number) => Promise<void>
  /** Told before each wait for another attempt (a CLI shows it, rather than seem to hang). */
  onRetry?: (error: StripeError, waitMs: number) => void
  dispatcher?: Dispatcher
}

export interface StripeErrorFields {
  statusCode?: number | null
  type: string
  code?: string | null
  param?: string | null
  requestId?: string | null
  retryable?: boolean
  cause?: unknown
}

export class StripeError extends Error {
  readonly statusCode: number | null
  readonly type: string
  readonly code: string | null
  readonly param: string | null
  readonly requestId: string | null
  readonly retryable: boolean

  constructor (message: string, fields: StripeErrorFields) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause })
    this.name = 'StripeError'
    this.statusCode = fields.statusCode ?? null
    this.type = fields.type
    this.code = fields.code ?? null
    this.param = fields.param ?? null
    this.requestId = fields.requestId ?? null
    this.retryable = fields.retryable ?? false
  }
}

function isObject (value: unknown): value is Record<string, any> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function unexpectedBody (expected: string): StripeError {
  return new StripeError(`Stripe answered 2xx without ${expected}`, { type: 'api_error', code: 'unexpected_response' })
}

// Same bytes as stripe-node: indexed arrays, brackets left readable, RFC 3986 escaping
// (encodeURIComponent plus !'()*), null as `key=` (unset), dates as Unix seconds.
export function encodeForm (params: Record<string, unknown>): string {
  const pairs: string[] = []
  const add = (key: string, value: unknown): void => {
    if (value === undefined) return
    if (value === null || typeof value !== 'object' || value instanceof Date) {
      const text = value === null ? '' : value instanceof Date ? String(Math.floor(value.getTime() / 1000)) : String(value)
      pairs.push(`${escape(key)}=${escape(text)}`)
    } else if (Array.isArray(value)) {
      value.forEach((item, i) => add(`${key}[${i}]`, item))
    } else {
      for (const [k, v] of Object.entries(value)) add(`${key}[${k}]`, v)
    }
  }
  for (const [k, v] of Object.entries(params)) add(k, v)
  return pairs.join('&')
}

function escape (text: string): string {
  // A lone surrogate cannot be percent-encoded (encodeURIComponent throws): sent as U+FFFD.
  return encodeURIComponent(text.toWellFormed())
    .replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
    .replace(/%5B/g, '[').replace(/%5D/g, ']')
}

const MIN_DELAY_S = 0.5
const MAX_DELAY_S = 5

// stripe-node's backoff; a Retry-After from the server is waited out too, up to the same cap.
function retryDelayMs (retry: number, retryAfterMs: number | null): number {
  const jittered = Math.min(MIN_DELAY_S * 2 ** (retry - 1), MAX_DELAY_S) * 0.5 * (1 + Math.random())
  const ms = Math.max(MIN_DELAY_S, jittered) * 1000
  return retryAfterMs === null ? ms : Math.max(ms, Math.min(retryAfterMs, MAX_DELAY_S * 1000))
}


// stripe-node's rules: the server's explicit advice wins, then 409 and 5xx are retried.
function isRetryableStatus (status: number, shouldRetry: string | undefined): boolean {
  if (shouldRetry === 'false') return false
  if (shouldRetry === 'true') return true
  return status === 409 || status >= 500
}

// Far above any Stripe object we read (a 100-item list page is well under 1 MiB): it only stops a
// misbehaving server at the base URL from growing the process without bound before the timeout.
const MAX_BODY_BYTES = 4 * 1024 * 1024


type Attempt = { ok: true, value: unknown } | { ok: false, error: StripeError, retryAfterMs: number | null }

const HEADER_SAFE = /^[\x21-\x7e]+$/

export class StripeClient {
  // Private fields keep the key out of util.inspect and JSON.stringify of the client.
  readonly #apiKey: string
  readonly #apiVersion: string
  readonly #baseUrl: string
  readonly #timeoutMs: number
  readonly #maxRetries: number
  readonly #sleep: (ms: number) => Promise<void>
  readonly #onRetry: ((error: StripeError, waitMs: number) => void) | undefined
  readonly #dispatcher: Dispatcher | undefined

  constructor (opts: StripeClientOptions) {
    if (typeof opts.apiKey !== 'string' || !HEADER_SAFE.test(opts.apiKey)) throw new TypeError('Stripe API key must be a non-empty printable ASCII string')
    if (typeof opts.apiVersion !== 'string' || !HEADER_SAFE.test(opts.apiVersion)) throw new TypeError('Stripe API version must be a non-empty printable ASCII string')
    if (!URL.canParse(opts.baseUrl) || !/^https?:$/.test(new URL(opts.baseUrl).protocol)) throw new TypeError(`Stripe base URL must be an http(s) URL, got ${JSON.stringify(opts.baseUrl)}`)
    this.#apiKey = opts.apiKey
    this.#apiVersion = opts.apiVersion
    this.#baseUrl = opts.baseUrl.replace(/\/+$/, '')
    this.#timeoutMs = opts.timeoutMs ?? 80_000
    this.#maxRetries = opts.maxRetries ?? 2
    this.#sleep = opts.sleep ?? ((ms) => delay(ms))
    this.#onRetry = opts.onRetry
    this.#dispatcher = opts.dispatcher
  }

  async request<T = any> (method: 'GET' | 'POST' | 'DELETE', path: string, params: Record<string, unknown> = {}, opts: { idempotencyKey?: string } = {}): Promise<T> {
    const form = encodeForm(params)
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.#apiKey}`,
      'stripe-version': this.#apiVersion,
      accept: 'application/json',
      'user-agent': 'ctfhive-stripe-client'
    }
    let url = this.#baseUrl + path
    let body: string | undefined
    if (method === 'POST') {
      // One key for all attempts, so a retry after a lost reply replays instead of repeating.
      const key = opts.idempotencyKey ?? `ctfhive-${randomUUID()}`
      if (!HEADER_SAFE.test(key) || key.length > 255) throw new TypeError('Idempotency key must be 1-255 printable ASCII characters')
      headers['idempotency-key'] = key
      headers['content-type'] = 'application/x-www-form-urlencoded'
      body = form
    } else if (form !== '') {
      url += (url.includes('?') ? '&' : '?') + form
    }
    let attempt = await this.#attempt(method, url, headers, body)
    let retries = 0
    let inUseWaitMs = 0
    for (let n = 1; !attempt.ok; n++) {
      // Stripe still works on an earlier attempt with this key (one that timed out here): its
      // answer is on the way, so asking again spends no retry, for up to one more timeout.
      const inUse = attempt.error.code === 'idempotency_key_in_use' && inUseWaitMs < this.#timeoutMs
      if (!inUse) retries++
      if (!attempt.error.retryable || retries > this.#maxRetries) throw attempt.error
      const wait = retryDelayMs(n, attempt.retryAfterMs)
      if (inUse) inUseWaitMs += wait
      this.#onRetry?.(attempt.error, wait)
      await this.#sleep(wait)
      attempt = await this.#attempt(method, url, headers, body)
    }
    return attempt.value as T
  }

  async #attempt (method: string, url: string, headers: Record<string, string>, body: string | undefined): Promise<Attempt> {
    const controller = new AbortController()
    const timer = setTimeout(() => controller.abort(), this.#timeoutMs)
    let status: number
    let text: string | null
    let resHeaders: Record<string, string | string[] | undefined>
    try {
      const res = await request(url, { method: method as Dispatcher.HttpMethod, headers, body, signal: controller.signal, dispatcher: this.#dispatcher })
      status = res.statusCode
      resHeaders = res.headers
      text = await readCapped(res.body, MAX_BODY_BYTES)
    } catch (err) {
      const message = controller.signal.aborted
        ? `Request to Stripe timed out after ${this.#timeoutMs} ms`
        : `Could not reach Stripe: ${(err as Error).message}`
      return { ok: false, retryAfterMs: null, error: this.#error(message, { type: 'api_connection_error', retryable: true, cause: err }) }
    } finally {
      clearTimeout(timer)
    }
    const header = (name: string): string | undefined => {
      const v = resHeaders[name]
      return Array.isArray(v) ? v[0] : v
    }
    const requestId = header('request-id') ?? null
    if (text === null) {
      // Treated like a body that is not JSON: a 2xx is not retried (what answers at the base URL
      // will answer the same), other statuses follow the usual rules.
      const is2xx = status >= 200 && status < 300
      return {
        ok: false,
        retryAfterMs: is2xx ? null : parseRetryAfter(header('retry-after')),
        error: this.#error(`Stripe returned HTTP ${status} with a body over ${MAX_BODY_BYTES / 1024 / 1024} MiB`, {
          statusCode: status,
          type: 'api_error',
          code: 'response_too_large',
          requestId,
          retryable: !is2xx && isRetryableStatus(status, header('stripe-should-retry'))
        })
      }
    }
    let json: any
    try {
      json = JSON.parse(text)
    } catch {}
    if (status >= 200 && status < 300) {
      // Every Stripe reply is an object: `null`, an array or a proxy's page is not Stripe's
      // answer, and would fail later as a TypeError far from the call. Not retried: it comes
      // from what answers at the base URL (a proxy, a wrong STRIPE_API_BASE), which does not
      // change in a second, and a POST's replay under the same key would answer the same.
      if (isObject(json)) return { ok: true, value: json }
      const what = json === undefined ? 'not JSON' : 'not a JSON object'
      return { ok: false, retryAfterMs: null, error: this.#error(`Stripe returned HTTP ${status} with a body that is ${what}: ${snippet(this.#mask(text))}`, { statusCode: status, type: 'api_error', code: 'unexpected_response', requestId }) }
    }
    const retryable = isRetryableStatus(status, header('stripe-should-retry'))
    const retryAfterMs = parseRetryAfter(header('retry-after'))
    const e = json?.error
    if (e !== null && typeof e === 'object') {
      return {
        ok: false,
        retryAfterMs,
        error: this.#error(typeof e.message === 'string' ? e.message : `Stripe returned HTTP ${status}`, {
          statusCode: status,
          type: typeof e.type === 'string' ? e.type : 'api_error',
          code: typeof e.code === 'string' ? e.code : null,
          param: typeof e.param === 'string' ? e.param : null,
          requestId,
          retryable
        })
      }
    }
    return { ok: false, retryAfterMs, error: this.#error(`Stripe returned HTTP ${status}: ${snippet(this.#mask(text))}`, { statusCode: status, type: 'api_error', requestId, retryable }) }
  }

  // Every message passes through here, so an echoed key never reaches logs.
  #error (message: string, fields: StripeErrorFields): StripeError {
    return new StripeError(this.#mask(message), fields)
  }

  // Before a body is cut to a snippet too: a cut through the key would leave most of it.
  #mask (text: string): string {
    return text.split(this.#apiKey).join('[redacted]')
  }

  async createCheckoutSession (params: Record<string, unknown>, idempotencyKey: string): Promise<{ id: string, url: string, [k: string]: unknown }> {
    const session = await this.request<Record<string, unknown> | null>('POST', '/v1/checkout/sessions', params, { idempotencyKey })
    // The buyer is sent to `url`: a 2xx without a usable one is a failure, not a success.
    if (!isObject(session) || typeof session.id !== 'string' || typeof session.url !== 'string' || !/^https?:\/\//.test(session.url) || !URL.canParse(session.url)) {
      throw unexpectedBody('a checkout session with an id and a URL')
    }
    return session as { id: string, url: string, [k: string]: unknown }
  }

  // The id usually comes from a query string: refuse anything that could change the path.
  async retrieveCheckoutSession (id: string): Promise<Record<string, any>> {
    if (!/^[A-Za-z0-9_]{1,255}$/.test(id)) {
      throw new StripeError('No such checkout session: the id is malformed', { type: 'invalid_request_error', code: 'resource_missing', param: 'id' })
    }
    const session = await this.request<unknown>('GET', `/v1/checkout/sessions/${id}`)
    if (!isObject(session) || typeof session.id !== 'string') throw unexpectedBody('a checkout session')
    return session
  }

  async listAll<T = any> (path: string, params: Record<string, unknown> = {}): Promise<T[]> {
    const items: T[] = []
    let startingAfter: string | undefined
    for (;;) {
      const page = await this.request('GET', path, startingAfter === undefined ? { limit: 100, ...params } : { limit: 100, ...params, starting_after: startingAfter })
      if (page === null || typeof page !== 'object' || !Array.isArray(page.data)) {
        throw new StripeError(`Stripe returned something other than a list for GET ${path}`, { type: 'api_error' })
      }
      items.push(...page.data)
      const last = page.data.at(-1)
      if (page.has_more !== true || typeof last?.id !== 'string') return items
      startingAfter = last.id
    }
  }
}

function snippet (text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim()
  return flat === '' ? '(empty body)' : flat.length > 200 ? `${flat.slice(0, 200)}…` : flat
}
