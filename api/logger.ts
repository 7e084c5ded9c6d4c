// pino, configured once: request ids, redaction by path, and a last line of defence that
// scrubs any configured secret value from every line before it is written.
import { writeSync } from 'node:fs'
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'
import { destination, pino, stdSerializers, type DestinationStream, type Logger } from 'pino'
import { secretValues, type Config } from './config.ts'

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["stripe-signature"]',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers["stripe-signature"]',
  'headers.cookie',
  // A `*` stands for exactly one key, so each depth is listed: a field with one of these names
  // is redacted at the top level of a logged object and up to two levels down.
  ...['password', 'root_pass', 'token', 'secret'].flatMap((name) => [name, `*.${name}`, `*.*.${name}`])
]

/**
 * Query parameters that are bearer secrets, masked in every logged URL: `token` is the welcome
 * link's HMAC (it unlocks the CTF admin password), and `session_id` is one too, because
 * /billing/success turns any completed Checkout Session id into that welcome link.
 * A hand-mangled link still carries a working secret, so any name that contains one of these
 * (`token[]`, `token%00`, `;token`) is masked, and so is a value that holds one (`a=b?token=…`)
 * or a path segment (`/welcome%3Ftenant=…&token=…`).
 */
const SECRET_QUERY_PARAMS = ['token', 'session_id']

function decoded (part: string): string {
  try {
    return decodeURIComponent(part.replace(/\+/g, ' ')).toLowerCase()
  } catch {
    return part.toLowerCase()
  }
}

function isSecretPair (key: string, value: string): boolean {
  const k = decoded(key)
  const v = decoded(value)
  return SECRET_QUERY_PARAMS.some((name) => k.includes(name) || v.includes(`${name}=`))
}

/**
 * A path segment holding what was meant as the query (`/welcome%3Ftenant=…&token=…`, a link
 * whose "?" got encoded): from its encoded "?" on, or whole.
 */
function maskSegment (segment: string): string {
  if (!SECRET_QUERY_PARAMS.some((name) => decoded(segment).includes(`${name}=`))) return segment
  const q = segment.toLowerCase().indexOf('%3f')
  return q < 0 ? '[Redacted]' : `${segment.slice(0, q + 3)}[Redacted]`
}

/** The URL with each secret query value replaced by [Redacted]; path and other values kept. */
export function maskUrl (url: string): string {
  const q = url.indexOf('?')
  const path = (q < 0 ? url : url.slice(0, q)).split('/').map(maskSegment).join('/')
  if (q < 0) return path
  // Decoded and case-folded, so "%74oken" or "Token" is masked too.
  const pairs = url.slice(q + 1).split('&').map((pair) => {
    const eq = pair.indexOf('=')
    return eq >= 0 && isSecretPair(pair.slice(0, eq), pair.slice(eq + 1)) ? `${pair.slice(0, eq)}=[Redacted]` : pair
  })
  return `${path}?${pairs.join('&')}`
}

interface LoggedRequest {
  method?: string
  url?: string
  host?: string
  ip?: string
  headers?: Record<string, string | string[] | undefined>
  socket?: { remotePort?: number } | null
}

/** Fastify's own request serializer, with the URL masked. */
export function serializeRequest (req: LoggedRequest): Record<string, unknown> {
  return {
    method: req.method,
    url: typeof req.url === 'string' ? maskUrl(req.url) : req.url,
    version: req.headers?.['accept-version'],
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort
  }
}

