// What the buyer reads: every state an order can be in maps to words and a step, and every
// checkout error code to a field and a message.
import t from 'tap'
import { BILLING, INFRA, deriveTenantState } from '../../api/tenants/lifecycle.ts'
import { LOGIN_ERRORS, PAYMENT_DELAYED_MS, PROGRESS_STEPS, PROGRESS_TEXT, REGISTER_ERRORS, fillText, graceDelay, loginError, loginTarget, progressOf, registerError, shutdownText, siteValues } from '../../api/web/buyer-text.ts'
import { escapeHtml, progressBlock } from '../../api/web/slots.ts'

const at = '2025-05-01T09:00:00.000Z'
const atMs = Date.parse(at)

/** The status facts progressOf reads, for an order created at `at`. */
function facts (billing: typeof BILLING[number], infra: typeof INFRA[number], over: { paid?: boolean, ready?: boolean, canceledAt?: string | null } = {}) {
  const paid = over.paid ?? billing !== 'pending'
  const ready = over.ready ?? (infra === 'ready' || infra === 'deprovisioned')
  return {
    state: deriveTenantState(billing, infra),
    billing,
    infra,
    paid_at: paid ? at : null,
    ready_at: ready ? at : null,
    canceled_at: over.canceledAt !== undefined ? over.canceledAt : billing === 'canceled' ? at : null,
    created_at: at
  }
}

t.test('every billing × infra combination has a progress the buyer understands', async (t) => {
  for (const billing of BILLING) {
    for (const infra of INFRA) {
      const status = facts(billing, infra)
      const state = status.state
      const paid = billing !== 'pending'
      const p = progressOf(status, atMs)
      const where = `${billing}/${infra}`
      t.ok(PROGRESS_TEXT[p.key], `${where}: ${p.key}`)
      t.ok(p.done >= 1 && p.done <= PROGRESS_STEPS.length, `${where}: ${p.done} steps done`)
      if (state === 'active') t.same(p, { key: 'live', done: 4, final: true, online: true }, where)
      if (state === 'provisioning') t.equal(p.key, paid ? 'setting_up' : 'awaiting_payment', where)
      // A server that runs is linked to in every state, and only one that runs.
      t.equal(p.online === true, infra === 'ready' && paid && state !== 'failed', `${where}: online`)
      // Final only when nothing can follow: a failed order may be retried, and a canceled one
      // whose server is still coming runs through the grace period.
      t.equal(p.final, state === 'active' || (state === 'canceled' && infra !== 'provisioning' && infra !== 'ready'), `${where}: final`)
    }
  }
  t.same(progressOf(null), { key: 'not_found', done: 0, final: true })
  t.same(progressOf(facts('canceled', 'deprovisioned'), atMs), { key: 'canceled', done: 2, final: true }, 'a torn-down CTF is not shown as live')
  t.same(progressOf(facts('canceled', 'none', { paid: false, ready: false }), atMs), { key: 'canceled_unpaid', done: 1, final: true }, 'nor one never paid for')
})

t.test('a CTF that still runs after its payment failed or its cancellation is shown as running', async (t) => {
  // Canceled, in its grace period: the server is up and /login/go still sends the buyer there.
  t.same(progressOf(facts('canceled', 'ready'), atMs), { key: 'canceled_running', done: 4, final: false, online: true, canceledAt: at })
  t.same(progressOf(facts('canceled', 'ready', { canceledAt: null }), atMs), { key: 'canceled_running', done: 4, final: false, online: true },
    'a tenant without a cancellation time still runs')
  // Past due: "keeps running for now", with the server step done and a link.
  t.same(progressOf(facts('past_due', 'ready'), atMs), { key: 'past_due', done: 4, final: false, online: true })
  // Past due while its server is being made again: no link, setup not done, and not "keeps running".
  t.same(progressOf(facts('past_due', 'provisioning', { ready: true }), atMs), { key: 'past_due_setting_up', done: 2, final: false })
  t.notMatch(PROGRESS_TEXT.past_due_setting_up.detail, /keeps running/)
  // A trial or a 100 % discount is set up without a payment: what is confirmed is the order.
  t.match(PROGRESS_TEXT.setting_up.detail, /^Your order is confirmed\./)

  const values = { url: 'https://spring-ctf-1a2b3c.ctfhive.example/', reason: 'The subscription was canceled.', ...siteValues({ contactDomain: 'ctfhive.example', graceHours: 72 }) }
  const running = progressBlock(progressOf(facts('canceled', 'ready'), atMs), values)
  t.match(running, '<p id="live-link"><a class="button" href="https://spring-ctf-1a2b3c.ctfhive.example/">Open your CTF</a></p>')
  t.match(running, 'The subscription was canceled. Your CTF stays online until 4 May 2025, 09:00 UTC; then its server and all its data are deleted.')
  t.match(running, '<li class="step done" data-step="2">Server set up<span class="visually-hidden"> (done)</span></li>')
  t.notMatch(running, /stopped/)
  const pastDue = progressBlock(progressOf(facts('past_due', 'ready'), atMs), values)
  t.match(pastDue, '<p id="live-link"><a class="button" href="https://spring-ctf-1a2b3c.ctfhive.example/">Open your CTF</a></p>')
  t.match(pastDue, 'if it keeps failing, the subscription ends and your CTF is shut down 3 days after the cancellation.')
  t.match(pastDue, '<li class="step done" data-step="2">Server set up<span class="visually-hidden"> (done)</span></li>')
  const gone = progressBlock(progressOf(facts('canceled', 'deprovisioned'), atMs), values)
  t.match(gone, '<p id="live-link" hidden><a class="button" href="#">', 'no link to a torn-down server')

  t.equal(shutdownText(at, 72), '4 May 2025, 09:00 UTC')
  t.equal(shutdownText('2025-12-31T23:05:00.000Z', 1), '1 January 2026, 00:05 UTC')
  t.equal(shutdownText(undefined, 72, '3 days after the cancellation'), '3 days after the cancellation', 'no time: the grace period in words')
  t.equal(shutdownText(at, undefined, 'later'), 'later')
})

