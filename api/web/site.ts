// The public face of the service: the marketing site at /, the documentation at /docs/,
// robots.txt and sitemap.xml, and the HTML 404 for every other page a browser asks for.
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { errorBody } from '../errors.ts'
import docsSite, { docsBuilt, docsBuiltElsewhere, docsPolicy } from './docs.ts'
import { compressedVariant, setHtmlHeaders } from './headers.ts'
import marketingSite from './marketing.ts'
import seoRoutes from './seo.ts'
import { NOT_FOUND_FILE } from './site-pages.ts'

interface Roots { dist: string, docs: string }

/** Per app (keyed by its config object): the not-found handler lives outside these plugins. */
const rootsOf = new WeakMap<object, Roots>()

/**
 * The site's HTML 404. It returns the reply, not a promise of undefined: while an async onSend
 * hook (app.ts's) still runs, Fastify takes undefined as "nothing sent" and sends again.
 */
export function sendSiteNotFound (request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const path = request.url.split('?')[0]!
  const roots = rootsOf.get(request.server.config) ?? { dist: resolve(request.server.config.marketingDistDir), docs: '' }
  const docs404 = join(roots.docs, '404.html')
  const file = path.startsWith('/docs/') && roots.docs !== '' && existsSync(docs404) ? docs404 : join(roots.dist, NOT_FOUND_FILE)
  if (!existsSync(file)) return reply.code(404).send(errorBody('not_found', `No page at ${path}.`))
  const variant = compressedVariant(request, file)
  const config = request.server.config
  setHtmlHeaders(reply, config, file === docs404 ? docsPolicy(roots.docs, config)() : undefined)
  reply.code(404).header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff').header('vary', 'accept-encoding')
  if (variant.encoding !== undefined) reply.header('content-encoding', variant.encoding)
  return reply.type('text/html; charset=utf-8').send(readFileSync(variant.path))
}

export default async function webRoutes (app: FastifyInstance): Promise<void> {
  const roots = { dist: resolve(app.config.marketingDistDir), docs: resolve(app.config.docsSiteDir) }
  rootsOf.set(app.config, roots)
  await app.register(seoRoutes, {
    docsBuilt: () => docsBuilt(roots.docs),
    docsBuiltHere: () => !docsBuiltElsewhere(roots.docs, app.config.publicBaseUrl)
  })
  await app.register(docsSite, { root: roots.docs })
  await app.register(marketingSite, { distDir: roots.dist })
}
