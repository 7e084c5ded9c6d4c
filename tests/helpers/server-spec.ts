// The tenant the provisioning tests make a server for.
import type { ServerSpec } from '../../api/provisioning/executor.ts'

export const ACME_SPEC: ServerSpec = {
  tenantId: '0123456789abcdef0123456789abcdef',
  slug: 'acme',
  fqdn: 'acme.ctfhive.test',
  plan: 'standard',
  serverType: 'g6-standard-2',
  tenantName: 'Acme CTF',
  adminEmail: 'owner@acme.test'
}
