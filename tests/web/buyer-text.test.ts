// What the buyer reads: every state an order can be in maps to words and a step, and every
// checkout error code to a field and a message.
import t from 'tap'
import { BILLING, INFRA, deriveTenantState } from '../../api/tenants/lifecycle.ts'
import { LOGIN_ERRORS, PROGRESS_STEPS, PROGRESS_TEXT, REGISTER_ERRORS, fillText, graceDelay, loginError, loginTarget, progressOf, registerError, siteValues } from '../../api/web/buyer-text.ts'
import { escapeHtml, progressBlock } from '../../api/web/slots.ts'

const at = '2025-05-01T09:00:00.000Z'

t.test('every billing × infra combination has a progress the buyer understands', async (t) => {
  for (const billing of BILLING) {
    for (const infra of INFRA) {
      const state = deriveTenantState(billing, infra)
      const paid = billing !== 'pending'
      const status = { state, billing, paid_at: paid ? at : null, ready_at: infra === 'ready' || infra === 'deprovisioned' ? at : null }
      const p = progressOf(status)
      const where = `${billing}/${infra}`
      t.ok(PROGRESS_TEXT[p.key], `${where}: ${p.key}`)
      t.ok(p.done >= 1 && p.done <= PROGRESS_STEPS.length, `${where}: ${p.done} steps done`)
      if (state === 'active') t.same(p, { key: 'live', done: 4, final: true }, where)
      if (state === 'provisioning') t.equal(p.key, paid ? 'setting_up' : 'awaiting_payment', where)
      t.equal(p.final, state === 'active' || state === 'failed' || state === 'canceled', `${where}: final`)
    }
  }
  t.same(progressOf(null), { key: 'not_found', done: 0, final: true })
  t.equal(progressOf({ state: 'canceled', billing: 'canceled', paid_at: at, ready_at: at }).done, 2, 'a canceled CTF is not shown as live')
})

t.test('the sign-in form leads to a server only while one runs', async (t) => {
  for (const billing of BILLING) {
    for (const infra of INFRA) {
      const target = loginTarget({ billing, infra, paidAt: billing === 'pending' ? null : at })
      const expected = billing === 'pending' ? 'unknown_address' : infra === 'ready' ? 'go' : infra === 'deprovisioned' || billing === 'canceled' ? 'shut_down' : 'not_ready'
      t.equal(target, expected, `${billing}/${infra}`)
      if (target !== 'go') t.ok(loginError(target), `${target} has words`)
      // An order never paid for (a checkout that expired cancels it) had nothing to shut down.
      t.equal(loginTarget({ billing, infra, paidAt: null }), 'unknown_address', `${billing}/${infra}, never paid`)
    }
  }
  t.equal(loginTarget(undefined), 'unknown_address')
})

t.test('checkout errors land next to their field', async (t) => {
  t.same(registerError('invalid_request', 'email'), REGISTER_ERRORS.invalid_email)
  t.same(registerError('invalid_request', 'name'), REGISTER_ERRORS.invalid_name)
  t.same(registerError('invalid_request', 'body'), REGISTER_ERRORS.invalid_request, 'an unknown field is a form-wide message')
  t.equal(registerError('plan_requires_contact').field, 'plan')
  t.equal(registerError('stripe_checkout_failed').field, 'form')
  t.same(registerError('no_such_code'), REGISTER_ERRORS.internal_error)
})

t.test('codes naming Object.prototype members are unknown codes', async (t) => {
  for (const code of ['__proto__', 'toString', 'constructor', 'hasOwnProperty', 'valueOf']) {
    t.same(registerError(code), REGISTER_ERRORS.internal_error, `register ${code}`)
    t.same(registerError('invalid_request', code), REGISTER_ERRORS.invalid_request, `register field ${code}`)
    t.equal(loginError(code), undefined, `login ${code}`)
  }
  t.equal(loginError('invalid_address'), LOGIN_ERRORS.invalid_address)
  t.equal(loginError(undefined), undefined)
})

t.test('texts are filled in and escaped', async (t) => {
  t.equal(fillText('At {url} for {missing}.', { url: 'https://a.example/' }), 'At https://a.example/ for .')
  t.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;')
  const html = progressBlock({ key: 'canceled', done: 2, final: true }, { reason: '<b>The checkout expired.</b>', grace: graceDelay(72) })
  t.match(html, '&lt;b&gt;The checkout expired.&lt;/b&gt; If your CTF was set up, it stays online until its server and data are deleted, 3 days after the cancellation.')
  t.match(html, '<li class="step stopped" data-step="2">Server set up<span class="visually-hidden"> (stopped)</span></li>')
  t.match(html, '<p id="live-link" hidden>')
})

t.test('texts use only placeholders the server and the script fill in', async (t) => {
  const filled = new Set(['url', 'fqdn', 'tenant', 'reason', 'grace', 'billing'])
  for (const [key, text] of Object.entries(PROGRESS_TEXT)) {
    for (const [, name] of `${text.headline} ${text.detail}`.matchAll(/\{(\w+)\}/g)) t.ok(filled.has(name!), `${key}: {${name}}`)
  }
})

t.test('a canceled or unpaid order is described as it is', async (t) => {
  const values = siteValues({ baseDomain: 'ctfhive.example', graceHours: 72 })
  t.same(values, { grace: '3 days after the cancellation', billing: 'billing@ctfhive.example' })
  t.same([0, 1, 5, 24, 48].map(graceDelay), ['right after the cancellation', '1 hour after the cancellation', '5 hours after the cancellation',
    '1 day after the cancellation', '2 days after the cancellation'])

  // The server stays up for DEPROVISION_GRACE_HOURS after a cancellation.
  const canceled = fillText(PROGRESS_TEXT.canceled.detail, { reason: 'The subscription was canceled.', ...values })
  t.notMatch(canceled, /not running/, 'a set-up CTF is still running during the grace period')
  t.match(canceled, 'stays online until its server and data are deleted, 3 days after the cancellation')

  // Stripe retries a failed charge and emails the buyer; a new card goes through billing.
  const pastDue = fillText(PROGRESS_TEXT.past_due.detail, values)
  t.notMatch(pastDue, /update your payment method/i, 'there is no page to update it on')
  t.match(pastDue, 'Stripe tries the charge again and emails you about it')
  t.match(pastDue, 'write to billing@ctfhive.example')
})

t.test('the order number shows for every order we know', async (t) => {
  const id = '0123456789abcdef0123456789abcdef'
  for (const key of ['awaiting_payment', 'setting_up', 'live', 'past_due', 'failed', 'canceled'] as const) {
    const html = progressBlock({ key, done: 1, final: false }, { tenant: id })
    t.match(html, `<p class="small order-ref" id="order-ref">Order number: <code id="order-id">${id}</code></p>`, key)
  }
  // An unknown order's id is whatever the URL said: not an order number.
  t.match(progressBlock({ key: 'not_found', done: 0, final: true }, { tenant: '<x>' }), '<p class="small order-ref" id="order-ref" hidden>Order number: <code id="order-id"></code></p>')
  t.match(progressBlock({ key: 'checking', done: 0, final: false }), 'id="order-ref" hidden>')
})
