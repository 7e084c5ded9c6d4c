// Where a tenant lives. Its address is stored, and settles when its first server is queued, so
// a later change of BASE_DOMAIN moves new tenants only: a CTF keeps the address its players know.
import type { Tenant } from '../store/store.ts'

/** A DNS label: what a slug is, and the first label of every tenant address. */
export const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/

/** The address a label has under a domain: the one rule for where a tenant is placed. */
export function addressUnder (label: string, baseDomain: string): string {
  return `${label}.${baseDomain}`
}

/**
 * The tenant's address. A row an older release wrote (during a rollback, say) has none until
 * the service next starts (Store.assignFqdns); it is where that release put it.
 */
export function tenantFqdn (tenant: Pick<Tenant, 'slug' | 'fqdn'>, baseDomain: string): string {
  return tenant.fqdn ?? addressUnder(tenant.slug, baseDomain)
}
