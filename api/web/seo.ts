// robots.txt and sitemap.xml, built at request time from PUBLIC_BASE_URL and whether the docs
// are built now (and for which address), so they follow both without a rebuild.
import type { FastifyInstance } from 'fastify'
import { sitemapPaths } from './site-pages.ts'
import { escapeHtml } from './slots.ts'

export interface SeoOptions {
  /** Whether the docs are built now (they and their own sitemap are listed only then). */
  docsBuilt: () => boolean
  /** Whether the built docs name this address (MkDocs wrote their sitemap with the one they were built for). */
  docsBuiltHere: () => boolean
}

export function robotsTxt (base: string, withDocsSitemap: boolean): string {
  return [
    'User-agent: *',
    'Allow: /',
    // As DESIGN §6 asks: the account pages are not for search (they carry noindex too). No
    // page links to /welcome, whose addresses carry a buyer's token.
    'Disallow: /login',
    'Disallow: /register',
    'Disallow: /welcome',
    '',
    `Sitemap: ${base}/sitemap.xml`,
    ...(withDocsSitemap ? [`Sitemap: ${base}/docs/sitemap.xml`] : []),
    ''
  ].join('\n')
}

export function sitemapXml (base: string, withDocs: boolean): string {
  const urls = sitemapPaths(withDocs).map((p) => `  <url><loc>${escapeHtml(`${base}${p}`)}</loc></url>`)
  return `<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n${urls.join('\n')}\n</urlset>\n`
}

export default async function seoRoutes (app: FastifyInstance, opts: SeoOptions): Promise<void> {
  const base = app.config.publicBaseUrl

  app.get('/robots.txt', { schema: { hide: true } }, async (_request, reply) => {
    reply.type('text/plain; charset=utf-8').header('cache-control', 'public, max-age=3600')
    // MkDocs wrote the docs' sitemap with the address they were built for: one that names
    // another host is refused by search engines, so it is left out until they are rebuilt.
    return robotsTxt(base, opts.docsBuilt() && opts.docsBuiltHere())
  })

  app.get('/sitemap.xml', { schema: { hide: true } }, async (_request, reply) => {
    reply.type('application/xml; charset=utf-8').header('cache-control', 'public, max-age=3600')
    return sitemapXml(base, opts.docsBuilt())
  })
}
