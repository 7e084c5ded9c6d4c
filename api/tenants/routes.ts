// GET /tenants/:id/status — the tenant's public status, with no secrets and no email.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { AppError, errorReplies } from '../errors.ts'
import { STATES, BILLING, INFRA } from './lifecycle.ts'
import { adminCredential } from './credentials.ts'

const literals = (values: readonly string[]) => Type.Union(values.map((v) => Type.Literal(v)))
const nullable = (s: ReturnType<typeof Type.String>) => Type.Union([s, Type.Null()])

export const TenantStatusSchema = Type.Object({
  tenant_id: Type.String(),
  name: Type.String(),
  plan: Type.String(),
  state: literals(STATES),
  billing: literals(BILLING),
  infra: literals(INFRA),
  subscription_id: nullable(Type.String()),
  fqdn: Type.String(),
  url: Type.String(),
  error: nullable(Type.String()),
  created_at: Type.String(),
  updated_at: Type.String(),
  paid_at: nullable(Type.String()),
  ready_at: nullable(Type.String()),
  canceled_at: nullable(Type.String())
})

// Either case is taken (lowercaseTenantId folds it before validation), so the published
// pattern says so too.
export const TenantIdParams = Type.Object({
  id: Type.String({ pattern: '^[0-9a-fA-F]{32}$', description: '32 hex characters (ids are lowercase; an uppercase copy finds the same tenant)' })
})

/**
 * preValidation for routes taking TenantIdParams: an id copied in uppercase is still 32 hex
 * characters (DESIGN §6 refuses only what is not), so it finds its tenant rather than a 400.
 */
export async function lowercaseTenantId (request: FastifyRequest): Promise<void> {
  if (request.routeOptions.schema?.params !== TenantIdParams) return
  const params = request.params as { id?: unknown }
  if (typeof params.id === 'string' && /^[0-9a-fA-F]{32}$/.test(params.id)) params.id = params.id.toLowerCase()
}

const CredentialsReply = Type.Object({
  tenant_id: Type.String(),
  login_url: Type.String(),
  admin_name: Type.String(),
  admin_email: Type.String(),
  password: Type.String()
})

export default async function tenantRoutes (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  app.addHook('preValidation', lowercaseTenantId)

  // The buyer's first admin credential, only for the holder of the signed welcome link.
  app.get('/tenants/:id/credentials', {
    schema: {
      summary: "The CTF's first administrator credential (signed welcome link only)",
      operationId: 'getTenantCredentials',
      tags: ['tenants'],
      params: TenantIdParams,
      querystring: Type.Object({ token: Type.String({ pattern: '^[0-9a-f]{40}$' }) }),
      response: {
        200: CredentialsReply,
        ...errorReplies({
          400: 'invalid_request (with `field`): an id or token of the wrong shape',
          403: 'forbidden: a token that is not this tenant\'s',
          404: 'tenant_not_found; credential_unavailable: the server has not published it yet',
          409: 'tenant_not_ready: the CTF is not online (not live yet, or torn down)',
          502: 'credential_unreadable: what the server published cannot be opened'
        })
      }
    }
  }, async (request, reply) => {
    reply.header('cache-control', 'no-store')
    return adminCredential({ config: app.config, tenants: app.tenants, executor: app.executor, log: request.log }, request.params.id, request.query.token)
  })

  app.get('/tenants/:id/status', {
    schema: {
      summary: "A tenant's state, plan and address",
      operationId: 'getTenantStatus',
      tags: ['tenants'],
      params: TenantIdParams,
      response: {
        200: TenantStatusSchema,
        ...errorReplies({
          400: 'invalid_request (with `field`): an id that is not 32 hex characters',
          404: 'tenant_not_found'
        })
      }
    }
  }, async (request, reply) => {
    const tenant = await app.tenants.getTenant(request.params.id)
    if (tenant === undefined) throw new AppError('tenant_not_found', `No tenant has the id ${request.params.id}.`)
    // Pollers (the welcome page) must see fresh state, never a cached one.
    reply.header('cache-control', 'no-store')
    return app.tenants.statusOf(tenant)
  })
}
