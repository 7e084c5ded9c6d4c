// The documentation at /docs/: the MkDocs build in DOCS_SITE_DIR, served as static files with
// MkDocs' directory URLs (/docs/control-plane/billing-stripe/ → …/index.html), and a clear
// 503 while it is not built, so the app and its tests work either way.
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../config.ts'
import { contentSecurityPolicy, isHiddenBuildFile, redirectToCleanUrl, refusalsAreMisses, sendUnavailable, setStaticHeaders } from './headers.ts'

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

export default async function docsSite (app: FastifyInstance, opts: DocsOptions): Promise<void> {
  const { config } = app
  const { root } = opts
  const policy = docsPolicy(root, config)

  app.get('/docs', { schema: { hide: true } }, async (request, reply) => {
    const query = request.url.indexOf('?')
    return reply.redirect(query < 0 ? '/docs/' : `/docs/${request.url.slice(query)}`, 308)
  })

  await app.register(async (files) => {
    refusalsAreMisses(files)
    files.addHook('onRequest', async (request, reply) => {
      if (!docsBuilt(root)) return sendUnavailable(request, reply, config, 'docs_not_built', DOCS_NOT_BUILT)
      if (isHiddenBuildFile(request.url)) return reply.callNotFound()
      // One URL per page, as on the marketing site: …/index.html leads to its directory URL.
      const [path, query] = request.url.split('?', 2) as [string, string | undefined]
      if (path.endsWith('/index.html')) return redirectToCleanUrl(reply, path.slice(0, -'index.html'.length), query)
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
      setHeaders: (reply, path) => { setStaticHeaders(reply, path, config, policy()) }
    })
  })
}
