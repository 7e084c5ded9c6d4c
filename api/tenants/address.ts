// Where a tenant lives. Its address is stored, and settles when its first server is queued, so
// a later change of BASE_DOMAIN moves new tenants only: a CTF keeps the address its players know.
import type { Tenant } from '../store/store.ts'

/** A DNS label: what a slug is, and the first label of every tenant address. */
export const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/

/**
 * A tenant address as the server's bootstrap takes it (cloud-init.ts): DNS labels, the last
 * one letters or an IDN's `xn--` form, 253 characters at most.
 */
export const HOSTNAME = /^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,63}|xn--[a-z0-9-]{0,58}[a-z0-9])$/

/** BASE_DOMAIN leaves room for a slug of a whole label (63) and its dot within those 253. */
export const BASE_DOMAIN_MAX_LENGTH = 253 - 64

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
