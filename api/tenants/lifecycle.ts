// The tenant lifecycle as pure rules, no I/O. A tenant has two facts — billing and infra —
// and the public `state` (the seed's vocabulary) is derived from them, never stored.
import { billingOf, factsOf, outdated, summarize, unchangedBy, withStatement, type BillingColumns, type Statement } from './billing-state.ts'

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

/**
 * Whether the tenant's CTF is up for its buyer: paid once, set up, and not torn down. Past due
 * and canceled ones too, until the teardown (the welcome page's `online`, buyer-text.ts).
 */
export function serverOnline (t: { billing: Billing, infra: Infra, paidAt: string | null, readyAt: string | null }): boolean {
  if (t.infra !== 'ready') return false
  return t.billing === 'paid' || (t.paidAt !== null && t.readyAt !== null)
}

/** What one event says about a tenant's billing: its statement, and the customer it names. */
export interface BillingChange extends Statement {
  customerId?: string
}

export interface BillingFacts extends BillingColumns {
  infra: Infra
  customerId: string | null
}

export type ChangeOutcome = 'ok' | 'stale' | 'ignored_terminal'

export interface ChangeResult {
  /** How the event is answered; the patch and side effects apply whatever it says. */
  outcome: ChangeOutcome
  /** Fields to write; empty when nothing changes. */
  patch: Partial<BillingFacts> & { canceledAt?: string | null }
  /** The event named a subscription the tenant did not know: index it. */
  newSubscription: boolean
  /** Provision: the first payment, or a canceled tenant revived without a running server. */
  startProvisioning: boolean
  /** Billing became canceled: schedule teardown after the grace period. */
  scheduleTeardown: boolean
}

const SUMMARY_FIELDS = ['billing', 'billingAt', 'plan', 'planAt', 'subscriptionId', 'softCancelFrom'] as const

/**
 * Applies one event's change. The event is added to the tenant's facts per subscription
 * (billing-state.ts), which any order of the same events leaves the same; the tenant's
 * billing is their summary:
 * - a subscription's status and plan each follow its newest event (by `created`) that
 *   states them, ties settled by rank; any `paid`, however old, proves a payment;
 * - a subscription's end is absorbing, whatever its age; the tenant is canceled when the
 *   subscription it stands on has ended and no other is paid and running;
 * - a failed or expired checkout cancels only a tenant never paid, so any payment, whenever
 *   made, outweighs it.
 * Side effects follow the summary's change: provisioning at the first payment (or when a
 * canceled tenant without a running server is revived), teardown when it becomes canceled.
 */
export function applyBillingChange (facts: BillingFacts, change: BillingChange, nowIso: string): ChangeResult {
  const { state: before, summary: was } = billingOf(facts)
  const after = withStatement(before, change)
  const now = summarize(after, facts.plan)
  const key = change.subscriptionId ?? ''
  const prior = factsOf(before, key)

  const patch: ChangeResult['patch'] = {}
  if (facts.billingState !== before || !unchangedBy(before, after, key)) patch.billingState = after
  for (const f of SUMMARY_FIELDS) if (now[f] !== facts[f]) (patch as Record<string, unknown>)[f] = now[f]
  // Identity: the first customer seen is kept (all of a tenant's subscriptions share it).
  if (change.customerId !== undefined && facts.customerId === null) patch.customerId = change.customerId
  if (now.everPaid && facts.paidAt === null) patch.paidAt = nowIso
  const canceled = now.billing === 'canceled'
  if (canceled && was.billing !== 'canceled') patch.canceledAt = nowIso
  else if (!canceled && was.billing === 'canceled') patch.canceledAt = null
  // Why it is canceled (billing-state.ts), the same in any order; cleared when it comes back.
  const error = canceled ? now.cancelReason : was.billing === 'canceled' ? null : undefined
  if (error !== undefined && error !== facts.error) patch.error = error

  // The answer: `ignored_terminal` for a canceled tenant that stays so, or an ended
  // subscription whose event changes nothing; `stale` when all it stated was older than what
  // is kept; else `ok`.
  let outcome: ChangeOutcome = 'ok'
  const changed = SUMMARY_FIELDS.some((f) => now[f] !== was[f]) || now.everPaid !== was.everPaid
  const terminal = was.billing === 'canceled' && (was.softCancelFrom === null || change.onlyIfNeverPaid === true)
  if ((terminal && canceled) || (!changed && prior?.ended === true)) {
    outcome = 'ignored_terminal'
  } else if (!changed && prior !== undefined && outdated(prior, change)) {
    outcome = 'stale'
  }
  return {
    outcome,
    patch,
    newSubscription: change.subscriptionId !== undefined && prior === undefined,
    startProvisioning: now.everPaid && !canceled && (facts.infra === 'none' || (was.billing === 'canceled' && facts.infra !== 'ready')),
    scheduleTeardown: canceled && was.billing !== 'canceled'
  }
}

/** Stripe subscription status → billing; `undefined` means no change (`incomplete`). */
export function billingFromSubscriptionStatus (status: string): Billing | undefined {
  switch (status) {
    case 'active':
    case 'trialing':
      return 'paid'
    case 'past_due':
    case 'unpaid':
    // A trial that ended without a payment method (trial_settings' missing_payment_method:
    // pause): nothing is being paid, but resuming it needs no new server.
    case 'paused':
      return 'past_due'
    case 'canceled':
    case 'incomplete_expired':
      return 'canceled'
    default:
      return undefined
  }
}
