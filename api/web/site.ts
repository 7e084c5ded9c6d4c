// The public site: robots.txt, sitemap.xml and the HTML 404 (marketing pages land here).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { errorBody } from '../errors.ts'

export async function sendSiteNotFound (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  reply.code(404).send(errorBody('not_found', `No page at ${request.url.split('?')[0]}.`))
}

export default async function webRoutes (app: FastifyInstance): Promise<void> {
  const base = app.config.publicBaseUrl
  app.get('/robots.txt', { schema: { hide: true } }, async (_request, reply) => {
    reply.type('text/plain; charset=utf-8')
    return `User-agent: *\nAllow: /\nDisallow: /login\nDisallow: /register\n\nSitemap: ${base}/sitemap.xml\n`
  })
}
