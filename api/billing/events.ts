// Stripe events → what they say about a tenant. Pure: no I/O. SUPPORTED_EVENTS is also the
// list the bootstrap CLI subscribes the webhook endpoint to, so handled and registered cannot drift.
import { getPlan, planByLookupKey } from '../plans.ts'
import { billingFromSubscriptionStatus, type BillingChange } from '../tenants/lifecycle.ts'
import { cleanName } from '../tenants/name.ts'

export const SUPPORTED_EVENTS = [
  'checkout.session.completed',
  'checkout.session.async_payment_succeeded',
  'checkout.session.async_payment_failed',
  'checkout.session.expired',
  'customer.subscription.created',
  'customer.subscription.updated',
  'customer.subscription.deleted',
  'invoice.paid',
  'invoice.payment_succeeded',
  'invoice.payment_failed'
] as const

export type SupportedEvent = typeof SUPPORTED_EVENTS[number]

const SUPPORTED = new Set<string>(SUPPORTED_EVENTS)

export function isSupportedEvent (type: string): type is SupportedEvent {
  return SUPPORTED.has(type)
}

/** A stored payload read back as the event it was, or undefined when it is not one (any more). */
export function storedEvent (payload: string): StripeEvent | undefined {
  try {
    const event: unknown = JSON.parse(payload)
    return isStripeEvent(event) ? event : undefined
  } catch {
    return undefined
  }
}

/**
 * Who the customer is, beyond the email the rules read: Checkout's collected details and an
 * invoice's copies of the customer (name, phone, postal address, tax ids, shipping) and a
 * Payment Link's custom fields. The rules never read them, so they are not stored.
 */
const IDENTITY_FIELDS = [
  'customer_name', 'customer_phone', 'customer_address', 'customer_shipping', 'customer_tax_ids',
  'shipping', 'shipping_details', 'collected_information', 'custom_fields'
] as const

/** Anything but null, an empty list, or an object of nothing else (Stripe's empty address). */
function holdsData (v: unknown): boolean {
  if (v === null || v === undefined) return false
  if (Array.isArray(v)) return v.length > 0
  return typeof v !== 'object' || Object.values(v).some(holdsData)
}

/**
 * The payload to store for an event: the body as received, or, when its object carries any of
 * the customer's identity besides the email, a copy without it (`customer_details` keeps only
 * its email). Replays and catch-ups read what they need from what is kept.
 */
export function storablePayload (event: StripeEvent, body: string): string {
  const object = event.data.object
  const details = object.customer_details
  const detailsExtra = details !== null && typeof details === 'object' && Object.keys(details).some((k) => k !== 'email' && k !== 'tax_exempt' && holdsData(details[k]))
  const present = IDENTITY_FIELDS.filter((k) => holdsData(object[k]))
  if (present.length === 0 && !detailsExtra) return body
  const kept: Record<string, unknown> = { ...object }
  for (const k of present) kept[k] = null
  if (detailsExtra) kept.customer_details = { email: details.email ?? null }
  return JSON.stringify({ ...event, data: { ...event.data, object: kept } })
}

/** The minimal shape every Stripe event has; anything else is not an event. */
export interface StripeEvent {
  id: string
  type: string
  created: number
  data: { object: Record<string, any> }
  [k: string]: unknown
}

/**
 * What a Stripe id looks like to us: 1–255 printable ASCII characters. Anything else (a NUL,
 * which PostgreSQL's text refuses; a lone surrogate, which both stores turn into U+FFFD so two
 * ids would collide; an id too long for an index) is not an id Stripe sends.
 */
const STRIPE_ID = /^[\x21-\x7e]{1,255}$/

export function isStripeEvent (value: unknown): value is StripeEvent {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  const e = value as Record<string, any>
  return typeof e.id === 'string' && STRIPE_ID.test(e.id) &&
    typeof e.type === 'string' && e.type.length > 0 &&
    Number.isSafeInteger(e.created) && e.created >= 0 &&
    e.data !== null && typeof e.data === 'object' &&
    e.data.object !== null && typeof e.data.object === 'object' && !Array.isArray(e.data.object)
}

/** Test or live: what a Stripe key is for, by its prefix; undefined for none or another shape. */
export function stripeKeyMode (key: string): 'live' | 'test' | undefined {
  if (/^(sk|rk)_live_/.test(key)) return 'live'
  if (/^(sk|rk)_test_/.test(key)) return 'test'
  return undefined
}

/**
 * Whether an event comes from the other mode than the account's key: a test endpoint's
 * secret among the configured ones would otherwise make billed servers from test events.
 * Only a boolean `livemode` and a known key mode say so.
 */
export function otherModeThanKey (event: StripeEvent, keyMode: 'live' | 'test' | undefined): boolean {
  return keyMode !== undefined && typeof event.livemode === 'boolean' && event.livemode !== (keyMode === 'live')
}