t.test('a payment still pending after a few minutes is described as a slow one', async (t) => {
  const pending = facts('pending', 'none')
  t.equal(progressOf(pending, atMs + PAYMENT_DELAYED_MS - 1).key, 'awaiting_payment')
  const slow = progressOf(pending, atMs + PAYMENT_DELAYED_MS)
  t.same(slow, { key: 'payment_delayed', done: 1, final: false })
  t.notMatch(PROGRESS_TEXT.awaiting_payment.detail, /usually within seconds/, 'not every payment method confirms in seconds')
  t.match(PROGRESS_TEXT.awaiting_payment.detail, 'a bank payment can take a few days')
  const detail = fillText(PROGRESS_TEXT.payment_delayed.detail, { fqdn: 'spring-ctf-1a2b3c.ctfhive.example' })
  t.match(detail, 'You can close this page: open the same link again')
  t.match(detail, 'spring-ctf-1a2b3c.ctfhive.example, which Sign in on our site also takes you to')
  t.notMatch(detail, /keep this page open/i)
  // Paid: the payment is not what it waits for, however old the order.
  t.equal(progressOf(facts('paid', 'provisioning'), atMs + 10 * PAYMENT_DELAYED_MS).key, 'setting_up')
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
  t.match(html, '&lt;b&gt;The checkout expired.&lt;/b&gt; Nothing of it is online: a CTF set up for it is shut down and its data deleted 3 days after the cancellation.')
  t.match(html, '<li class="step stopped" data-step="2">Setup stopped<span class="visually-hidden"> (stopped)</span></li>')
  t.match(html, '<p id="live-link" hidden>')
})

t.test('texts use only placeholders the server and the script fill in', async (t) => {
  const filled = new Set(['url', 'fqdn', 'tenant', 'reason', 'grace', 'billing', 'until'])
  for (const [key, text] of Object.entries(PROGRESS_TEXT)) {
    for (const [, name] of `${text.headline} ${text.detail}`.matchAll(/\{(\w+)\}/g)) t.ok(filled.has(name!), `${key}: {${name}}`)
  }
})

t.test('a canceled or unpaid order is described as it is', async (t) => {
  const values = siteValues({ contactDomain: 'ctfhive.example', graceHours: 72 })
  t.same(values, { grace: '3 days after the cancellation', billing: 'billing@ctfhive.example', graceHours: 72 })
  t.same([0, 1, 5, 24, 48].map(graceDelay), ['right after the cancellation', '1 hour after the cancellation', '5 hours after the cancellation',
    '1 day after the cancellation', '2 days after the cancellation'])

  // Canceled with no server running (never set up, or torn down): what was set up goes after DEPROVISION_GRACE_HOURS.
  const words = { grace: values.grace, billing: values.billing }
  const canceled = fillText(PROGRESS_TEXT.canceled.detail, { reason: 'The subscription was canceled.', ...words })
  t.match(canceled, 'shut down and its data deleted 3 days after the cancellation')

  // Never paid for (an expired or failed checkout): no CTF was set up, so none is shut down.
  const unpaid = progressOf(facts('canceled', 'none', { paid: false, ready: false }), atMs)
  const expired = fillText(PROGRESS_TEXT[unpaid.key].detail, { reason: 'The checkout expired before payment.', ...words })
  t.notMatch(expired, /shut down|data deleted|after the cancellation/, 'no CTF to shut down')
  t.match(expired, 'The checkout expired before payment. No payment went through for it, so no CTF was set up.')
  t.match(progressBlock(unpaid, { reason: 'x' }), '<li class="step stopped" data-step="1">No payment', 'stopped at the payment, and says so')

  // Stripe retries a failed charge and emails the buyer; a new card goes through billing.
  const pastDue = fillText(PROGRESS_TEXT.past_due.detail, words)
  t.notMatch(pastDue, /update your payment method/i, 'there is no page to update it on')
  t.match(pastDue, 'Stripe tries the charge again and emails you about it')
  t.match(pastDue, 'write to billing@ctfhive.example')
})

