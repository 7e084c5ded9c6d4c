// A tenant's billing kept per subscription, as facts that only grow: each field keeps the
// newest statement (by Stripe `created`, ties by rank) or a flag once set. Folding a set of
// events in any order gives the same facts, and the tenant's billing columns are a pure
// summary of them, so two subscriptions at once no longer depend on delivery order. No I/O.
import { PLANS } from '../plans.ts'
import type { Billing } from './lifecycle.ts'

/** A subscription's status while it runs; its end is the separate, absorbing `ended`. */
export type Standing = Exclude<Billing, 'canceled'>

export interface SubscriptionFacts {
  /** The newest status stated (pending until one is). */
  status: Standing
  statusAt: number
  /** The newest plan stated; null until one is. */
  plan: string | null
  planAt: number
  /** Deleted or expired: absorbing, whatever its age. `endedAt` is the newest such event. */
  ended: boolean
  endedAt: number
  /** The reason an end gave (of several, the greatest text, so any order keeps the same). */
  endReason: string | null
  /** Some event proved a payment of it. */
  paid: boolean
}

export interface BillingState {
  /** By subscription id; `''` holds what events naming none said, and the checkout's plan. */
  subscriptions: Record<string, SubscriptionFacts>
  /** The newest failed or expired checkout: it cancels the tenant while nothing was ever paid. */
  checkoutFailed: { at: number, reason: string } | null
}

/** What the columns of the tenant row say, all derived from a `BillingState`. */
export interface BillingSummary {
  billing: Billing
  billingAt: number
  plan: string
  planAt: number
  /** The subscription the tenant stands on; null while no event named one. */
  subscriptionId: string | null
  /** Set while only a failed checkout cancels the tenant: the billing underneath. */
  softCancelFrom: Standing | null
  everPaid: boolean
  /** Why it is canceled: the failed checkout's reason, or the end's of the subscription it stands on (the failed checkout's when that gives none and nothing was paid). */
  cancelReason: string | null
}

/** One event's statement about a subscription (the lifecycle's `BillingChange`, narrowed). */
export interface Statement {
  /** Stripe `created` of the event, unix seconds. */
  at: number
  billing?: Billing
  plan?: string
  /** None: the event names no subscription. */
  subscriptionId?: string
  /** Why billing becomes canceled: kept as the tenant's error text. */
  reason?: string
  /** A failed or expired checkout: cancels only while the tenant was never paid. */
  onlyIfNeverPaid?: boolean
}

const CHECKOUT_FAILED = 'The checkout failed.'

// Events of the same second (Stripe's `created` has one-second resolution) are settled by a
// fixed rank, not by arrival: a payment outranks a failed one (a retry that succeeded), and
// the higher tier outranks the lower (the subscription's next update settles a downgrade).
const STATUS_RANK: Record<Standing, number> = { pending: 0, past_due: 1, paid: 2 }

function planRank (plan: string | null): number {
  return plan === null ? -1 : PLANS.findIndex((p) => p.slug === plan)
}

/** Whether a statement made at `at` supersedes the one kept from `keptAt`. */
function supersedes (at: number, keptAt: number, rank: number, keptRank: number): boolean {
  return at > keptAt || (at === keptAt && rank >= keptRank)
}

const UNKNOWN: SubscriptionFacts = { status: 'pending', statusAt: 0, plan: null, planAt: 0, ended: false, endedAt: 0, endReason: null, paid: false }

/** A new tenant's facts: no subscription yet, and the plan its checkout chose. */
export function initialBillingState (plan: string): BillingState {
  return { subscriptions: { '': { ...UNKNOWN, plan } }, checkoutFailed: null }
}

/** A subscription's facts, if the state has any (own keys only: an id is any printable text). */
export function factsOf (state: BillingState, key: string): SubscriptionFacts | undefined {
  return Object.hasOwn(state.subscriptions, key) ? state.subscriptions[key] : undefined
}