/** Details for the tenant a `checkout.session.completed` creates when none is known. */
export interface NewTenantHint {
  name: string
  email: string
  plan: string
}

/** What an event says: who it is about, and the change it carries. */
export interface EventIntent {
  /** From metadata.tenant_id (for invoices: the subscription's metadata). */
  tenantId?: string
  subscriptionId?: string
  /** Only checkout completion may create a tenant nobody knew about. */
  create?: NewTenantHint
  /** The buyer's address as Checkout collected it: a tenant begun without one takes it. */
  email?: string
  /** A subscription's prices when none is one of ours (a yearly price made by hand): its plan stays. */
  foreignPrices?: string[]
  change: Omit<BillingChange, 'at'>
}

/** Reverse map from a Stripe Price id to a plan slug (from the STRIPE_PRICE_* variables). */
export type PriceToPlan = (priceId: string) => string | undefined

const TENANT_ID = /^[0-9a-f]{32}$/

function tenantIdFrom (...candidates: unknown[]): string | undefined {
  for (const c of candidates) if (typeof c === 'string' && TENANT_ID.test(c)) return c
  return undefined
}

/** A Stripe reference, given as its id or as the expanded object; an id of another shape is none. */
function idOf (ref: unknown): string | undefined {
  const id = ref !== null && typeof ref === 'object' ? (ref as { id?: unknown }).id : ref
  return typeof id === 'string' && STRIPE_ID.test(id) ? id : undefined
}

/** The address Checkout (or an invoice) has for the buyer: the one we passed, or the one it asked for. Capped as the checkout form caps it. */
function collectedEmail (session: { customer_email?: unknown, customer_details?: { email?: unknown } | null }): string | undefined {
  const email = text(session.customer_email) ?? text(session.customer_details?.email)
  return email !== undefined && email.length <= 254 && email.includes('@') ? email : undefined
}

/** Trimmed text without control characters (PostgreSQL's text refuses NUL; none belongs in a name). */
function text (v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined
  const clean = v.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim()
  return clean === '' ? undefined : clean
}

/**
 * A session made elsewhere (a Payment Link, the Dashboard) names no event: the tenant is named
 * after the session, but never by its whole id. The id is a bearer secret here (it earns the
 * welcome link at /billing/success), and the name is public (the status route, the address).
 * The id's last characters still find the session in the Dashboard's list.
 */
export function sessionLabel (id: unknown): string | undefined {
  const clean = text(id)
  return clean === undefined ? undefined : `Checkout …${clean.slice(-6)}`
}

/** The plan a price sells: by its lookup key, else by its id. */
function planOfPrice (price: unknown, priceToPlan: PriceToPlan): string | undefined {
  if (price === null || typeof price !== 'object') return undefined
  const p = price as Record<string, unknown>
  const byKey = typeof p.lookup_key === 'string' ? planByLookupKey(p.lookup_key) : undefined
  if (byKey !== undefined) return byKey.slug
  return typeof p.id === 'string' ? priceToPlan(p.id) : undefined
}

/**
 * The plan of a subscription: the first of its items whose price is one of ours (an add-on or a
 * tax line may come before it), else its legacy `plan`.
 */
export function planOfSubscription (sub: Record<string, any>, priceToPlan: PriceToPlan): string | undefined {
  for (const price of itemPrices(sub)) {
    const plan = planOfPrice(price, priceToPlan)
    if (plan !== undefined) return plan
  }
  return planOfPrice(sub.plan, priceToPlan)
}

/** The `price` of each of a subscription's items (items that are not objects are passed over). */
function itemPrices (sub: Record<string, any>): unknown[] {
  const items: unknown[] = Array.isArray(sub.items?.data) ? sub.items.data : []
  return items.flatMap((item) => item !== null && typeof item === 'object' ? [(item as Record<string, unknown>).price] : [])
}

/** The price ids a subscription's items name (for a warning: the text of each is Stripe's). */
function subscriptionPrices (sub: Record<string, any>): string[] {
  return itemPrices(sub).flatMap((price) => {
    const id = idOf(price)
    return id === undefined ? [] : [id]
  }).slice(0, 5)
}