t.test('the page thanks the buyer only while the order goes ahead', async (t) => {
  for (const key of ['checking', 'awaiting_payment', 'payment_delayed', 'setting_up', 'live'] as const) t.equal(PROGRESS_TEXT[key].heading, 'Thank you for your order', key)
  for (const key of ['past_due', 'past_due_setting_up', 'payment_failed', 'failed', 'canceled_running', 'canceled', 'canceled_unpaid', 'not_found'] as const) t.equal(PROGRESS_TEXT[key].heading, 'Your order', key)
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

t.test('a first payment that failed is not shown as paid, nor its CTF as running or being set up', async (t) => {
  // Never paid (its first invoice failed): billing past_due, nothing provisioned.
  const unpaid = facts('past_due', 'none', { paid: false, ready: false })
  const p = progressOf(unpaid, atMs)
  t.same(p, { key: 'payment_failed', done: 1, final: false }, 'stuck before "Payment confirmed", and followed')
  const { graceHours: _hours, ...settings } = siteValues({ contactDomain: 'ctfhive.example', graceHours: 72 })
  const values = { tenant: '0123456789abcdef0123456789abcdef', fqdn: 'spring-ctf-1a2b3c.ctfhive.example', ...settings }
  const html = progressBlock(p, values)
  t.match(html, '<li class="step done" data-step="0">Order received')
  t.match(html, '<li class="step current" data-step="1">Payment confirmed<span class="visually-hidden"> (in progress)</span></li>')
  t.match(html, '<li class="step todo" data-step="2">Server set up<span class="visually-hidden"> (not started yet)</span></li>')
  t.match(html, '<p id="live-link" hidden>', 'nothing to link to')
  const detail = fillText(PROGRESS_TEXT.payment_failed.detail, values)
  t.notMatch(detail, /keeps running|shut down/, 'nothing runs, so nothing is shut down')
  t.match(detail, 'No payment for this order has gone through yet, so nothing of it is set up or online.')
  t.match(detail, 'We set up your CTF as soon as a payment goes through')
  t.match(detail, 'write to billing@ctfhive.example')
  // Paid once, then past due before its server came up: setup goes on, nothing runs yet.
  const setting = progressOf(facts('past_due', 'provisioning', { ready: false }), atMs)
  t.same(setting, { key: 'past_due_setting_up', done: 2, final: false })
  t.match(progressBlock(setting, values), '<li class="step current" data-step="2">Server set up<span class="visually-hidden"> (in progress)</span></li>')
  t.match(fillText(PROGRESS_TEXT.past_due_setting_up.detail, values), 'We go on setting up your CTF at spring-ctf-1a2b3c.ctfhive.example for now.')
})

t.test('a failed order, or a canceled one whose server may still come up, is still followed', async (t) => {
  const failed = progressOf(facts('paid', 'failed', { ready: false }), atMs)
  t.same(failed, { key: 'failed', done: 2, final: false }, 'an operator may retry it')
  // Not followed as "in progress": the step shows where it stopped.
  t.match(progressBlock(failed, {}), '<li class="step stopped" data-step="2">Setup stopped<span class="visually-hidden"> (stopped)</span></li>')
  t.match(PROGRESS_TEXT.failed.detail, 'our team has been told')
  const coming = progressOf(facts('canceled', 'provisioning', { ready: false }), atMs)
  t.same(coming, { key: 'canceled', done: 2, final: false }, 'canceled while being set up')
  t.match(progressBlock(coming, {}), '<li class="step stopped" data-step="2">Setup stopped')
  t.equal(progressOf(facts('canceled', 'none'), atMs).final, true, 'nothing coming')
  t.equal(progressOf(facts('canceled', 'failed'), atMs).final, true, 'a canceled tenant is not retried')
  t.equal(progressOf(facts('canceled', 'provisioning', { paid: false, ready: false }), atMs).final, true)
})
