// What the buyer reads: API error codes and tenant states in plain words. The marketing build
// injects these tables into the site's script, and the server uses them to render the same
// messages for visitors without JavaScript, so both always say the same thing.
import { serverOnline, type Billing, type Infra } from '../tenants/lifecycle.ts'
import type { TenantStatus } from '../tenants/service.ts'

export type RegisterField = 'name' | 'email' | 'plan' | 'form'

/** Checkout error codes → where to show the message and what it says. */
export const REGISTER_ERRORS: Readonly<Record<string, { field: RegisterField, message: string }>> = {
  unknown_plan: { field: 'plan', message: 'Choose one of the plans below.' },
  plan_requires_contact: { field: 'plan', message: 'The Enterprise plan is set up with our team: please contact us instead.' },
  invalid_name: { field: 'name', message: 'Give your event a name of 1 to 80 characters, with at least one visible character and no control characters.' },
  invalid_email: { field: 'email', message: 'Enter an email address like you@example.com.' },
  invalid_plan: { field: 'plan', message: 'Choose one of the plans below.' },
  invalid_request: { field: 'form', message: 'Some details are missing or not valid; check the form and try again.' },
  rate_limited: { field: 'form', message: 'Too many attempts from your network. Wait a minute, then try again.' },
  cross_site_request: { field: 'form', message: 'This order form was sent to us from another website. Check the details here, then send it again.' },
  price_not_configured: { field: 'form', message: 'This plan cannot be bought online right now. Please contact us and we will set it up for you.' },
  stripe_checkout_failed: { field: 'form', message: 'Our payment provider did not answer. Nothing was charged; please try again in a moment.' },
  network: { field: 'form', message: 'We could not reach our server. Check your connection and try again.' },
  internal_error: { field: 'form', message: 'Something went wrong on our side. Nothing was charged; please try again.' }
}

/** The message for a checkout error; `invalid_request` is narrowed by the field it names. */
export function registerError (code: string, field?: string): { field: RegisterField, message: string } {
  if (code === 'invalid_request' && (field === 'name' || field === 'email' || field === 'plan')) {
    return REGISTER_ERRORS[`invalid_${field}`]!
  }
  // Own keys only: the code comes from the URL and may be "__proto__" or "toString".
  return Object.hasOwn(REGISTER_ERRORS, code) ? REGISTER_ERRORS[code]! : REGISTER_ERRORS.internal_error!
}

export const LOGIN_ERRORS: Readonly<Record<string, string>> = {
  invalid_address: 'That does not look like a CTFHive address. Enter the name before the domain, like spring-ctf-1a2b3c.',
  unknown_address: 'We have no CTF at that address. Check it against your welcome page: the name ends in a short code, like spring-ctf-1a2b3c.',
  not_ready: 'That CTF is not running yet. Its welcome page shows where it stands.',
  shut_down: 'That CTF was shut down when its subscription ended. To bring it back, write to our billing team.'
}

/**
 * Where the sign-in form leads for the tenant holding the address: its server while one runs
 * (a canceled CTF's too, until its grace period ends), otherwise the reason there is none. An
 * order never paid for holds its address but has nothing behind it, also once an expired or
 * failed checkout has canceled it; a canceled one without a running server will not get one.
 */
export function loginTarget (tenant: { billing: Billing, infra: Infra, paidAt: string | null } | undefined): 'go' | 'unknown_address' | 'not_ready' | 'shut_down' {
  if (tenant === undefined || tenant.billing === 'pending' || tenant.paidAt === null) return 'unknown_address'
  if (tenant.infra === 'ready') return 'go'
  return tenant.infra === 'deprovisioned' || tenant.billing === 'canceled' ? 'shut_down' : 'not_ready'
}

/**
 * The welcome page's administrator details, asked for with a link whose token is refused (cut
 * short or mistyped): the API's own message names a schema pattern or a tenant.
 */
