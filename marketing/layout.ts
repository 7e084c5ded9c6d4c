// The frame every marketing page shares: the head with its SEO metadata (canonical link,
// Open Graph, Twitter Card, theme colour, favicon, JSON-LD), the header and the footer.
import { PAID_PLANS, type Plan } from '../api/plans.ts'
import { escapeHtml } from '../api/web/slots.ts'

export const THEME_COLOR = '#16182d'
export const SITE_NAME = 'CTFHive'
export const OG_IMAGE = { path: '/og-image.png', width: 1200, height: 630, alt: 'CTFHive: hosted CTFd servers for capture-the-flag events' }

export interface SiteContext {
  /** Absolute origin without a trailing slash, from PUBLIC_BASE_URL. */
  publicBaseUrl: string
  baseDomain: string
  /** CONTACT_DOMAIN: the domain of the mailboxes the site names (sales@, support@, billing@). */
  contactDomain: string
  /** Hours a canceled CTF's server is kept (DEPROVISION_GRACE_HOURS). */
  graceHours: number
  /** LINODE_PLAN: which server each plan gets, so what its card says about the hardware. */
  linodePlan: string
  /** Fingerprinted asset URLs. */
  css: string
  js: string
  year: number
}

export interface PageSpec {
  path: string
  file: string
  /** The page's own part of the title; the home page uses its title as is. */
  title: string
  description: string
  noindex?: boolean
  /** No canonical link (the 404 page has no URL of its own). */
  noCanonical?: boolean
  main: string
}

const NAV = [
  { href: '/pricing', label: 'Pricing' },
  { href: '/about', label: 'About' },
  { href: '/docs/', label: 'Docs' },
  { href: '/contact', label: 'Contact' },
  { href: '/login', label: 'Sign in' }
]

const LOGO = '<svg class="logo" viewBox="0 0 32 32" width="32" height="32" aria-hidden="true" focusable="false">' +
  '<path d="M16 2 28.1 9v14L16 30 3.9 23V9z" fill="#f2b233"/>' +
  '<path d="M11.5 8v16" stroke="#16182d" stroke-width="2.2" stroke-linecap="round"/><path d="M11.5 8.6h10l-2.8 3.3 2.8 3.3h-10z" fill="#16182d"/></svg>'

export function fullTitle (page: PageSpec): string {
  return page.path === '/' ? page.title : `${page.title} · ${SITE_NAME}`
}

/** Dollars with cents, as schema.org wants prices: "25.00". */
export function offerPrice (plan: Plan): string {
  return ((plan.amount ?? 0) / 100).toFixed(2)
}

/** The id of a plan's card on the pricing page, and so the fragment its offer links to. */
export function planCardId (plan: Plan): string {
  return `plan-card-${plan.slug}`
}

/** The contact page's mailboxes and what each is for (its cards' ids are the box names). */
export const CONTACT_BOXES: ReadonlyArray<readonly [string, string]> = [['sales', 'sales'], ['customer support', 'support'], ['billing support', 'billing']]

/** Organization + SoftwareApplication with one Offer per paid plan of the catalogue. */
export function jsonLd (ctx: SiteContext): Record<string, unknown> {
  const base = ctx.publicBaseUrl
  const org = `${base}/#organization`
  return {
    '@context': 'https://schema.org',
    '@graph': [
      {
        '@type': 'Organization',
        '@id': org,
        name: SITE_NAME,
        url: `${base}/`,
        logo: `${base}/apple-touch-icon.png`,
        // The contact page's own mailboxes, so search results show an address someone reads.
        contactPoint: CONTACT_BOXES.map(([contactType, box]) => ({
          '@type': 'ContactPoint',
          contactType,
          email: `${box}@${ctx.contactDomain}`,
          url: `${base}/contact#${box}`
        }))
      },
      {
        '@type': 'SoftwareApplication',
        '@id': `${base}/#app`,
        name: SITE_NAME,
        description: 'Hosted CTFd servers for capture-the-flag events: a dedicated server with its own address and TLS, set up minutes after checkout.',
        applicationCategory: 'BusinessApplication',
        operatingSystem: 'Web',
        url: `${base}/`,
        image: `${base}${OG_IMAGE.path}`,
        publisher: { '@id': org },
        offers: PAID_PLANS.map((plan) => ({
          '@type': 'Offer',
          name: plan.name,
          description: plan.tagline,
          price: offerPrice(plan),
          priceCurrency: plan.currency.toUpperCase(),
          // The plan's card on the pricing page: /register is noindex and disallowed in robots.txt.
          url: `${base}/pricing#${planCardId(plan)}`,
          availability: 'https://schema.org/InStock',
          priceSpecification: {
            '@type': 'UnitPriceSpecification',
            price: offerPrice(plan),
            priceCurrency: plan.currency.toUpperCase(),
            unitCode: 'MON',
            billingDuration: 'P1M'
          }
        }))
      }
    ]
  }
}

