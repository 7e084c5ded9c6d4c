// The marketing site's pages: the URL each answers at and the file the build writes for it.
// The build renders exactly these, the server routes exactly these, and the sitemap lists
// the indexable ones, so a page cannot exist in one place and be missing in another.

export interface SitePage {
  readonly path: string
  readonly file: string
  /** Listed in sitemap.xml and open to search engines. */
  readonly indexable: boolean
}

export const SITE_PAGES: readonly SitePage[] = Object.freeze([
  { path: '/', file: 'index.html', indexable: true },
  { path: '/pricing', file: 'pricing.html', indexable: true },
  { path: '/about', file: 'about.html', indexable: true },
  { path: '/contact', file: 'contact.html', indexable: true },
  { path: '/privacy', file: 'privacy.html', indexable: true },
  { path: '/login', file: 'login.html', indexable: false },
  { path: '/register', file: 'register.html', indexable: false },
  { path: '/welcome', file: 'welcome.html', indexable: false }
])

export const NOT_FOUND_FILE = '404.html'

/**
 * The frame of the page a buyer back from Stripe Checkout gets when /billing/success cannot go
 * on: the site's layout around an empty messageBlock() (web/slots.ts). Not a page of its own.
 */
export const CHECKOUT_RETURN_FILE = 'checkout-return.html'

/** Written by the build next to the pages: what was built, from what, for which origin. */
export const MANIFEST_FILE = '.build.json'

/**
 * The URL paths sitemap.xml lists. The docs are a site of their own under /docs/, listed only
 * while they are built: otherwise /docs/ answers 503.
 */
export function sitemapPaths (withDocs: boolean): string[] {
  return [...SITE_PAGES.filter((p) => p.indexable).map((p) => p.path), ...(withDocs ? ['/docs/'] : [])]
}
