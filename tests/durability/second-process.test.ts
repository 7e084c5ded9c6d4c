// Two server processes on one SQLite file: the subscription → tenant index lives in the store,
// so a process that never saw the checkout, and one started afresh, still resolve invoices
// that carry only the subscription id.
import t from 'tap'
import { TEST_WEBHOOK_SECRET, tempDbPath } from '../helpers/build-app.ts'
import { checkoutSession, invoice, makeEvent } from '../helpers/stripe-events.ts'
import { deliverTo, getJson, postJson, startServer } from '../helpers/server-process.ts'

t.test('an invoice with only the subscription id resolves in another process and after a restart', async (t) => {
  const env = { DATABASE_URL: `sqlite:${tempDbPath(t)}`, STRIPE_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET }
  const a = await startServer({ env })
  t.teardown(() => a.stop())
  const b = await startServer({ env })
  t.teardown(() => b.stop())

  const base = Math.floor(Date.now() / 1000) - 600
  const subscription = `sub_second_${process.pid}`

  // Process A: checkout, then the completed session links the subscription to the tenant.
  const checkout = await postJson(`${a.url}/billing/checkout`, { plan: 'standard', name: 'Second Process CTF' })
  t.equal(checkout.status, 200)
  const tenantId: string = checkout.json.tenant_id
  const completed = await deliverTo(a.url, TEST_WEBHOOK_SECRET, makeEvent('checkout.session.completed',
    checkoutSession({ tenantId, plan: 'standard', subscription, paymentStatus: 'paid' }), { created: base }))
  t.equal(completed.status, 200)
  t.match(completed.json, { status: 'ok', tenant_id: tenantId }, 'A fulfils the checkout')

  // Process B never saw any of it: the invoice has no tenant metadata, only the subscription.
  const failedInvoice = invoice({ subscription })
  t.same(failedInvoice.parent.subscription_details.metadata, {}, 'the invoice carries no tenant metadata')
  const failed = await deliverTo(b.url, TEST_WEBHOOK_SECRET, makeEvent('invoice.payment_failed', failedInvoice, { created: base + 10 }))
  t.equal(failed.status, 200)
  t.same(failed.json, { status: 'ok', type: 'invoice.payment_failed', tenant_id: tenantId, tenant_state: 'past_due' }, 'B finds the tenant by subscription id')
  t.equal((await getJson(`${a.url}/tenants/${tenantId}/status`)).json.state, 'past_due', 'A sees the change B made')

  // Control: an unknown subscription really is unmatched, so the lookup above was not vacuous.
  const stranger = await deliverTo(b.url, TEST_WEBHOOK_SECRET, makeEvent('invoice.paid', invoice({ subscription: 'sub_nobody_knows' }), { created: base + 11 }))
  t.same(stranger.json, { status: 'unmatched', type: 'invoice.paid' })

  // Both gone; a fresh B (nothing in memory) resolves another invoice, in the older API shape.
  await a.stop()
  await b.stop()
  const b2 = await startServer({ env })
  t.teardown(() => b2.stop())
  const paid = await deliverTo(b2.url, TEST_WEBHOOK_SECRET, makeEvent('invoice.paid', invoice({ subscription, shape: 'legacy' }), { created: base + 20 }))
  t.equal(paid.status, 200)
  t.same(paid.json, { status: 'ok', type: 'invoice.paid', tenant_id: tenantId, tenant_state: 'active' }, 'the index survived the restart')
  const status = await getJson(`${b2.url}/tenants/${tenantId}/status`)
  t.match(status.json, { state: 'active', billing: 'paid', subscription_id: subscription })
})