/** JSON that cannot end its <script> element early. */
function scriptJson (value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c')
}

function head (page: PageSpec, ctx: SiteContext): string {
  const title = escapeHtml(fullTitle(page))
  const description = escapeHtml(page.description)
  const url = `${ctx.publicBaseUrl}${page.path}`
  const image = `${ctx.publicBaseUrl}${OG_IMAGE.path}`
  return [
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${title}</title>`,
    `<meta name="description" content="${description}">`,
    page.noindex === true ? '<meta name="robots" content="noindex, nofollow">' : '',
    page.noCanonical === true ? '' : `<link rel="canonical" href="${url}">`,
    `<meta name="theme-color" content="${THEME_COLOR}">`,
    '<meta property="og:type" content="website">',
    `<meta property="og:site_name" content="${SITE_NAME}">`,
    '<meta property="og:locale" content="en_US">',
    `<meta property="og:title" content="${title}">`,
    `<meta property="og:description" content="${description}">`,
    // A page without a canonical URL (the 404) has no address to share either.
    page.noCanonical === true ? '' : `<meta property="og:url" content="${url}">`,
    `<meta property="og:image" content="${image}">`,
    `<meta property="og:image:width" content="${OG_IMAGE.width}">`,
    `<meta property="og:image:height" content="${OG_IMAGE.height}">`,
    `<meta property="og:image:alt" content="${escapeHtml(OG_IMAGE.alt)}">`,
    '<meta name="twitter:card" content="summary_large_image">',
    `<meta name="twitter:title" content="${title}">`,
    `<meta name="twitter:description" content="${description}">`,
    `<meta name="twitter:image" content="${image}">`,
    `<meta name="twitter:image:alt" content="${escapeHtml(OG_IMAGE.alt)}">`,
    '<link rel="icon" href="/favicon.ico" sizes="16x16 32x32 48x48">',
    '<link rel="apple-touch-icon" href="/apple-touch-icon.png">',
    `<link rel="stylesheet" href="${ctx.css}">`,
    `<script src="${ctx.js}" defer></script>`,
    `<script type="application/ld+json">${scriptJson(jsonLd(ctx))}</script>`
  ].filter((line) => line !== '').join('\n')
}

function header (page: PageSpec): string {
  const links = NAV.map(({ href, label }) =>
    `<li><a href="${href}"${href === page.path ? ' aria-current="page"' : ''}>${label}</a></li>`).join('')
  return '<header class="site-header"><div class="wrap header-row">' +
    `<a class="brand" href="/"${page.path === '/' ? ' aria-current="page"' : ''}>${LOGO}<span>${SITE_NAME}</span></a>` +
    `<nav aria-label="Main"><ul class="nav">${links}</ul></nav>` +
    (page.path === '/register' ? '' : '<a class="button button-honey header-cta" href="/register">Start your CTF</a>') +
    '</div></header>'
}

function footer (ctx: SiteContext): string {
  return '<footer class="site-footer"><div class="wrap footer-row">' +
    `<p>© ${ctx.year} ${SITE_NAME}. Hosted CTFd for capture-the-flag events.</p>` +
    '<nav aria-label="Footer"><ul class="nav nav-footer">' +
    '<li><a href="/pricing">Pricing</a></li><li><a href="/about">About</a></li><li><a href="/docs/">Documentation</a></li>' +
    '<li><a href="/contact">Contact</a></li><li><a href="/privacy">Privacy</a></li><li><a href="/login">Sign in to your CTF</a></li>' +
    '</ul></nav></div></footer>'
}

export function renderPage (page: PageSpec, ctx: SiteContext): string {
  return '<!doctype html>\n<html lang="en">\n<head>\n' + head(page, ctx) + '\n</head>\n<body>\n' +
    '<a class="skip-link" href="#main">Skip to content</a>\n' +
    header(page) + '\n' +
    `<main id="main">\n${page.main.trim()}\n</main>\n` +
    footer(ctx) + '\n</body>\n</html>\n'
}
