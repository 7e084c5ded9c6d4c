// Stripe webhook signature verification: pure, no I/O, hand-written on purpose so the path
// from the wire to the HMAC stays small and auditable.
// Header: `t=<unix s>,v1=<hex>[,v1=<hex>…][,v0=…]`; signed payload = `${t}.` + raw body.
import { createHmac, timingSafeEqual } from 'node:crypto'

export type SignatureFailure = 'no_secret' | 'no_header' | 'malformed' | 'stale' | 'no_match'

export type SignatureResult = { ok: true, timestamp: number } | { ok: false, reason: SignatureFailure, message: string }

export interface VerifyOptions {
  /** Every secret currently configured (rotation): a match under any of them passes. */
  secrets: readonly string[]
  header: string | undefined
  rawBody: Buffer
  /** Seconds. */
  toleranceS: number
  /** Unix seconds; injectable for tests. */
  now?: number
}

const MESSAGES: Record<SignatureFailure, string> = {
  no_secret: 'no webhook signing secret is configured (set STRIPE_WEBHOOK_SECRET)',
  no_header: 'the Stripe-Signature header is missing',
  malformed: 'the Stripe-Signature header is malformed',
  stale: 'the signature timestamp is outside the tolerance window',
  no_match: 'no signature matches the payload'
}

function fail (reason: SignatureFailure): SignatureResult {
  return { ok: false, reason, message: MESSAGES[reason] }
}

export function computeSignature (secret: string, timestamp: number | string, rawBody: Buffer | string): string {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(rawBody).digest('hex')
}

export function verifyStripeSignature (opts: VerifyOptions): SignatureResult {
  if (opts.secrets.length === 0) return fail('no_secret')
  if (opts.header === undefined || opts.header === '') return fail('no_header')

  let timestamp: number | undefined
  const signatures: string[] = []
  for (const part of opts.header.split(',')) {
    const eq = part.indexOf('=')
    if (eq <= 0) return fail('malformed')
    const key = part.slice(0, eq)
    const value = part.slice(eq + 1)
    if (key === 't') {
      // Strict like stripe-php: a decimal integer, nothing else (no spaces, signs or exponents).
      if (!/^\d{1,12}$/.test(value) || timestamp !== undefined) return fail('malformed')
      timestamp = Number(value)
    } else if (key === 'v1') {
      signatures.push(value)
    }
    // Other schemes (v0 on test events) are ignored.
  }
  if (timestamp === undefined || signatures.length === 0) return fail('malformed')

  const now = opts.now ?? Math.floor(Date.now() / 1000)
  // Both directions: a timestamp from the future is as suspect as an old one.
  if (Math.abs(now - timestamp) > opts.toleranceS) return fail('stale')

  for (const secret of opts.secrets) {
    const expected = Buffer.from(computeSignature(secret, timestamp, opts.rawBody), 'utf8')
    for (const candidate of signatures) {
      const given = Buffer.from(candidate, 'utf8')
      if (given.length === expected.length && timingSafeEqual(given, expected)) return { ok: true, timestamp }
    }
  }
  return fail('no_match')
}

/** Builds a valid header, for tests and the live smoke. */
export function signPayload (secret: string, rawBody: Buffer | string, timestamp = Math.floor(Date.now() / 1000)): string {
  return `t=${timestamp},v1=${computeSignature(secret, timestamp, rawBody)}`
}
