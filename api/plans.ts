// The plan catalogue: the single source for the pricing page, the JSON-LD offers, the
// checkout route and the Stripe bootstrap CLI, so none of them can drift from the others.
import { DEFAULT_LINODE_TYPE, PER_PLAN } from './config.ts'

export type CtaKind = 'checkout' | 'contact'

export interface Plan {
  readonly slug: string
  readonly name: string
  /** Monthly price in US cents; null for contact-only plans. */
  readonly amount: number | null
  readonly currency: 'usd'
  readonly interval: 'month'
  readonly ctaKind: CtaKind
  /** Env variable holding this plan's Stripe Price id (paid plans only). */
  readonly stripePriceEnv: string | null
  /** Stripe Price lookup key, stable across price changes (paid plans only). */
  readonly lookupKey: string | null
  /** Linode type the tenant's server gets with LINODE_PLAN=per-plan; any other LINODE_PLAN is every plan's type. */
  readonly serverType: string | null
  readonly tagline: string
  /** What the plan's card lists; SERVER_FEATURE marks where its server's hardware goes. */
  readonly features: readonly string[]
}

/**
 * Stands in the features for the line on the server's hardware: which server a plan gets
 * depends on LINODE_PLAN, so the line is written by the build (serverHardware), not here.
 */
export const SERVER_FEATURE = '<server>'

function paid (slug: string, name: string, dollars: number, serverType: string, tagline: string, features: string[]): Plan {
  return {
    slug,
    name,
    amount: dollars * 100,
    currency: 'usd',
    interval: 'month',
    ctaKind: 'checkout',
    stripePriceEnv: `STRIPE_PRICE_${slug.toUpperCase()}`,
    lookupKey: `ctfhive_${slug}_monthly`,
    serverType,
    tagline,
    features
  }
}

export const PLANS: readonly Plan[] = Object.freeze([
  paid('solo', 'Solo', 25, 'g6-standard-1', 'A private CTF for a class, a club or a practice night.', [
    'Up to 50 players',
    'Your own CTFd at <name>.ctfhive.us with TLS',
    SERVER_FEATURE,
    'Provisioned within minutes of payment',
    'Email support'
  ]),
  paid('standard', 'Standard', 65, 'g6-standard-2', 'A public event with a scoreboard people will refresh.', [
    'Up to 250 players',
    'Your own CTFd at <name>.ctfhive.us with TLS',
    SERVER_FEATURE,
    'Provisioned within minutes of payment',
    'Priority email support'
  ]),
  paid('pro', 'Pro', 125, 'g6-standard-4', 'A large competition with heavy traffic at the start.', [
    'Up to 1,000 players',
    'Your own CTFd at <name>.ctfhive.us with TLS',
    SERVER_FEATURE,
    'Provisioned within minutes of payment',
    'Priority email support, with faster answers while your event runs'
  ]),
  Object.freeze({
    slug: 'enterprise',
    name: 'Enterprise',
    amount: null,
    currency: 'usd',
    interval: 'month',
    ctaKind: 'contact',
    stripePriceEnv: null,
    lookupKey: null,
    serverType: null,
    tagline: 'Set up with our team for your event: dedicated servers, your own domain and an agreement to match.',
    features: [
      'Unlimited players',
      'Custom domain and single sign-on',
      'Dedicated CPUs sized to your event',
      'Uptime agreement and an on-call engineer'
    ]
  } satisfies Plan)
])

export const PAID_PLANS: readonly Plan[] = PLANS.filter((p) => p.ctaKind === 'checkout')

export function getPlan (slug: string): Plan | undefined {
  return PLANS.find((p) => p.slug === slug)
}

export function planByLookupKey (lookupKey: string): Plan | undefined {
  return PLANS.find((p) => p.lookupKey !== null && p.lookupKey === lookupKey)
}

/** The Linode type of a plan's server under a LINODE_PLAN value: provisioning's rule (serverSpecFor). */
export function planServerType (slug: string, linodePlan: string): string {
  return linodePlan === PER_PLAN ? (getPlan(slug)?.serverType ?? DEFAULT_LINODE_TYPE) : linodePlan
}

/**
 * Linode types and what the pricing page says they are. Only checked figures belong here
 * (g6-nanode-1 and g6-standard-2 from Linode's API reference; the per-plan g6-standard-1 and
 * -4 as the catalogue has always sold them, which public lists of Linode types confirm): a
 * type missing here gets no hardware line at all rather than a wrong one.
 */
const SERVER_HARDWARE: Readonly<Record<string, { cpus: number, cpu: 'shared' | 'dedicated', ramGb: number }>> = Object.freeze({
  'g6-nanode-1': { cpus: 1, cpu: 'shared', ramGb: 1 },
  'g6-standard-1': { cpus: 1, cpu: 'shared', ramGb: 2 },
  'g6-standard-2': { cpus: 2, cpu: 'shared', ramGb: 4 },
  'g6-standard-4': { cpus: 4, cpu: 'shared', ramGb: 8 }
})

/** "2 shared CPUs, 4 GB RAM" for g6-standard-2; undefined for a type we have no figures for. */
export function serverHardware (type: string): string | undefined {
  if (!Object.hasOwn(SERVER_HARDWARE, type)) return undefined
  const { cpus, cpu, ramGb } = SERVER_HARDWARE[type]!
  return `${cpus} ${cpu} CPU${cpus === 1 ? '' : 's'}, ${ramGb} GB RAM`
}

/** "$25" for 2500 cents. */
export function formatPrice (amount: number): string {
  return amount % 100 === 0 ? `$${amount / 100}` : `$${(amount / 100).toFixed(2)}`
}
