// What a visitor typed into the sign-up form, carried back to it when a plain form post (no
// script) is refused: the redirect's URL says what went wrong, this short-lived cookie holds
// what was typed, so the visitor corrects it instead of typing it all again. A cookie and not
// the URL: an email address must not land in access logs, browser history or a Referer.
import type { CookieSerializeOptions } from '@fastify/cookie'

/** The cookie's name where the site is plain HTTP (development). */
export const TYPED_COOKIE = 'ctfhive_typed'

/**
 * Over HTTPS, a `__Host-` cookie: browsers refuse one set for the parent domain, so a page of a
 * tenant's CTF (a sibling host whose buyer writes its pages) cannot plant the name and email
 * our form shows, and Checkout then keeps. The prefix requires Secure, Path=/ and no Domain.
 */
export function typedCookie (publicBaseUrl: string): { name: string, options: CookieSerializeOptions } {
  const options: CookieSerializeOptions = { httpOnly: true, sameSite: 'lax', maxAge: 300 }
  return publicBaseUrl.startsWith('https:')
    ? { name: `__Host-${TYPED_COOKIE}`, options: { ...options, path: '/', secure: true } }
    : { name: TYPED_COOKIE, options: { ...options, path: '/register', secure: false } }
}

/**
 * Whether a request for the form may read the cookie: the browser's own redirect back from
 * our refusal (same-origin), or one that says nothing. A navigation from another site, or a
 * sibling host, is not ours to refill.
 */
export function mayReadTyped (secFetchSite: string | string[] | undefined): boolean {
  return secFetchSite === undefined || secFetchSite === 'same-origin' || secFetchSite === 'none'
}

/** The fields kept, with the form's own maxlength: nothing longer is written back. */
const FIELDS = { name: 80, email: 254 } as const

type Typed = Partial<Record<keyof typeof FIELDS, string>>

function pick (source: unknown): Typed {
  const typed: Typed = {}
  if (source === null || typeof source !== 'object') return typed
  for (const [field, max] of Object.entries(FIELDS) as Array<[keyof typeof FIELDS, number]>) {
    const value = (source as Record<string, unknown>)[field]
    if (typeof value === 'string' && value !== '') typed[field] = value.slice(0, max)
  }
  return typed
}

/** The cookie's value for a posted form body; undefined when nothing worth keeping was typed. */
export function encodeTyped (body: unknown): string | undefined {
  const typed = pick(body)
  return Object.keys(typed).length === 0 ? undefined : JSON.stringify(typed)
}

/** The typed values from the cookie; anything malformed reads as nothing typed. */
export function decodeTyped (raw: string | undefined): Typed {
  if (raw === undefined) return {}
  try {
    return pick(JSON.parse(raw))
  } catch {
    return {}
  }
}
