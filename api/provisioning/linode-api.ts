// The Linode API v4 over undici: bearer token, X-Filter, paging, and retries (429, and 503
// with Retry-After, after the wait it asks; 5xx and network errors with jittered backoff,
// unless the caller says a blind repeat could do the thing twice). The token is kept out of
// every error it raises. A call given a signal is cancelled on abort (request, body and retry
// wait alike) and rejects with the signal's reason, never with a retryable error that would
// invite another try. Each request is bounded whole (headers and body) by requestTimeoutMs,
// and its answer read up to LINODE_BODY_MAX bytes.
import { request, type Dispatcher } from 'undici'
import { parseRetryAfter, readCapped } from '../http-reply.ts'
import { ExecutorError } from './executor.ts'

/**
 * The most of an answer read: far above any page we ask for (500 instances), it only stops a
 * misbehaving proxy at the API address from growing the process without bound.
 */
export const LINODE_BODY_MAX = 8 * 1024 * 1024

export interface LinodeReason { field?: string, reason: string }

/** An API answer other than 2xx; status 0 means no answer (network error, timeout). */
export class LinodeApiError extends ExecutorError {
  readonly status: number
  readonly reasons: LinodeReason[]
  constructor (message: string, status: number, reasons: LinodeReason[], retryable: boolean, cause?: unknown, retryAfterMs?: number) {
    super(message, { retryable, cause, retryAfterMs })
    this.name = 'LinodeApiError'
    this.status = status
    this.reasons = reasons
  }

  /**
   * The request may have been applied even though we got no success answer: none, a timeout, a
   * 5xx, or a 2xx whose body is not what the call answers (not JSON, or not the object made).
   */
  get ambiguous (): boolean {
    return this.status === 0 || this.status === 408 || this.status >= 500 || (this.status >= 200 && this.status < 300)
  }

  /** Linode's "Label must be unique" (with or without the field named). */
  get labelTaken (): boolean {
    return this.status === 400 && this.reasons.some((r) => (r.field === undefined || r.field === 'label') && /unique|taken|already/i.test(r.reason))
  }
}

interface Page<T> { data: T[], page: number, pages: number, results: number }
/** 'rejected-only': retry only answers that prove nothing happened (429), for creates. */
export type Retry = 'always' | 'rejected-only'

export interface LinodeApiOptions {
  token: string
  /** e.g. https://api.linode.com/v4 */
  apiBase: string
  dispatcher?: Dispatcher
  sleep: (ms: number) => Promise<void>
  /** Tries per call, the first included. */
  maxAttempts: number
  requestTimeoutMs: number
  /**
   * A Retry-After longer than this fails the call as retryable instead of sleeping, the wait
   * carried on the error (retryAfterMs) for the job runner to honour.
   */
  maxRetryAfterMs: number
  log?: { warn: (obj: object, msg: string) => void }
}

/** Exponential with equal jitter: 0.5–1 s, 1–2 s, 2–4 s … capped at 30 s. */
export function backoffMs (attempt: number): number {
  const ceiling = Math.min(1000 * 2 ** (attempt - 1), 30_000)
  return Math.round(ceiling / 2 + Math.random() * ceiling / 2)
}

/** The injected sleep, cut short by the signal (rejecting with its reason). */
export function pause (sleep: (ms: number) => Promise<void>, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal === undefined) return sleep(ms)
  signal.throwIfAborted()
  return new Promise((resolve, reject) => {
    const onAbort = (): void => { reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
    sleep(ms).then(resolve, reject).finally(() => { signal.removeEventListener('abort', onAbort) })
  })
}

export class LinodeApi {
  // A #private field: util.inspect and JSON.stringify never show it.
  readonly #token: string
  private readonly o: Omit<LinodeApiOptions, 'token'>

  constructor (opts: LinodeApiOptions) {
    const { token, ...rest } = opts
    if (token === '') throw new ExecutorError('the Linode API needs an API token', { retryable: false })
    this.#token = token
    this.o = { ...rest, apiBase: opts.apiBase.replace(/\/+$/, '') }
  }

  /** A GET whose 404 means "not there". */
  async getOrUndefined<T> (path: string, signal?: AbortSignal, opts: { anonymous?: boolean } = {}): Promise<T | undefined> {
    try {
      return await this.call<T>('GET', path, { signal, anonymous: opts.anonymous })
    } catch (err) {
      if (err instanceof LinodeApiError && err.status === 404) return undefined
      throw err
    }
  }

  /** False when there was nothing to delete (404). */
  async deleteIgnoringMissing (path: string, signal?: AbortSignal): Promise<boolean> {
    try {
      await this.call('DELETE', path, { signal })
      return true
    } catch (err) {
      if (!(err instanceof LinodeApiError && err.status === 404)) throw err
      return false
    }
  }

  /** Every page of a listing (at most 100 pages of 500), filtered server-side by X-Filter. */
  async list<T> (path: string, filter: Record<string, string>, signal?: AbortSignal): Promise<T[]> {
    const out: T[] = []
    for (let page = 1; ; page++) {
      const res = await this.call<Page<T> | null>('GET', `${path}?page=${page}&page_size=500`, { filter: Object.keys(filter).length > 0 ? filter : undefined, signal })
      // A listing is an object with a list of objects: anything else (a proxy's page, a
      // half-written reply) is a failed call, not an empty listing or a crash further on.
      // A proxy's `{}` included: taken as "no servers", it would let a teardown end with the server billing.
      if (res === null || typeof res !== 'object' || !Array.isArray(res.data)) {
        throw new LinodeApiError(`Linode API: a listing of ${path} that is not shaped as documented`, 200, [], true)
      }
      for (const item of res.data) {
        if (item !== null && typeof item === 'object') out.push(item)
      }
      if (page >= (res.pages ?? 1) || page >= 100) return out
    }
  }

