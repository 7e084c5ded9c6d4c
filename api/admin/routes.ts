// Operator API under /admin/*, behind `Authorization: Bearer ADMIN_TOKEN`; off when unset.
import type { FastifyInstance } from 'fastify'

export default async function adminRoutes (app: FastifyInstance): Promise<void> {
  if (app.config.adminToken === '') return
}