function escapeRegExp (s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** An email address in an error's text: Stripe's refusals echo the one sent ("Invalid email address: …"). */
const EMAIL_IN_TEXT = /[^\s@"'<>():;,]+@[^\s@"'<>():;,]+/g

/**
 * pino's error serializer, except that it writes the class name over an own `type`: keep an
 * error's own type (Stripe's invalid_request_error, card_error…) as `error_type`, and an email
 * address in its message or stack masked.
 */
function serializeError (err: unknown): unknown {
  const out = stdSerializers.err(err as Error) as unknown
  if (out === null || typeof out !== 'object') return out
  const own = (err as { type?: unknown } | null)?.type
  // A copy: for a value that is not an Error the serializer hands back the value itself.
  const copy: Record<string, unknown> = { ...out, ...(typeof own === 'string' ? { error_type: own } : {}) }
  for (const key of ['message', 'stack'] as const) {
    if (typeof copy[key] === 'string') copy[key] = (copy[key] as string).replace(EMAIL_IN_TEXT, '[email address]')
  }
  return copy
}

/** Characters of log lines held while stdout takes none; lines past that are dropped. */
const MAX_HELD_LOG = 4 * 1024 * 1024
/** How often the exit flush retries a stdout that is only busy (EAGAIN), 100 ms apart. */
const EXIT_FLUSH_RETRIES = 10

/** sonic-boom 4's buffers (utf8 mode, as pino uses it): what the exit flush writes. */
interface HeldLines { fd: number, _writing: boolean, _writingBuf: unknown, _bufs: unknown, _len: number }

/** One line on stderr, which may sit on the same full disk: never throws (process.stderr would). */
function noteOnStderr (line: string): void {
  try {
    writeSync(2, `ctfhive: ${line}\n`)
  } catch {}
}

/**
 * Writes the held lines synchronously (at exit): a busy stdout is retried for about a second,
 * any other failure gives up. Returns the code of the error that stopped it, or null.
 */
function flushHeldSync (stream: HeldLines & { _writingBuf: string, _bufs: string[] }): string | null {
  // An asynchronous write still in flight owns _writingBuf; otherwise it holds lines that failed.
  let rest = Buffer.from((stream._writing ? '' : stream._writingBuf) + stream._bufs.join(''))
  if (!stream._writing) stream._writingBuf = ''
  stream._bufs = []
  stream._len = stream._writingBuf.length
  let busy = 0
  while (rest.length > 0) {
    try {
      rest = rest.subarray(writeSync(stream.fd, rest))
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO'
      if ((code !== 'EAGAIN' && code !== 'EBUSY') || ++busy > EXIT_FLUSH_RETRIES) return code
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100)
    }
  }
  return null
}

/**
 * pino's own default, an asynchronous sonic-boom on stdout, except that a stdout that fails
 * (a full disk, EIO, its reader gone) neither crashes the process nor hangs its exit. Unheard,
 * sonic-boom's 'error' is an uncaught exception, and its exit flush retries a failed write
 * forever. Lines are held (up to MAX_HELD_LOG) and written once stdout takes them again, later
 * ones dropped (also when stdout is only slower than the lines come); stderr says so once each
 * time, and again with the count dropped once every held line is written.
 */
export function stdoutDestination (fd = 1): DestinationStream {
  const stream = destination({ dest: fd, sync: false, minLength: 0, maxLength: MAX_HELD_LOG })
  let failing: string | null = null
  // Lines are held while stdout fails, or is slower than the lines come (pino-pretty, a lagging
  // journald): once past MAX_HELD_LOG they are dropped. stderr says so once for each such
  // time, and again with the count once every held line is written.
  let trouble: string | null = null
  let dropped = 0
  const begin = (why: string): void => {
    if (trouble !== null) return
    trouble = why
    noteOnStderr(`log lines cannot be written to stdout (${why}): up to ${MAX_HELD_LOG / 1024 / 1024} MiB of them are held, later ones dropped, until it takes them again`)
    stream.once('drain', () => {
      noteOnStderr(`stdout takes log lines again after ${trouble}; ${dropped} were dropped`)
      trouble = null
      failing = null
      dropped = 0
    })
  }
  stream.on('drop', () => {
    dropped++
    begin('it takes them more slowly than they come')
  })
  // Unheard, 'error' is an uncaught exception. Each later line retries the held ones.
  stream.on('error', (err: NodeJS.ErrnoException) => {
    failing ??= err.code ?? err.message
    begin(failing)
  })
  const ownFlushSync = stream.flushSync.bind(stream)
  stream.flushSync = () => {
    const held = stream as unknown as HeldLines
    if (typeof held._writingBuf !== 'string' || !Array.isArray(held._bufs)) {
      // Another sonic-boom layout: its own flush, unless writes fail already (it would retry forever).
      if (failing === null) ownFlushSync()
      return
    }
    const stopped = flushHeldSync(held as HeldLines & { _writingBuf: string, _bufs: string[] })
    if (stopped !== null && failing === null) noteOnStderr(`the last log lines were dropped at exit: stdout failed (${stopped})`)
  }
  return stream
}

export function createLogger (config: Pick<Config, 'logLevel'> & Parameters<typeof secretValues>[0], stream?: DestinationStream): Logger {
  const secrets = secretValues(config)
  // JSON-escaped too: a secret containing quotes or backslashes appears escaped in a line.
  // Longest first: the alternation takes the first that matches, and a secret that begins
  // with another (a rotated webhook secret, say) would otherwise leave its tail in the line.
  const needles = [...new Set(secrets.flatMap((s) => [s, JSON.stringify(s).slice(1, -1)]))].sort((a, b) => b.length - a.length)
  const scrub = needles.length === 0 ? null : new RegExp(needles.map(escapeRegExp).join('|'), 'g')
  const options = {
    level: config.logLevel,
    redact: { paths: REDACT_PATHS, censor: '[Redacted]' },
    // Given serializers replace pino's defaults, so err is named again. Fastify keeps a
    // logger instance's own serializers over its defaults.
    serializers: { err: serializeError, req: serializeRequest },
    hooks: {
      streamWrite: (line: string): string => (scrub === null ? line : line.replace(scrub, '[Redacted]'))
    }
  }
  return pino(options, stream ?? stdoutDestination())
}

/**
 * One access line per request, written when it ends, with the request and the answer
 * (Fastify's default is two: one on arrival, one at the end). A request the client gives up
 * on before its answer gets its own line (app.ts, onRequestAbort).
 */
export class AccessLog extends LogController {
  override incomingRequest (): void {}

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return
    if (error) reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored')
    else reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed')
  }

  /**
   * A request the router refused (a malformed URL, app.ts handleFrameworkError): Fastify calls
   * only incomingRequest for it, never requestCompleted, so its line is written here when the
   * response closes.
   */
  frameworkErrorRequest (request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return
    const start = performance.now()
    let finished = false
    reply.raw.once('finish', () => {
      finished = true
      reply.log.info({ req: request, res: reply, responseTime: performance.now() - start }, 'request completed')
    })
    reply.raw.once('close', () => { if (!finished) reply.log.info({ req: request }, 'request aborted') })
  }
}