export const ADMIN_LINK_REFUSED = 'This link cannot show the administrator details: it may be cut short. Open the whole link from your checkout again, or write to support quoting your order number.'

export type CheckoutReturnError = 'stripe_unavailable' | 'not_found' | 'link_expired' | 'rate_limited'

/** A message page's way on: `href` absent means the same page again. */
export interface MessageLink { href?: string, label: string }

/**
 * What a buyer back from Stripe Checkout reads when /billing/success cannot take them on to
 * their order: try the same page again once Stripe answers; for a checkout we do not know (a
 * mangled link, another Stripe account), the plans or support.
 */
export const CHECKOUT_RETURN_ERRORS: Readonly<Record<CheckoutReturnError, { heading: string, text: string, links: readonly MessageLink[] }>> = {
  stripe_unavailable: {
    heading: 'We could not reach Stripe',
    text: 'Stripe, our payment provider, did not answer just now, so we cannot show your order yet. Nothing is lost: try again in a moment.',
    links: [{ label: 'Try again' }]
  },
  link_expired: {
    heading: 'This link has expired',
    text: 'A link back from Checkout opens your order for two days. Open your order from the welcome link you saved, or write to support and we will send you a new one.',
    links: [{ href: '/contact#support', label: 'Contact support' }, { href: '/login', label: 'Sign in to your CTF' }]
  },
  rate_limited: {
    heading: 'Too many tries',
    text: 'This address opened too many checkout links in a short time. Wait a minute, then try again.',
    links: [{ label: 'Try again' }]
  },
  not_found: {
    heading: 'We cannot find this checkout',
    text: 'This link does not lead to a checkout of ours; it may be cut short. If you have paid, write to support and we will send you the page of your order; otherwise, start again from the plans.',
    links: [{ href: '/pricing', label: 'See the plans' }, { href: '/contact#support', label: 'Contact support' }]
  }
}

/** The sign-in message for an error code from the URL; none for an unknown code. */
export function loginError (code: string | undefined): string | undefined {
  return code !== undefined && Object.hasOwn(LOGIN_ERRORS, code) ? LOGIN_ERRORS[code] : undefined
}

export type ProgressKey = 'checking' | 'awaiting_payment' | 'payment_delayed' | 'setting_up' | 'live' | 'past_due' |
  'past_due_setting_up' | 'payment_failed' | 'failed' | 'canceled_running' | 'canceled' | 'canceled_unpaid' | 'not_found'

export const PROGRESS_STEPS = ['Order received', 'Payment confirmed', 'Server set up', 'CTF live'] as const
/** A step where the order stopped says so, not what it would have said once done. */
export const STOPPED_STEPS = ['Order received', 'No payment', 'Setup stopped', 'Not live'] as const

/** The welcome page's heading (and title) while the order goes ahead, and once it has not. */
const THANKS = 'Thank you for your order'
const YOUR_ORDER = 'Your order'

/**
 * The page's heading, the headline and the explanation per progress key; {url}, {fqdn},
 * {tenant} and {reason} come from the order, {grace} and {billing} from the settings
 * (siteValues), {until} from both (shutdownText).
 */