  private redact (text: string): string {
    return text.split(this.#token).join('[redacted]')
  }

  /**
   * One API call with retries: 429 (and 503 with Retry-After) after the wait asked; 5xx and
   * network errors only when `retry` is 'always'. A refusal for now (429, 503 with Retry-After)
   * that ends the call carries the wait asked on the error (retryAfterMs).
   * `anonymous`: sent without the token, for what anyone may read (public images): with a token,
   * Linode also asks for that endpoint's scope.
   */
  async call<T = unknown> (method: string, path: string, opts: { body?: unknown, filter?: object, retry?: Retry, signal?: AbortSignal, anonymous?: boolean } = {}): Promise<T> {
    const retry = opts.retry ?? 'always'
    const signal = opts.signal
    const headers: Record<string, string> = { accept: 'application/json' }
    if (opts.anonymous !== true) headers.authorization = `Bearer ${this.#token}`
    if (opts.body !== undefined) headers['content-type'] = 'application/json'
    if (opts.filter !== undefined) headers['x-filter'] = JSON.stringify(opts.filter)
    const op = `${method} ${path.split('?')[0]}`
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted()
      let error: LinodeApiError
      let delay = backoffMs(attempt)
      try {
        // undici's timeouts bound only the gaps (a body trickling a byte a second passes them):
        // the whole exchange is bounded too.
        const limit = AbortSignal.timeout(this.o.requestTimeoutMs)
        const res = await request(`${this.o.apiBase}${path}`, {
          signal: signal === undefined ? limit : AbortSignal.any([signal, limit]),
          method: method as Dispatcher.HttpMethod,
          headers,
          body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
          dispatcher: this.o.dispatcher,
          headersTimeout: this.o.requestTimeoutMs,
          bodyTimeout: this.o.requestTimeoutMs
        })
        const text = await readCapped(res.body, LINODE_BODY_MAX)
        if (text === null) throw new LinodeApiError(`Linode API ${res.statusCode}: a reply larger than ${LINODE_BODY_MAX} bytes (${op})`, res.statusCode, [], true)
        let json: unknown
        try { json = text === '' ? {} : JSON.parse(text) } catch { json = undefined }
        if (res.statusCode >= 200 && res.statusCode < 300) {
          if (json === undefined) throw new LinodeApiError(`Linode API ${res.statusCode}: a reply that is not JSON (${op})`, res.statusCode, [], true)
          return json as T
        }
        // Seconds or an HTTP-date; maintenance (503) may ask for a wait as well as a rate limit.
        const header = res.headers['retry-after']
        const after = res.statusCode === 429 || res.statusCode === 503 ? parseRetryAfter(Array.isArray(header) ? header[0] : header) : null
        const refused = res.statusCode === 429 || after !== null
        if (refused) delay = after ?? delay
        error = this.apiError(res.statusCode, json, op, res.headers['x-maintenance-mode'] !== undefined, refused ? delay : undefined)
        if (refused) {
          if (delay > this.o.maxRetryAfterMs) throw error
          // A 503 may have been applied: a create is not repeated blind (the job's next attempt adopts).
          if (res.statusCode !== 429 && retry === 'rejected-only') throw error
        } else if (!error.retryable || retry === 'rejected-only') {
          throw error
        }
      } catch (err) {
        // A cancelled call is not a network error: an abort must not look retryable or ambiguous.
        if (signal?.aborted === true) throw signal.reason
        if (err instanceof LinodeApiError) throw err
        const message = this.redact(err instanceof Error ? err.message : String(err))
        error = new LinodeApiError(`Linode API unreachable: ${message} (${op})`, 0, [], true, new Error(message))
        if (retry === 'rejected-only') throw error
      }
      if (attempt >= this.o.maxAttempts) throw error
      this.o.log?.warn({ op, status: error.status, attempt, delayMs: delay }, 'linode call failed; retrying')
      await pause(this.o.sleep, delay, signal)
    }
  }

  private apiError (status: number, json: unknown, op: string, maintenance: boolean, retryAfterMs?: number): LinodeApiError {
    const raw = (json as { errors?: unknown } | undefined)?.errors
    // Entries that are not objects are skipped: a TypeError here would turn a refusal into "unreachable".
    const reasons: LinodeReason[] = Array.isArray(raw)
      ? raw.filter((e): e is { field?: unknown, reason?: unknown } => e !== null && typeof e === 'object').map((e) => ({
          ...(typeof e.field === 'string' ? { field: e.field } : {}),
          reason: this.redact(String(e.reason ?? 'unknown error'))
        }))
      : []
    const detail = reasons.length > 0
      ? reasons.map((r) => r.field !== undefined ? `${r.field}: ${r.reason}` : r.reason).join('; ')
      : (maintenance ? 'Linode is in maintenance' : 'no error detail')
    const retryable = status === 429 || status === 408 || status >= 500
    return new LinodeApiError(`Linode API ${status}: ${detail} (${op})`, status, reasons, retryable, undefined, retryAfterMs)
  }
}
