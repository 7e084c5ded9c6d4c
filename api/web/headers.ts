// Response headers of the public sites: caching by kind of file, and the security headers
// every HTML page carries (a CSP that allows only this origin, and its usual companions).
import { existsSync } from 'node:fs'
import { negotiate } from '@fastify/accept-negotiator'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../config.ts'
import { errorBody, type ErrorCode } from '../errors.ts'
import { CHECKOUT_RETURN_FILE, NOT_FOUND_FILE } from './site-pages.ts'
import { escapeHtml, messageBlock, type Message } from './slots.ts'

export const HTML_CACHE = 'no-cache'
export const IMMUTABLE_CACHE = 'public, max-age=31536000, immutable'
export const ASSET_CACHE = 'public, max-age=86400'

/** Names like site.0123456789.css (ours) or bundle.0123abcd.min.js (MkDocs Material's). */
const FINGERPRINTED = /\.[0-9a-f]{8,}(\.min)?\.(css|js|woff2?|svg|png)$/

export function isFingerprinted (path: string): boolean {
  return FINGERPRINTED.test(path.replace(/\.(br|gz)$/, ''))
}

export type CspKind = 'site' | 'docs'

/**
 * Only this origin. Forms may also lead to Stripe Checkout and to a tenant's own CTF (a
 * redirect after a form post is checked against form-action): under BASE_DOMAIN, or under
 * `tenantDomains`, the domains older tenants were made under. MkDocs Material inlines one
 * small script per page: the docs build lists their hashes; without that list (a build made
 * elsewhere) the docs fall back to allowing inline scripts, whose content is ours anyway.
 */
export function contentSecurityPolicy (config: Pick<Config, 'baseDomain'>, kind: CspKind, extra: { scriptHashes?: readonly string[], tenantDomains?: readonly string[] } = {}): string {
  const { scriptHashes, tenantDomains = [] } = extra
  const scripts = kind === 'site' ? '' : scriptHashes === undefined ? " 'unsafe-inline'" : scriptHashes.map((h) => ` '${h}'`).join('')
  const domains = [config.baseDomain, ...tenantDomains.filter((d) => d !== config.baseDomain)]
  const forms = kind === 'site' ? ` https://checkout.stripe.com${domains.map((d) => ` https://*.${d}`).join('')}` : ''
  return [
    "default-src 'self'",
    `script-src 'self'${scripts}`,
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "worker-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    `form-action 'self'${forms}`,
    "frame-ancestors 'none'"
  ].join('; ')
}

type HeaderConfig = Pick<Config, 'baseDomain' | 'publicBaseUrl'>

/** The security headers of an HTML page; `csp` defaults to the marketing site's policy. */
export function setHtmlHeaders (reply: FastifyReply, config: HeaderConfig, csp = contentSecurityPolicy(config, 'site')): void {
  reply.header('content-security-policy', csp)
  reply.header('x-content-type-options', 'nosniff')
  reply.header('x-frame-options', 'DENY')
  reply.header('referrer-policy', 'strict-origin-when-cross-origin')
  reply.header('permissions-policy', 'camera=(), microphone=(), geolocation=(), payment=(), usb=()')
  reply.header('cross-origin-opener-policy', 'same-origin')
  if (config.publicBaseUrl.startsWith('https://')) reply.header('strict-transport-security', 'max-age=31536000')
}

/** How a site caches its files other than pages (the defaults are the marketing site's). */
export interface StaticCaching {
  /** Whether a file (its path without .br/.gz) is kept a year: by default, a fingerprint in its name. */
  immutable?: (path: string) => boolean
  /** The Cache-Control of any other file. */
  other?: string
}

/** The headers of one static file, by its kind: HTML is revalidated, fingerprinted files kept. */
export function setStaticHeaders (reply: FastifyReply, filePath: string, config: HeaderConfig, csp?: string, caching: StaticCaching = {}): void {
  const { immutable = isFingerprinted, other = ASSET_CACHE } = caching
  const logical = filePath.replace(/\.(br|gz)$/, '')
  reply.header('x-content-type-options', 'nosniff')
  if (logical.endsWith('.html')) {
    reply.header('cache-control', HTML_CACHE)
    setHtmlHeaders(reply, config, csp)
  } else if (immutable(logical)) {
    reply.header('cache-control', IMMUTABLE_CACHE)
  } else {
    reply.header('cache-control', other)
  }
}

/** A browser's navigation: it reads a page, where a program reads JSON. */
export function prefersHtml (request: FastifyRequest): boolean {
  // Media types are case-insensitive (RFC 9110).
  return (request.headers.accept ?? '').toLowerCase().includes('text/html')
}

