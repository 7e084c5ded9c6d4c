// The tenant lifecycle as pure rules, no I/O. A tenant has two facts — billing and infra —
// and the public `state` (the seed's vocabulary) is derived from them, never stored.
import { PLANS } from '../plans.ts'

export const BILLING = ['pending', 'paid', 'past_due', 'canceled'] as const
export const INFRA = ['none', 'provisioning', 'ready', 'failed', 'deprovisioned'] as const
export const STATES = ['provisioning', 'active', 'past_due', 'failed', 'canceled'] as const

export type Billing = typeof BILLING[number]
export type Infra = typeof INFRA[number]
export type TenantState = typeof STATES[number]

export function deriveTenantState (billing: Billing, infra: Infra): TenantState {
  if (billing === 'canceled') return 'canceled'
  if (infra === 'failed') return 'failed'
  if (billing === 'past_due') return 'past_due'
  if (billing === 'paid' && infra === 'ready') return 'active'
  return 'provisioning'
}

// Events of the same second (Stripe's `created` has one-second resolution) are settled by a
// fixed rank, not by arrival, so the end state stays independent of delivery order: a payment
// outranks a failed one (a retry that succeeded), and the higher tier outranks the lower
// (the subscription's next update settles a real downgrade).
const BILLING_RANK: Record<Exclude<Billing, 'canceled'>, number> = { pending: 0, past_due: 1, paid: 2 }

function planRank (plan: string): number {
  return PLANS.findIndex((p) => p.slug === plan)
}

/** Whether a change stated at `at` supersedes the one kept from `keptAt`. */
function supersedes (at: number, keptAt: number, rank: number, keptRank: number): boolean {
  return at > keptAt || (at === keptAt && rank >= keptRank)
}

/** What one event says about a tenant's billing; every field is optional. */
export interface BillingChange {
  /** Stripe `created` of the event, unix seconds. */
  at: number
  billing?: Billing
  plan?: string
  subscriptionId?: string
  customerId?: string
  /** Why billing becomes canceled, kept as the tenant's error text. */
  reason?: string
  /** Apply `billing: canceled` only while the tenant has never been paid (expired/failed checkout). */
  onlyIfNeverPaid?: boolean
}

export interface BillingFacts {
  billing: Billing
  infra: Infra
  billingAt: number
  planAt: number
  plan: string
  subscriptionId: string | null
  customerId: string | null
  paidAt: string | null
  /** Billing underneath a cancellation by a failed or expired checkout (never paid); else null. */
  softCancelFrom: Billing | null
}

export type ChangeOutcome = 'ok' | 'stale' | 'ignored_terminal'

export interface ChangeResult {
  outcome: ChangeOutcome
  /** Fields to write; empty when nothing changes. */
  patch: Partial<BillingFacts> & { error?: string | null, canceledAt?: string | null }
  /** Billing became paid for the first time: start provisioning. */
  startProvisioning: boolean
  /** Billing became canceled: schedule teardown after the grace period. */
  scheduleTeardown: boolean
}

/**
 * Applies one event's change. The rules make the end state independent of delivery order:
 * - billing status and plan each follow the newest event (by `created`) that states them,
 *   ties settled by rank; an older one is `stale` for that fact — except that any `paid`,
 *   however old, proves a payment and starts provisioning once;
 * - `canceled` is absorbing: it applies whatever its age, and afterwards every event about
 *   that subscription is `ignored_terminal`; only a paid event of a new subscription
 *   reactivates the tenant;
 * - a failed or expired checkout cancels only a tenant never paid, so any payment, whenever
 *   made, outweighs it: the billing status underneath is kept (`softCancelFrom`) and follows
 *   later events, and a payment restores it.
 */