/** Whether a statement changed nothing: its subscription's facts and the checkout's failure are as they were. */
export function unchangedBy (before: BillingState, after: BillingState, key: string): boolean {
  const a = factsOf(before, key)
  const b = factsOf(after, key)
  return before.checkoutFailed === after.checkoutFailed && a !== undefined && b !== undefined &&
    a.status === b.status && a.statusAt === b.statusAt && a.plan === b.plan && a.planAt === b.planAt &&
    a.ended === b.ended && a.endedAt === b.endedAt && a.endReason === b.endReason && a.paid === b.paid
}

/** The facts after one more statement; the input is not changed. */
export function withStatement (state: BillingState, s: Statement): BillingState {
  const key = s.subscriptionId ?? ''
  const next = { ...(factsOf(state, key) ?? UNKNOWN) }
  let checkoutFailed = state.checkoutFailed
  if (s.billing === 'canceled' && s.onlyIfNeverPaid === true) {
    const reason = s.reason ?? CHECKOUT_FAILED
    // Ties by the reason's text, so two failures of one second settle the same in any order.
    if (checkoutFailed === null || s.at > checkoutFailed.at || (s.at === checkoutFailed.at && reason > checkoutFailed.reason)) checkoutFailed = { at: s.at, reason }
  } else if (s.billing === 'canceled') {
    next.ended = true
    next.endedAt = Math.max(next.endedAt, s.at)
    if (s.reason !== undefined && (next.endReason === null || s.reason > next.endReason)) next.endReason = s.reason
  } else if (s.billing !== undefined) {
    if (supersedes(s.at, next.statusAt, STATUS_RANK[s.billing], STATUS_RANK[next.status])) {
      next.status = s.billing
      next.statusAt = s.at
    }
    // Any payment, however old, proves one.
    if (s.billing === 'paid') next.paid = true
  }
  if (s.plan !== undefined && supersedes(s.at, next.planAt, planRank(s.plan), planRank(next.plan))) {
    next.plan = s.plan
    next.planAt = s.at
  }
  return { subscriptions: { ...state.subscriptions, [key]: next }, checkoutFailed }
}

/** Whether all a statement says is older than what `s` keeps (a first payment is never old). */
export function outdated (s: SubscriptionFacts, st: Statement): boolean {
  if (st.billing === 'canceled' || (st.billing === undefined && st.plan === undefined)) return false
  const billingOld = st.billing === undefined ||
    (!supersedes(st.at, s.statusAt, STATUS_RANK[st.billing], STATUS_RANK[s.status]) && (st.billing !== 'paid' || s.paid))
  return billingOld && (st.plan === undefined || !supersedes(st.at, s.planAt, planRank(st.plan), planRank(s.plan)))
}

/**
 * How much a subscription holds the tenant up: a paid one running (paid > past_due), then an
 * ended one, then one never paid (its first invoice failed, or no status yet). So a new
 * subscription revives a canceled tenant only once it is paid. Once the tenant has a
 * subscription, what events naming none said (a one-off invoice, say) holds it up not at
 * all, unless it ended it: Stripe bills the subscriptions.
 */
function standing (key: string, s: SubscriptionFacts, named: boolean): number {
  if (s.ended) return 3
  if (key === '' && named) return -1
  return s.paid ? 4 + STATUS_RANK[s.status] : STATUS_RANK[s.status]
}

/** When the subscription's standing was last stated: its end, once ended. */
function billingAtOf (s: SubscriptionFacts): number {
  return s.ended ? s.endedAt : s.statusAt
}

type Entry = [string, SubscriptionFacts]

/** Which of two entries the tenant stands on, by standing, then the higher plan (so two paid
 * subscriptions do not swap at each renewal), the newer statement, the id (any fixed order). */
function compare (a: Entry, b: Entry, named: boolean): number {
  return (standing(a[0], a[1], named) - standing(b[0], b[1], named)) || (planRank(a[1].plan) - planRank(b[1].plan)) ||
    (billingAtOf(a[1]) - billingAtOf(b[1])) || (a[0] > b[0] ? 1 : a[0] < b[0] ? -1 : 0)
}

function highest (entries: Entry[], named: boolean): Entry | undefined {
  let top: Entry | undefined
  for (const e of entries) if (top === undefined || compare(e, top, named) > 0) top = e
  return top
}