/**
 * A page that says one thing to one visitor, with the status already set: never stored, not
 * indexed, and its URL (which may hold a checkout session or a token) never sent on as a
 * Referer. `frame` is a built page holding an empty messageBlock(), so the message has the
 * site's header and footer; without one (the site not built) the page is bare.
 */
export function sendMessagePage (reply: FastifyReply, config: HeaderConfig, message: Message, frame?: string): FastifyReply {
  setHtmlHeaders(reply, config)
  reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer')
  const slot = messageBlock()
  const at = frame === undefined ? -1 : frame.indexOf(slot)
  const html = at >= 0
    ? frame!.slice(0, at) + messageBlock(message) + frame!.slice(at + slot.length)
    : '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">' +
      '<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">' +
      `<title>${escapeHtml(message.heading)}</title></head><body><main>${messageBlock(message)}</main></body></html>\n`
  return reply.type('text/html; charset=utf-8').send(html)
}

/**
 * A site that is not built answers 503 with what to run: JSON for programs, a short page for
 * browsers.
 */
export function sendUnavailable (request: FastifyRequest, reply: FastifyReply, config: HeaderConfig, code: ErrorCode, message: string): FastifyReply {
  reply.code(503).header('cache-control', 'no-store').header('retry-after', '60')
  if (!prefersHtml(request)) return reply.send(errorBody(code, message))
  return sendMessagePage(reply, config, { heading: 'Not built yet', text: message })
}

/** Picks the precompressed variant of a built file the client accepts. */
export function compressedVariant (request: FastifyRequest, path: string): { path: string, encoding?: 'br' | 'gzip' } {
  const accept = request.headers['accept-encoding']
  if (accept === undefined) return { path }
  // Negotiated (q-values, q=0 refusals) as @fastify/static does for the files it serves.
  const available = (['br', 'gzip'] as const).filter((e) => existsSync(`${path}.${e === 'br' ? 'br' : 'gz'}`))
  const encoding = negotiate(String(accept), [...available]) as 'br' | 'gzip' | null
  return encoding === null ? { path } : { path: `${path}.${encoding === 'br' ? 'br' : 'gz'}`, encoding }
}

/**
 * A permanent redirect to a page's one URL. The query may be a welcome link's token: a
 * redirect that carries one must not be cached with it.
 */
export function redirectToCleanUrl (reply: FastifyReply, clean: string, query: string | undefined): FastifyReply {
  if (query === undefined) return reply.redirect(clean, 301)
  return reply.header('cache-control', 'no-store').redirect(`${clean}?${query}`, 301)
}

/**
 * A request's path as @fastify/static reads it to pick a file, so a check on it sees the file
 * that would be served (/404%2ehtml is 404.html there): decoded once, by decodeURI, which
 * keeps %2F and the other reserved escapes as they are, after %23 and %3F. `raw` is the path
 * part of request.url, and `query` what follows its first "?". `path` is undefined for a
 * malformed escape, which the router answers with its own 400.
 */
export function requestPath (url: string): { raw: string, path: string | undefined, query: string | undefined } {
  const at = url.indexOf('?')
  const raw = at < 0 ? url : url.slice(0, at)
  const query = at < 0 ? undefined : url.slice(at + 1)
  try {
    return { raw, path: decodeURI(raw.replace(/%(?:23|3f)/gi, decodeURIComponent)), query }
  } catch {
    return { raw, path: undefined, query }
  }
}

/**
 * Build files that are not pages of their own: the precompressed twins (served in place of
 * the page when accepted), the 404 page (served with a 404) and the frame of the page back
 * from Checkout. Asked for by name, they are not found, so no soft 404 or second address of a
 * page is ever indexed. `path` is decoded (requestPath), as the static server decodes it.
 */
export function isHiddenBuildFile (path: string): boolean {
  return /\.(br|gz)$/.test(path) || path.endsWith(`/${NOT_FOUND_FILE}`) || path.endsWith(`/${CHECKOUT_RETURN_FILE}`)
}

/**
 * @fastify/static answers 403 to a path that names no file it may serve: a doubled slash
 * (//pricing, /pricing//), a directory with its slash (/assets/), another non-canonical form.
 * For a GET or HEAD that is a miss like any other, so it gets the same answer: the HTML 404
 * page, or JSON for an API path (the app's not-found handler decides). Any other error goes
 * on to the app's error handler.
 */
export function refusalsAreMisses (app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err.statusCode === 403 && (request.method === 'GET' || request.method === 'HEAD')) return reply.callNotFound()
    throw err
  })
}