export function applyBillingChange (facts: BillingFacts, change: BillingChange, nowIso: string): ChangeResult {
  const none: ChangeResult = { outcome: 'ok', patch: {}, startProvisioning: false, scheduleTeardown: false }
  if (facts.billing === 'canceled' && facts.softCancelFrom !== null) return applyUnderSoftCancel(facts, facts.softCancelFrom, change, nowIso)
  const otherSubscription = change.subscriptionId !== undefined && facts.subscriptionId !== null && change.subscriptionId !== facts.subscriptionId
  if (facts.billing === 'canceled') {
    // Terminal for the canceled subscription; a new paid subscription reactivates the tenant
    // (its server is kept if the grace period has not run out).
    if (!(otherSubscription && change.billing === 'paid')) return { ...none, outcome: 'ignored_terminal' }
    return {
      outcome: 'ok',
      patch: {
        billing: 'paid',
        billingAt: Math.max(change.at, facts.billingAt),
        subscriptionId: change.subscriptionId,
        ...(change.customerId !== undefined ? { customerId: change.customerId } : {}),
        ...(change.plan !== undefined ? { plan: change.plan, planAt: Math.max(change.at, facts.planAt) } : {}),
        // A tenant canceled before it ever paid is paid now: a failed checkout no longer cancels it.
        ...(facts.paidAt === null ? { paidAt: nowIso } : {}),
        canceledAt: null,
        error: null
      },
      // Anything short of a running server is provisioned (again) for the new subscription: one
      // that failed, was torn down, or was never made (its job skipped when the first
      // subscription ended). A provision job still live is reused, not doubled.
      startProvisioning: facts.infra !== 'ready',
      scheduleTeardown: false
    }
  }
  // A subscription the tenant has moved on from cannot cancel it.
  if (otherSubscription && change.billing === 'canceled') return { ...none, outcome: 'stale' }

  const patch: ChangeResult['patch'] = {}
  let startProvisioning = false
  let scheduleTeardown = false
  let appliedSomething = false
  let staleSomething = false

  // Identity links are facts, not ordered changes: the first one seen is kept.
  if (change.subscriptionId !== undefined && facts.subscriptionId === null) patch.subscriptionId = change.subscriptionId
  if (change.customerId !== undefined && facts.customerId === null) patch.customerId = change.customerId

  if (change.billing !== undefined) {
    // Never paid, whatever the billing status says: a first invoice may already have failed.
    const neverPaid = facts.paidAt === null
    if (change.billing === 'canceled') {
      if (!change.onlyIfNeverPaid || neverPaid) {
        patch.billing = 'canceled'
        // A soft cancellation leaves the billing timeline as it is, for a payment to restore.
        if (change.onlyIfNeverPaid) patch.softCancelFrom = facts.billing
        else patch.billingAt = Math.max(change.at, facts.billingAt)
        patch.canceledAt = nowIso
        if (change.reason !== undefined) patch.error = change.reason
        scheduleTeardown = true
        appliedSomething = true
      }
    } else if (!supersedes(change.at, facts.billingAt, BILLING_RANK[change.billing], BILLING_RANK[facts.billing])) {
      staleSomething = true
      // An old `paid` still proves a payment: provisioning must not depend on delivery order.
      if (change.billing === 'paid' && facts.paidAt === null) {
        patch.paidAt = nowIso
        startProvisioning = facts.infra === 'none'
        appliedSomething = true
      }
    } else {
      appliedSomething = true
      patch.billingAt = change.at
      if (change.billing !== facts.billing) patch.billing = change.billing
      if (change.billing === 'paid' && facts.paidAt === null) {
        patch.paidAt = nowIso
        startProvisioning = facts.infra === 'none'
      }
    }
  }

  if (change.plan !== undefined) {
    if (!supersedes(change.at, facts.planAt, planRank(change.plan), planRank(facts.plan))) {
      staleSomething = true
    } else {
      appliedSomething = true
      patch.planAt = change.at
      if (change.plan !== facts.plan) patch.plan = change.plan
    }
  }

  const outcome: ChangeOutcome = staleSomething && !appliedSomething ? 'stale' : 'ok'
  return { outcome, patch, startProvisioning, scheduleTeardown }
}

/**
 * A tenant canceled by a failed or expired checkout, never paid. Its billing status carries on
 * underneath (`under`): a payment voids the cancellation and restores it; a real cancellation
 * makes it final; anything else moves only what is underneath.
 */
function applyUnderSoftCancel (facts: BillingFacts, under: Billing, change: BillingChange, nowIso: string): ChangeResult {
  if (change.billing === 'canceled') {
    if (change.onlyIfNeverPaid) return { outcome: 'ignored_terminal', patch: {}, startProvisioning: false, scheduleTeardown: false }
    const hard = applyBillingChange({ ...facts, billing: under, softCancelFrom: null }, change, nowIso)
    // A subscription the tenant moved on from changes nothing; otherwise the cancellation is final.
    if (hard.patch.billing !== 'canceled') return hard
    const { canceledAt: _first, ...patch } = hard.patch // the tenant stays canceled since the failure
    return { ...hard, patch: { ...patch, softCancelFrom: null } }
  }
  const r = applyBillingChange({ ...facts, billing: under, softCancelFrom: null }, change, nowIso)
  const { billing, ...rest } = r.patch
  if (r.patch.paidAt !== undefined) {
    // Paid after all: the checkout's failure no longer counts.
    return { ...r, patch: { ...rest, billing: billing ?? under, softCancelFrom: null, canceledAt: null, error: null } }
  }
  return { ...r, patch: { ...rest, ...(billing !== undefined ? { softCancelFrom: billing } : {}) } }
}

/** Stripe subscription status → billing; `undefined` means no change (`incomplete`). */
export function billingFromSubscriptionStatus (status: string): Billing | undefined {
  switch (status) {
    case 'active':
    case 'trialing':
      return 'paid'
    case 'past_due':
    case 'unpaid':
      return 'past_due'
    case 'canceled':
    case 'incomplete_expired':
      return 'canceled'
    default:
      return undefined
  }
}
