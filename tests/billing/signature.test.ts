import t from 'tap'
import Stripe from 'stripe'
import fc from 'fast-check'
import { computeSignature, signPayload, verifyStripeSignature } from '../../api/billing/signature.ts'

const secret = 'whsec_test_signature_secret'
const body = Buffer.from(JSON.stringify({ id: 'evt_1', object: 'event', type: 'invoice.paid' }))
const now = 1_700_000_000
const stripe = new Stripe('sk_test_dummy_key_for_signature_tests')

function verify (header: string | undefined, opts: { secrets?: string[], rawBody?: Buffer, now?: number } = {}) {
  return verifyStripeSignature({ secrets: opts.secrets ?? [secret], header, rawBody: opts.rawBody ?? body, toleranceS: 300, now: opts.now ?? now })
}

t.test('a valid header passes and reports its timestamp', async (t) => {
  t.same(verify(signPayload(secret, body, now)), { ok: true, timestamp: now })
})

t.test('every rejection reason', async (t) => {
  const good = computeSignature(secret, now, body)
  const cases: Array<[string, string | undefined, string, { secrets?: string[], now?: number }?]> = [
    ['no secret configured', `t=${now},v1=${good}`, 'no_secret', { secrets: [] }],
    ['no header', undefined, 'no_header'],
    ['empty header', '', 'no_header'],
    ['no t', `v1=${good}`, 'malformed'],
    ['no v1', `t=${now},v0=${good}`, 'malformed'],
    ['part without =', `t=${now},v1`, 'malformed'],
    ['empty key', `t=${now},=abc,v1=${good}`, 'malformed'],
    ['non-numeric t', `t=abc,v1=${good}`, 'malformed'],
    ['t with a sign', `t=+${now},v1=${good}`, 'malformed'],
    ['t with an exponent', `t=1.7e9,v1=${good}`, 'malformed'],
    ['space after comma (stripe-node also fails it)', `t=${now}, v1=${good}`, 'malformed'],
    ['two t parts', `t=${now},t=${now},v1=${good}`, 'malformed'],
    ['stale timestamp', `t=${now - 301},v1=${computeSignature(secret, now - 301, body)}`, 'stale'],
    ['future timestamp', `t=${now + 301},v1=${computeSignature(secret, now + 301, body)}`, 'stale'],
    ['wrong signature', `t=${now},v1=${'0'.repeat(64)}`, 'no_match'],
    ['short signature', `t=${now},v1=abc`, 'no_match'],
    ['signature by another secret', `t=${now},v1=${computeSignature('whsec_other', now, body)}`, 'no_match'],
    ['signature over another timestamp', `t=${now},v1=${computeSignature(secret, now - 1, body)}`, 'no_match'],
    ['uppercase hex', `t=${now},v1=${good.toUpperCase()}`, 'no_match']
  ]
  for (const [name, header, reason, opts] of cases) {
    const r = verify(header, opts)
    t.equal(r.ok, false, name)
    if (!r.ok) {
      t.equal(r.reason, reason, `${name}: reason`)
      t.notMatch(r.message, secret, `${name}: the message never holds the secret`)
    }
  }
})

t.test('the edge of the tolerance window passes in both directions', async (t) => {
  t.ok(verify(signPayload(secret, body, now - 300)).ok)
  t.ok(verify(signPayload(secret, body, now + 300)).ok)
})

t.test('a changed body fails', async (t) => {
  const header = signPayload(secret, body, now)
  const r = verify(header, { rawBody: Buffer.concat([body, Buffer.from(' ')]) })
  t.same(r.ok, false)
})

t.test('rotation: any v1 under any configured secret passes', async (t) => {
  const oldSig = computeSignature('whsec_old', now, body)
  const newSig = computeSignature('whsec_new', now, body)
  t.ok(verify(`t=${now},v1=${oldSig},v1=${newSig}`, { secrets: ['whsec_new'] }).ok, 'second v1 matches')
  t.ok(verify(`t=${now},v1=${oldSig}`, { secrets: ['whsec_new', 'whsec_old'] }).ok, 'second secret matches')
  t.ok(verify(`t=${now},v0=deadbeef,v1=${newSig}`, { secrets: ['whsec_new'] }).ok, 'v0 is ignored')
  t.notOk(verify(`t=${now},v1=${oldSig}`, { secrets: ['whsec_new'] }).ok)
})

t.test('headers made by the official stripe package are accepted', async (t) => {
  const payload = body.toString()
  for (const timestamp of [now, now - 299, now + 10]) {
    const header = stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp })
    t.ok(verify(header).ok, `timestamp ${timestamp}`)
  }
  // With the real clock, as deliveries arrive.
  const live = stripe.webhooks.generateTestHeaderString({ payload, secret })
  t.ok(verifyStripeSignature({ secrets: [secret], header: live, rawBody: body, toleranceS: 300 }).ok)
})

t.test('whatever the stripe package rejects, we reject too', async (t) => {
  const payload = body.toString()
  const stripeAccepts = (header: string): boolean => {
    try {
      stripe.webhooks.signature!.verifyHeader(payload, header, secret, 300, undefined, now)
      return true
    } catch {
      return false
    }
  }
  const good = computeSignature(secret, now, body)
  const headers = [
    `t=${now},v1=${good}`,
    `t=${now}, v1=${good}`,
    `v1=${good}`,
    `t=${now}`,
    `t=${now - 1000},v1=${computeSignature(secret, now - 1000, body)}`,
    `t=${now},v1=${good.slice(1)}`,
    `t=${now},v1=${computeSignature('whsec_x', now, body)}`,
    `t=${now},v0=${good}`,
    'garbage'
  ]
  let rejected = 0
  for (const header of headers) {
    if (stripeAccepts(header)) continue
    rejected++
    t.notOk(verify(header).ok, `stripe rejects ${header.slice(0, 30)}…, so do we`)
  }
  t.ok(rejected >= 6, 'the stripe package rejects the malformed ones')
  t.ok(stripeAccepts(headers[0]!) && verify(headers[0]!).ok, 'both accept the well-formed header')
  // Fuzzed headers: never accept what stripe-node rejects.
  fc.assert(fc.property(fc.string({ maxLength: 120 }), (header) => {
    if (!stripeAccepts(header)) return !verify(header).ok
    return true
  }), { numRuns: 300 })
})
