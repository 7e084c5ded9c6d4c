// What the buyer reads: API error codes and tenant states in plain words. The marketing build
// injects these tables into the site's script, and the server uses them to render the same
// messages for visitors without JavaScript, so both always say the same thing.
import type { Billing, Infra } from '../tenants/lifecycle.ts'
import type { TenantStatus } from '../tenants/service.ts'

export type RegisterField = 'name' | 'email' | 'plan' | 'form'

/** Checkout error codes → where to show the message and what it says. */
export const REGISTER_ERRORS: Readonly<Record<string, { field: RegisterField, message: string }>> = {
  unknown_plan: { field: 'plan', message: 'Choose one of the plans below.' },
  plan_requires_contact: { field: 'plan', message: 'The Enterprise plan is set up with our team: please contact us instead.' },
  invalid_name: { field: 'name', message: 'Give your event a name of 1 to 80 characters.' },
  invalid_email: { field: 'email', message: 'Enter an email address like you@example.com.' },
  invalid_plan: { field: 'plan', message: 'Choose one of the plans below.' },
  invalid_request: { field: 'form', message: 'Some details are missing or not valid; check the form and try again.' },
  rate_limited: { field: 'form', message: 'Too many attempts from your network. Wait a minute, then try again.' },
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

/** The sign-in message for an error code from the URL; none for an unknown code. */
export function loginError (code: string | undefined): string | undefined {
  return code !== undefined && Object.hasOwn(LOGIN_ERRORS, code) ? LOGIN_ERRORS[code] : undefined
}

export type ProgressKey = 'checking' | 'awaiting_payment' | 'setting_up' | 'live' | 'past_due' | 'failed' | 'canceled' | 'not_found'

export const PROGRESS_STEPS = ['Order received', 'Payment confirmed', 'Server set up', 'CTF live'] as const

/**
 * Headline and explanation per progress key; {url}, {fqdn}, {tenant} and {reason} come from
 * the order, {grace} and {billing} from the settings (siteValues).
 */
export const PROGRESS_TEXT: Readonly<Record<ProgressKey, { headline: string, detail: string }>> = {
  checking: {
    headline: 'Looking up your order',
    detail: 'One moment while we check where it stands.'
  },
  awaiting_payment: {
    headline: 'Waiting for your payment to be confirmed',
    detail: 'Stripe tells us as soon as your payment goes through, usually within seconds. Keep this page open: it updates by itself.'
  },
  setting_up: {
    headline: 'Setting up your CTF server',
    detail: 'Your payment is confirmed. We are creating your server, its address {fqdn} and its certificate. This takes a few minutes.'
  },
  live: {
    headline: 'Your CTF is live',
    detail: 'It is ready at {url}. Sign in as the administrator to add challenges and invite your players.'
  },
  past_due: {
    headline: 'Your last payment did not go through',
    detail: 'Your CTF keeps running for now. Stripe tries the charge again and emails you about it. To pay with another card, write to {billing} from the address you used at checkout.'
  },
  failed: {
    headline: 'We could not set up your server',
    detail: 'Something went wrong while creating your CTF and our team has been told. Write to us quoting order {tenant} and we will sort it out.'
  },
  canceled: {
    headline: 'This order is canceled',
    detail: '{reason} If your CTF was set up, it stays online until its server and data are deleted, {grace}. You can start a new order at any time.'
  },
  not_found: {
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
export function siteValues (settings: { baseDomain: string, graceHours: number }): { grace: string, billing: string } {
  return { grace: graceDelay(settings.graceHours), billing: `billing@${settings.baseDomain}` }
}

/** Shown while a status poll fails; the page keeps trying. */
export const RECONNECTING = 'We lost the connection for a moment and are trying again.'

type StatusFacts = Pick<TenantStatus, 'state' | 'billing' | 'paid_at' | 'ready_at'>

export interface Progress {
  key: ProgressKey
  /** How many of PROGRESS_STEPS are done. */
  done: number
  /** The order will not move on by itself (live, failed, canceled, not found). */
  final: boolean
}

/** Where an order stands, from its public status. The site's script mirrors this function. */
export function progressOf (status: StatusFacts | null): Progress {
  if (status === null) return { key: 'not_found', done: 0, final: true }
  const paid = status.paid_at !== null || (status.billing !== 'pending' && status.billing !== 'canceled')
  const ready = status.ready_at !== null
  const done = 1 + (paid ? 1 : 0) + (paid && ready ? 1 : 0) + (paid && ready && (status.state === 'active' || status.state === 'past_due') ? 1 : 0)
  switch (status.state) {
    case 'active': return { key: 'live', done: 4, final: true }
    case 'failed': return { key: 'failed', done, final: true }
    case 'canceled': return { key: 'canceled', done: Math.min(done, 2), final: true }
    case 'past_due': return { key: 'past_due', done, final: false }
    default: return { key: paid ? 'setting_up' : 'awaiting_payment', done, final: false }
  }
}

/** Fills the {placeholders} of a progress text; unknown ones become empty. */
export function fillText (template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{(\w+)\}/g, (_m, k: string) => values[k] ?? '').trim()
}