export const PROGRESS_TEXT: Readonly<Record<ProgressKey, { heading: string, headline: string, detail: string }>> = {
  checking: {
    heading: THANKS,
    headline: 'Looking up your order',
    detail: 'One moment while we check where it stands.'
  },
  awaiting_payment: {
    heading: THANKS,
    headline: 'Waiting for your payment to be confirmed',
    // Checkout offers delayed methods too (bank debits, transfers): not "within seconds" for all.
    detail: 'Stripe tells us as soon as your payment goes through: within seconds for a card, while a bank payment can take a few days. This page updates by itself.'
  },
  payment_delayed: {
    heading: THANKS,
    headline: 'Your payment is still being confirmed',
    detail: 'Some payment methods, such as bank debits and transfers, take several business days to confirm. You can close this page: open the same link again (bookmark it) to see where your order stands. Setup starts by itself once the payment is confirmed; your CTF will then be at {fqdn}, which Sign in on our site also takes you to.'
  },
  setting_up: {
    heading: THANKS,
    headline: 'Setting up your CTF server',
    detail: 'Your order is confirmed. We are creating your server, its address {fqdn} and its certificate. This takes a few minutes.'
  },
  live: {
    heading: THANKS,
    headline: 'Your CTF is live',
    detail: 'It is ready at {url}. Sign in as the administrator to add challenges and invite your players.'
  },
  past_due: {
    heading: YOUR_ORDER,
    headline: 'Your last payment did not go through',
    // Shown only while its server runs (progressOf): the others are the two keys below.
    detail: 'Your CTF keeps running for now. Stripe tries the charge again and emails you about it; if it keeps failing, the subscription ends and your CTF is shut down {grace}. To pay with another card, write to {billing} from the address you used at checkout.'
  },
  past_due_setting_up: {
    heading: YOUR_ORDER,
    headline: 'Your last payment did not go through',
    // Paid once, its server not up yet (or being made again): setup goes on while past due.
    detail: 'We go on setting up your CTF at {fqdn} for now. Stripe tries the charge again and emails you about it; if it keeps failing, the subscription ends and your CTF is shut down {grace}. To pay with another card, write to {billing} from the address you used at checkout.'
  },
  payment_failed: {
    heading: YOUR_ORDER,
    headline: 'Your payment did not go through',
    // Never paid: no setup has started, and none starts before a payment goes through.
    detail: 'No payment for this order has gone through yet, so nothing of it is set up or online. We set up your CTF as soon as a payment goes through, and this page follows it. To pay with another card, write to {billing} from the address you used at checkout.'
  },
  failed: {
    heading: YOUR_ORDER,
    headline: 'We could not set up your server',
    detail: 'Something went wrong while creating your CTF and our team has been told. Write to us quoting order {tenant} and we will sort it out.'
  },
  canceled_running: {
    heading: YOUR_ORDER,
    headline: 'This order is canceled, but your CTF is still online',
    detail: '{reason} Your CTF stays online until {until}; then its server and all its data are deleted. Sign in now to export anything you want to keep.'
  },
  canceled: {
    heading: YOUR_ORDER,
    headline: 'This order is canceled',
    // Shown only when no server of it runs (progressOf): a running one is canceled_running.
    detail: '{reason} Nothing of it is online: a CTF set up for it is shut down and its data deleted {grace}. You can start a new order at any time.'
  },
  canceled_unpaid: {
    heading: YOUR_ORDER,
    headline: 'This order is canceled',
    // Never paid for (an expired or failed checkout): no CTF was ever set up for it.
    detail: '{reason} No payment went through for it, so no CTF was set up. You can start a new order at any time.'
  },
  not_found: {
    heading: YOUR_ORDER,
    headline: 'We cannot find this order',
    detail: 'Check that you opened the whole link from your checkout, or write to us and we will look it up.'
  }
}

/** When a canceled CTF's server is deleted (DEPROVISION_GRACE_HOURS). */
export function graceDelay (hours: number): string {
  if (hours === 0) return 'right after the cancellation'
  if (hours % 24 === 0) return `${hours / 24} day${hours === 24 ? '' : 's'} after the cancellation`
  return `${hours} hour${hours === 1 ? '' : 's'} after the cancellation`
}

/**
 * The values the texts take from the settings rather than the order. The build writes them
 * into the site's script and the server passes the same for visitors without JavaScript.
 */