function checkoutIntent (session: Record<string, any>, billing: BillingChange['billing'], extra: Partial<EventIntent['change']> = {}): EventIntent {
  const metadata = session.metadata ?? {}
  const planSlug = text(metadata.plan)
  const plan = planSlug !== undefined && getPlan(planSlug)?.ctaKind === 'checkout' ? planSlug : undefined
  // Not client_reference_id: a Payment Link lets whoever opens it set that in the URL, and
  // naming another buyer's tenant would earn their welcome link at /billing/success. Only
  // the account (our checkout) writes metadata; our sessions carry the id in both.
  const tenantId = tenantIdFrom(metadata.tenant_id)
  const subscriptionId = idOf(session.subscription)
  // A session nobody knew is adopted only where one tenant comes of it: a later event finds it
  // again (by our id, or the subscription index), or this event is the payment. An unpaid
  // one-off session found by neither would be adopted twice: pending at its completion, again
  // at its async_payment_succeeded.
  const adoptable = tenantId !== undefined || subscriptionId !== undefined || billing === 'paid'
  const email = collectedEmail(session)
  return {
    tenantId,
    subscriptionId,
    email,
    create: adoptable
      ? {
          name: cleanName(metadata.name) ?? sessionLabel(session.id) ?? 'ctfhive-event',
          email: email ?? text(metadata.email) ?? '',
          plan: plan ?? 'standard'
        }
      : undefined,
    change: {
      billing,
      plan,
      subscriptionId,
      customerId: idOf(session.customer),
      ...extra
    }
  }
}

function paidNow (session: Record<string, any>): BillingChange['billing'] {
  // A setup-mode session (saving a card) is `no_payment_required` too, and buys nothing.
  if (session.mode === 'setup') return undefined
  return session.payment_status === 'paid' || session.payment_status === 'no_payment_required' ? 'paid' : undefined
}

function invoiceIntent (invoice: Record<string, any>, billing: BillingChange['billing']): EventIntent {
  // API 2025-03-31 moved both onto invoice.parent.subscription_details; read both shapes.
  const details = invoice.parent?.subscription_details ?? invoice.subscription_details ?? {}
  // The subscription from the same shape as the metadata, so the two cannot name different ones.
  const subscriptionId = idOf(details.subscription) ?? idOf(invoice.subscription)
  return {
    tenantId: tenantIdFrom(details.metadata?.tenant_id, invoice.subscription_details?.metadata?.tenant_id, invoice.metadata?.tenant_id),
    subscriptionId,
    // Stripe often sends a new subscription's invoice before its checkout session: a tenant
    // begun without an address takes it here, before its server is set up with one.
    email: collectedEmail({ customer_email: invoice.customer_email }),
    change: { billing, subscriptionId, customerId: idOf(invoice.customer) }
  }
}

function subscriptionIntent (sub: Record<string, any>, billing: BillingChange['billing'], priceToPlan: PriceToPlan, extra: Partial<EventIntent['change']> = {}): EventIntent {
  const plan = planOfSubscription(sub, priceToPlan)
  const prices = plan === undefined ? subscriptionPrices(sub) : []
  return {
    tenantId: tenantIdFrom(sub.metadata?.tenant_id),
    subscriptionId: idOf(sub.id),
    ...(prices.length > 0 ? { foreignPrices: prices } : {}),
    change: {
      billing,
      plan,
      subscriptionId: idOf(sub.id),
      customerId: idOf(sub.customer),
      ...extra
    }
  }
}

/** Billing from a subscription's status; a status that is not a string says nothing. */
function statusOf (sub: Record<string, any>): BillingChange['billing'] {
  return typeof sub.status === 'string' ? billingFromSubscriptionStatus(sub.status) : undefined
}

/** The dispatch table: one entry per supported event type. */
const DISPATCH: Record<SupportedEvent, (obj: Record<string, any>, priceToPlan: PriceToPlan) => EventIntent> = {
  'checkout.session.completed': (s) => checkoutIntent(s, paidNow(s)),
  'checkout.session.async_payment_succeeded': (s) => checkoutIntent(s, 'paid'),
  'checkout.session.async_payment_failed': (s) => ({
    ...checkoutIntent(s, 'canceled', { onlyIfNeverPaid: true, reason: 'The payment for the checkout failed.' }),
    create: undefined
  }),
  'checkout.session.expired': (s) => ({
    ...checkoutIntent(s, 'canceled', { onlyIfNeverPaid: true, reason: 'The checkout expired before payment.' }),
    create: undefined
  }),
  'customer.subscription.created': (sub, p) => subscriptionIntent(sub, statusOf(sub), p),
  'customer.subscription.updated': (sub, p) => subscriptionIntent(sub, statusOf(sub), p),
  'customer.subscription.deleted': (sub, p) => subscriptionIntent(sub, 'canceled', p, { reason: 'The subscription was canceled.' }),
  'invoice.paid': (inv) => invoiceIntent(inv, 'paid'),
  'invoice.payment_succeeded': (inv) => invoiceIntent(inv, 'paid'),
  'invoice.payment_failed': (inv) => invoiceIntent(inv, 'past_due')
}

export function intentForEvent (event: StripeEvent & { type: SupportedEvent }, priceToPlan: PriceToPlan): EventIntent {
  return DISPATCH[event.type](event.data.object, priceToPlan)
}