/**
 * Why an ended subscription cancels the tenant: its end's reason. An end that gives none (a
 * first invoice never paid: `incomplete_expired`) keeps the failed checkout's, which is why
 * it ended, while nothing was ever paid.
 */
function endReason (top: SubscriptionFacts, state: BillingState, everPaid: boolean): string | null {
  if (top.endReason !== null) return top.endReason
  return everPaid ? null : state.checkoutFailed?.reason ?? null
}

/**
 * The tenant's billing: that of the subscription standing highest, and the subscription it
 * is on is the highest of those named. Its plan is the highest's, else the newest any event
 * stated.
 */
export function summarize (state: BillingState, fallbackPlan: string): BillingSummary {
  const all = Object.entries(state.subscriptions)
  const namedOnes = all.filter(([key]) => key !== '')
  const named = namedOnes.length > 0
  const top = highest(all, named)
  let planFrom = top !== undefined && top[1].plan !== null ? top[1] : undefined
  if (planFrom === undefined) {
    for (const [, s] of all) {
      if (s.plan !== null && (planFrom === undefined || supersedes(s.planAt, planFrom.planAt, planRank(s.plan), planRank(planFrom.plan)))) planFrom = s
    }
  }
  const under: Billing = top === undefined ? 'pending' : top[1].ended ? 'canceled' : top[1].status
  const everPaid = all.some(([, s]) => s.paid)
  const soft = state.checkoutFailed !== null && !everPaid && under !== 'canceled'
  return {
    billing: soft ? 'canceled' : under,
    billingAt: top === undefined ? 0 : billingAtOf(top[1]),
    plan: planFrom?.plan ?? fallbackPlan,
    planAt: planFrom?.planAt ?? 0,
    subscriptionId: highest(namedOnes, named)?.[0] ?? null,
    softCancelFrom: soft ? under as Standing : null,
    everPaid,
    cancelReason: soft ? state.checkoutFailed!.reason : under === 'canceled' ? endReason(top![1], state, everPaid) : null
  }
}

/** The columns a summary is kept in, as a tenant row has them. */
export interface BillingColumns {
  billing: Billing
  billingAt: number
  plan: string
  planAt: number
  subscriptionId: string | null
  softCancelFrom: Billing | null
  paidAt: string | null
  error: string | null
  billingState: BillingState | null
}

function agrees (s: BillingSummary, c: BillingColumns): boolean {
  return s.billing === c.billing && s.billingAt === c.billingAt && s.plan === c.plan && s.planAt === c.planAt &&
    s.subscriptionId === c.subscriptionId && s.softCancelFrom === c.softCancelFrom && s.everPaid === (c.paidAt !== null)
}

/**
 * The tenant's facts. A row without them (written before migration 007), or whose columns
 * no longer agree with them (an older release applied events after), gets them rebuilt from
 * its columns: one subscription holding everything the columns say.
 */
export function billingStateOf (c: BillingColumns): BillingState {
  return billingOf(c).state
}

/** The tenant's facts (`billingStateOf`) with their summary, worked out once. */
export function billingOf (c: BillingColumns): { state: BillingState, summary: BillingSummary } {
  if (c.billingState !== null) {
    const summary = summarize(c.billingState, c.plan)
    if (agrees(summary, c)) return { state: c.billingState, summary }
  }
  const state = rebuilt(c)
  return { state, summary: summarize(state, c.plan) }
}

/** Facts from the columns alone: one subscription holding everything they say. */
function rebuilt (c: BillingColumns): BillingState {
  const hard = c.billing === 'canceled' && c.softCancelFrom === null
  const status: Standing = c.billing === 'canceled' ? (c.softCancelFrom ?? 'pending') as Standing : c.billing
  const facts: SubscriptionFacts = {
    status,
    statusAt: c.billingAt,
    plan: c.plan,
    planAt: c.planAt,
    ended: hard,
    endedAt: hard ? c.billingAt : 0,
    endReason: hard ? c.error : null,
    paid: c.paidAt !== null
  }
  return {
    subscriptions: { [c.subscriptionId ?? '']: facts },
    checkoutFailed: c.billing === 'canceled' && !hard ? { at: 0, reason: c.error ?? CHECKOUT_FAILED } : null
  }
}
