// What a visitor typed into the sign-up form, carried back to it when a plain form post (no
// script) is refused: the redirect's URL says what went wrong, this short-lived cookie holds
// what was typed, so the visitor corrects it instead of typing it all again. A cookie and not
// the URL: an email address must not land in access logs, browser history or a Referer.
import type { CookieSerializeOptions } from '@fastify/cookie'

export const TYPED_COOKIE = 'ctfhive_typed'

/** The fields kept, with the form's own maxlength: nothing longer is written back. */
const FIELDS = { name: 80, email: 254 } as const

type Typed = Partial<Record<keyof typeof FIELDS, string>>

/** Sent only to the form, never readable by script, over HTTPS only where the site is served so, gone after a few minutes. */
export function typedCookieOptions (publicBaseUrl: string): CookieSerializeOptions {
  return { path: '/register', httpOnly: true, sameSite: 'lax', secure: publicBaseUrl.startsWith('https:'), maxAge: 300 }
}

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
