// What the buyer reads: every state an order can be in maps to words and a step, and every
// checkout error code to a field and a message.
import t from 'tap'
import { BILLING, INFRA, deriveTenantState } from '../../api/tenants/lifecycle.ts'
import { LOGIN_ERRORS, PROGRESS_STEPS, PROGRESS_TEXT, REGISTER_ERRORS, fillText, loginError, progressOf, registerError } from '../../api/web/buyer-text.ts'
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
  const html = progressBlock({ key: 'canceled', done: 2, final: true }, { reason: '<b>The checkout expired.</b>' })
  t.match(html, '&lt;b&gt;The checkout expired.&lt;/b&gt; Your CTF is not running.')
  t.match(html, '<li class="step stopped" data-step="2">Server set up<span class="visually-hidden"> (stopped)</span></li>')
  t.match(html, '<p id="live-link" hidden>')
})
