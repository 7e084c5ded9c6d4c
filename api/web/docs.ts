// The documentation at /docs/: the MkDocs build in DOCS_SITE_DIR, served as static files with
// MkDocs' directory URLs (/docs/control-plane/billing-stripe/ → …/index.html), and a clear
// 503 while it is not built, so the app and its tests work either way.
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../config.ts'
import { contentSecurityPolicy, HTML_CACHE, isFingerprinted, isHiddenBuildFile, redirectToCleanUrl, refusalsAreMisses, requestPath, sendUnavailable, setStaticHeaders } from './headers.ts'

export interface DocsOptions {
  /** The built site (DOCS_SITE_DIR, resolved). */
  root: string
}

/** Written by docs-site/build.ts into the built site (a dotfile: never served). */
export const DOCS_MANIFEST_FILE = '.ctfhive-docs.json'
/** Also written by the build: the same policy as a Caddyfile line, for deploy/Caddyfile to import. */
export const DOCS_CADDY_FILE = '.ctfhive-docs.caddy'

export const DOCS_NOT_BUILT = 'The documentation is not built: run npm run docs (it needs Debian\'s mkdocs and mkdocs-material).'

export function docsBuilt (root: string): boolean {
  return existsSync(join(root, 'index.html'))
}

/** The address the docs in `root` were built for, as their manifest records it (undefined: none recorded). */
export function docsBuiltFor (root: string): string | undefined {
  try {
    const recorded = (JSON.parse(readFileSync(join(root, DOCS_MANIFEST_FILE), 'utf8')) as { publicBaseUrl?: unknown }).publicBaseUrl
    return typeof recorded === 'string' ? recorded : undefined
  } catch {
    return undefined
  }
}

/**
 * Whether the docs were built for another address: their canonical links and MkDocs' own
 * sitemap.xml then name that one. A build that records none (made elsewhere) is taken as is.
 */
export function docsBuiltElsewhere (root: string, publicBaseUrl: string): boolean {
  const built = docsBuiltFor(root)
  return built !== undefined && built !== publicBaseUrl
}

/** The docs' CSP, with the inline-script hashes their build recorded (re-read when rebuilt). */
export function docsPolicy (root: string, config: Pick<Config, 'baseDomain'>): () => string {
  let seen = -1
  let policy = contentSecurityPolicy(config, 'docs')
  return () => {
    const path = join(root, DOCS_MANIFEST_FILE)
    const mtime = existsSync(path) ? statSync(path).mtimeMs : 0
    if (mtime !== seen) {
      seen = mtime
      let hashes: string[] | undefined
      try {
        const listed = (JSON.parse(readFileSync(path, 'utf8')) as { inlineScriptHashes?: unknown }).inlineScriptHashes
        if (Array.isArray(listed) && listed.every((h) => typeof h === 'string' && /^sha256-[A-Za-z0-9+/]+=*$/.test(h))) hashes = listed
      } catch {}
      policy = contentSecurityPolicy(config, 'docs', { scriptHashes: hashes })
    }
    return policy
  }
}

/**
 * MkDocs Material's own files, named by their content (assets/javascripts/bundle.467223ff.min.js):
 * only these are kept a year. Every other file (the docs' stylesheet, the search index, an
 * image) keeps its name from one release to the next, so it is revalidated like a page, its
 * ETag making that cheap: a day-long copy would sit beside the next release's pages.
 */
export function isDocsFingerprinted (root: string, path: string): boolean {
  return relative(root, path).startsWith(`assets${sep}`) && isFingerprinted(path)
}

/**
 * Text types the static server names without a charset (it adds one to text/*, JSON and
 * JavaScript only): MkDocs' sitemap.xml, an SVG. The build writes UTF-8, and says so, as the
 * marketing site's /sitemap.xml does.
 */
const CHARSETLESS_TEXT = /^(?:application|image)\/(?:[\w.-]+\+)?(?:xml|json)$/

export default async function docsSite (app: FastifyInstance, opts: DocsOptions): Promise<void> {
  const { config } = app
  const { root } = opts
  const policy = docsPolicy(root, config)
  const caching = { immutable: (path: string) => isDocsFingerprinted(root, path), other: HTML_CACHE }
  // As for the marketing site: `npm start` builds or rebuilds the docs, a server started
  // directly says what every /docs/ path will answer until they are built.
  if (!docsBuilt(root)) app.log.warn({ dir: root }, 'the documentation is not built; run npm run docs')
  else if (docsBuiltElsewhere(root, config.publicBaseUrl)) {
    app.log.warn({ dir: root, built: { publicBaseUrl: docsBuiltFor(root) }, config: { publicBaseUrl: config.publicBaseUrl } },
      'the documentation was built for another address: its canonical links and sitemap are wrong; run npm run docs with this environment')
  }

  app.get('/docs', { schema: { hide: true } }, async (request, reply) => {
    const query = request.url.indexOf('?')
    return reply.redirect(query < 0 ? '/docs/' : `/docs/${request.url.slice(query)}`, 308)
  })

  await app.register(async (files) => {
    refusalsAreMisses(files)
    files.addHook('onRequest', async (request, reply) => {
      if (!docsBuilt(root)) return sendUnavailable(request, reply, config, 'docs_not_built', DOCS_NOT_BUILT)
      // Decided on the decoded path, as the static server reads it (/docs/index%2ehtml is
      // index.html there); a malformed escape goes on to the router's 400.
      const { raw, path, query } = requestPath(request.url)
      if (path === undefined) return
      if (isHiddenBuildFile(path)) return reply.callNotFound()
      // One URL per page, as on the marketing site: …/index.html leads to its directory URL.
      // Decoding leaves every "/" where it was (%2F stays encoded), so the raw path's last one
      // ends that directory, its other escapes kept as they came.
      if (path.endsWith('/index.html')) return redirectToCleanUrl(reply, raw.slice(0, raw.lastIndexOf('/') + 1), query)
    })
    // onSend, not setHeaders: a pre-compressed file's type is set again after setHeaders runs.
    // Not async: the static server's directory redirect is sent without being returned, and
    // one more asynchronous step before the headers are written makes Fastify send it twice.
    files.addHook('onSend', (_request, reply, payload, done) => {
      const type = reply.getHeader('content-type')
      if (typeof type === 'string' && CHARSETLESS_TEXT.test(type)) reply.header('content-type', `${type}; charset=utf-8`)
      done(null, payload)
    })
    await files.register(fastifyStatic, {
      root,
      prefix: '/docs/',
      decorateReply: false,
      preCompressed: true,
      cacheControl: false,
      dotfiles: 'ignore',
      index: ['index.html'],
      // /docs/a/b (a directory) → /docs/a/b/, so its relative links resolve.
      redirect: true,
      suppressWarning: true,
      setHeaders: (reply, path) => { setStaticHeaders(reply, path, config, policy(), caching) }
    })
  })
}