export function siteValues (settings: { contactDomain: string, graceHours: number }): { grace: string, billing: string, graceHours: number } {
  return { grace: graceDelay(settings.graceHours), billing: `billing@${settings.contactDomain}`, graceHours: settings.graceHours }
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December']

/**
 * When a canceled CTF's server is deleted, for {until}: in UTC, so the page reads the same from
 * the server and from the script. Without a cancellation time, the grace period in words.
 * The site's script mirrors this function.
 */
export function shutdownText (canceledAt: string | undefined, graceHours: number | undefined, grace = ''): string {
  const at = canceledAt === undefined || graceHours === undefined ? NaN : Date.parse(canceledAt) + graceHours * 3_600_000
  if (Number.isNaN(at)) return grace
  const d = new Date(at)
  const two = (n: number): string => String(n).padStart(2, '0')
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}, ${two(d.getUTCHours())}:${two(d.getUTCMinutes())} UTC`
}

/**
 * How long an order may wait for its payment before the page says the payment is a slow one
 * and can be left. The server counts from the order's creation; the script, whose clock may
 * be off, from the page's load (marketing/src/site.js has the same number).
 */
export const PAYMENT_DELAYED_MS = 3 * 60_000

/** Shown while a status poll fails; the page keeps trying. */
export const RECONNECTING = 'We lost the connection for a moment and are trying again.'

type StatusFacts = Pick<TenantStatus, 'state' | 'billing' | 'infra' | 'paid_at' | 'ready_at' | 'canceled_at' | 'created_at'>

export interface Progress {
  key: ProgressKey
  /** How many of PROGRESS_STEPS are done. */
  done: number
  /**
   * Nothing more to follow: live, not found, or canceled with no server running or coming.
   * A failed order is not final (an operator may retry it), nor a canceled one whose server is
   * still being set up (it then runs through the grace period).
   */
  final: boolean
  /** Its server runs, so the page links to it: live, but also past due or canceled in its grace period. */
  online?: boolean
  /** A CTF still online after its cancellation: when that was, to say when it goes. */
  canceledAt?: string
}

/**
 * Where an order stands, from its public status; `now` only tells a slow payment from a fresh
 * one. The site's script mirrors this function.
 */
export function progressOf (status: StatusFacts | null, now = Date.now()): Progress {
  if (status === null) return { key: 'not_found', done: 0, final: true }
  // Ever paid: `past_due` alone is not a payment (a first invoice can fail), nor `canceled`.
  const paid = status.paid_at !== null || status.billing === 'paid'
  const ready = status.ready_at !== null
  // Set up and not torn down: what /login/go sends the buyer to, a canceled CTF's too until
  // its teardown (infra `deprovisioned`) after the grace period. The credential's rule too.
  const online = serverOnline({ billing: status.billing, infra: status.infra, paidAt: status.paid_at, readyAt: status.ready_at })
  const done = 1 + (paid ? 1 : 0) + (paid && ready ? 1 : 0) + (paid && ready && status.state === 'active' ? 1 : 0)
  switch (status.state) {
    case 'active': return { key: 'live', done: 4, final: true, online: true }
    case 'failed': return { key: 'failed', done, final: false }
    case 'canceled': {
      if (online) {
        // Not final while online: its teardown is still to come, and the page should see it.
        return { key: 'canceled_running', done: 4, final: false, online, ...(status.canceled_at === null ? {} : { canceledAt: status.canceled_at }) }
      }
      // A server still being set up may come up and run through the grace period.
      const coming = paid && (status.infra === 'provisioning' || status.infra === 'ready')
      return { key: paid ? 'canceled' : 'canceled_unpaid', done: Math.min(done, 2), final: !coming }
    }
    // Its server not (or no longer) up: stuck before "Server set up", or before the payment.
    case 'past_due':
      if (online) return { key: 'past_due', done: 4, final: false, online }
      return paid ? { key: 'past_due_setting_up', done: 2, final: false } : { key: 'payment_failed', done: 1, final: false }
    default: {
      const delayed = !paid && now - Date.parse(status.created_at) >= PAYMENT_DELAYED_MS
      return { key: paid ? 'setting_up' : delayed ? 'payment_delayed' : 'awaiting_payment', done, final: false }
    }
  }
}

/** Fills the {placeholders} of a progress text; unknown ones become empty. */
export function fillText (template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{(\w+)\}/g, (_m, k: string) => values[k] ?? '').trim()
}
