// The plan catalogue: the single source for the pricing page, the JSON-LD offers, the
// checkout route and the Stripe bootstrap CLI, so none of them can drift from the others.

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
  readonly features: readonly string[]
}

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
    '1 shared CPU, 2 GB RAM',
    'Provisioned within minutes of payment',
    'Email support'
  ]),
  paid('standard', 'Standard', 65, 'g6-standard-2', 'A public event with a scoreboard people will refresh.', [
    'Up to 250 players',
    'Your own CTFd at <name>.ctfhive.us with TLS',
    '2 shared CPUs, 4 GB RAM',
    'Provisioned within minutes of payment',
    'Priority email support'
  ]),
  paid('pro', 'Pro', 125, 'g6-standard-4', 'A large competition with heavy traffic at the start.', [
    'Up to 1,000 players',
    'Your own CTFd at <name>.ctfhive.us with TLS',
    '4 shared CPUs, 8 GB RAM',
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

/** "$25" for 2500 cents. */
export function formatPrice (amount: number): string {
  return amount % 100 === 0 ? `$${amount / 100}` : `$${(amount / 100).toFixed(2)}`
}
