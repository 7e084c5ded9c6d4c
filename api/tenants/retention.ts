// Retention: how long the control plane keeps buyers' personal data it no longer needs.
// - A Stripe event's payload (the customer's email; their name, phone and address are not
//   stored: storablePayload) serves to apply the event, and to replay or diagnose it while
//   Stripe may still resend it: 30 days. After that the row stays without it: its id keeps a
//   late duplicate out, its type, outcome and tenant the history.
// - An order never paid for (an abandoned or refused checkout) holds the buyer's name, email
//   and its address (slug) for ever. Removed, its address is free again; its events lose their
//   payloads with it, and the audit chain records the removal: the reason, no name or email
//   (the chain's earlier entries keep the address, as no entry may change).
// `ctfhive prune` runs both; nothing runs on its own. `ctfhive erase` answers one buyer's request
// to be forgotten, once nothing of theirs still runs.
import { setImmediate as nextTurn } from 'node:timers/promises'
import { AppError } from '../errors.ts'
import { appendAudit } from '../provisioning/audit.ts'
import type { EventPosition, Store, StoreOps, Tenant } from '../store/store.ts'

const DAY_MS = 24 * 60 * 60 * 1000

/** Stripe resends an event (Dashboard, CLI) up to 30 days after it was made. */
export const MIN_EVENT_DAYS = 31
export const DEFAULT_EVENT_DAYS = 90
/**
 * A Checkout Session expires within 24 hours and Stripe retries a delivery for up to 3 days: a
 * payment for an order this old can no longer be on its way (async methods are excluded below).
 */
export const MIN_ORDER_DAYS = 7
export const DEFAULT_ORDER_DAYS = 30

/** What an erased tenant is named: the column holds a name for every tenant. */
export const ERASED_NAME = '(erased)'

/** Rows per write transaction: the SQLite writer (every webhook's) is held only briefly. */
const BATCH = 500

export interface PruneReport {
  dry_run: boolean
  events: { received_before: string, blanked: number }
  orders: { created_before: string, removed: number, tenant_ids: string[] }
}

/**
 * An order never paid that no payment can still reach: nothing paid, no server, and either
 * canceled (its checkout expired or failed, its subscription ended unpaid) or still pending
 * without a subscription (its checkout was left; the expiry event never came). A pending order
 * with a subscription may be waiting for a slow payment method (a bank debit): kept.
 */
export function isAbandonedOrder (t: Tenant, createdBefore: string): boolean {
  if (t.paidAt !== null || t.infra !== 'none' || t.createdAt >= createdBefore) return false
  return t.billing === 'canceled' || (t.billing === 'pending' && t.subscriptionId === null)
}

/** A job of the tenant's still queued or running: nothing of its may be removed under it. */
async function hasLiveJob (tx: StoreOps, tenant: string): Promise<boolean> {
  return (await tx.listJobs({ tenant })).some((j) => j.status === 'queued' || j.status === 'running')
}

export class Retention {
  private readonly store: Store
  private readonly auditSecret: string

  constructor (opts: { store: Store, auditSecret: string }) {
    this.store = opts.store
    this.auditSecret = opts.auditSecret
  }

  async prune (opts: { eventDays: number, orderDays: number, dryRun: boolean }): Promise<PruneReport> {
    const now = this.store.now()
    const eventsBefore = new Date(now - opts.eventDays * DAY_MS).toISOString()
    const ordersBefore = new Date(now - opts.orderDays * DAY_MS).toISOString()
    // Orders first: their events are blanked with them, whatever their age.
    const removed = await this.pruneOrders(ordersBefore, opts.dryRun)
    const blanked = await this.pruneEvents(eventsBefore, opts.dryRun)
    return {
      dry_run: opts.dryRun,
      events: { received_before: eventsBefore, blanked },
      orders: { created_before: ordersBefore, removed: removed.length, tenant_ids: removed }
    }
  }

  /** Blanks the payloads of events received before `before`; returns how many (would be) blanked. */
  async pruneEvents (before: string, dryRun: boolean): Promise<number> {
    let after: EventPosition | undefined
    let count = 0
    for (;;) {
      const batch = await this.store.listPayloadsBefore(before, after, BATCH)
      if (batch.length === 0) return count
      count += dryRun ? batch.length : await this.store.blankPayloads({ ids: batch.map((e) => e.id) })
      if (batch.length < BATCH) return count
      after = batch[batch.length - 1]
      // A turn between batches: webhooks and health checks of a server in this process go on.
      await nextTurn()
    }
  }

  /** Removes the orders abandoned before `before`; returns their ids (those it would remove). */
  async pruneOrders (before: string, dryRun: boolean): Promise<string[]> {
    const candidates: string[] = []
    // Listed newest first: starting after (before, '') reads only those made before it.
    for (const billing of ['canceled', 'pending'] as const) {
      let after = { createdAt: before, id: '' }
      for (;;) {
        const page = await this.store.listTenants({ billing, infra: 'none', after, limit: BATCH })
        for (const t of page) if (isAbandonedOrder(t, before)) candidates.push(t.id)
        if (page.length < BATCH) break
        after = { createdAt: page[page.length - 1]!.createdAt, id: page[page.length - 1]!.id }
        await nextTurn()
      }
    }
    if (dryRun) return candidates
    const removed: string[] = []
    for (const id of candidates) {
      if (await this.removeOrder(id, before)) removed.push(id)
    }
    return removed
  }

  /** Removes one order if it is still abandoned (a payment may have come since it was listed). */
  private removeOrder (id: string, before: string): Promise<boolean> {
    return this.store.transaction(async (tx) => {
      const t = await tx.getTenantForUpdate(id)
      if (t === undefined || !isAbandonedOrder(t, before) || await hasLiveJob(tx, id)) return false
      const blanked = await tx.blankPayloads({ tenant: id })
      await tx.deleteTenant(id)
      await appendAudit(tx, this.auditSecret, id, 'tenant.removed', { reason: 'order never paid', billing: t.billing, created_at: t.createdAt, payloads_blanked: blanked })
      return true
    })
  }

  /**
   * Forgets who a former buyer is, on their request: name, email and the CTF administrator's
   * email blanked, their events' payloads too; the tenant row stays (its address, its Stripe
   * ids, its dates: the record of what was sold), and so does the audit chain, whose entries
   * no one may change. Only once nothing of theirs runs: no server, no job under way, and
   * their subscription ended (or nothing ever paid).
   */
  async erase (id: string): Promise<{ tenant_id: string, payloads_blanked: number }> {
    return this.store.transaction(async (tx) => {
      const t = await tx.getTenantForUpdate(id)
      if (t === undefined) throw new AppError('tenant_not_found', `No tenant has the id ${id}.`)
      const still = t.billing !== 'canceled' && t.paidAt !== null
        ? `a subscription (billing ${t.billing})`
        : t.infra !== 'none' && t.infra !== 'deprovisioned'
          ? `a server (infra ${t.infra})`
          : await hasLiveJob(tx, id) ? 'a job under way' : null
      if (still !== null) throw new AppError('conflict', `Tenant ${id} still has ${still}: cancel the subscription and let the teardown run first.`, { tenant_id: id })
      const blanked = await tx.blankPayloads({ tenant: id })
      const already = t.name === ERASED_NAME && t.email === '' && t.adminEmail === null
      if (!already) {
        await tx.updateTenant(id, { name: ERASED_NAME, email: '', adminEmail: null })
        await appendAudit(tx, this.auditSecret, id, 'tenant.erased', { payloads_blanked: blanked })
      }
      return { tenant_id: id, payloads_blanked: blanked }
    })
  }
}
