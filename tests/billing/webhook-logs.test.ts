// What the webhook writes to the log: each refusal once, with its reason, and never the
// signature, the secret or the body; a handled event with its tenant.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, TEST_WEBHOOK_SECRET } from '../helpers/build-app.ts'
import { checkoutSession, deliver, invoice, makeEvent, subscription, type DeliverOptions } from '../helpers/stripe-events.ts'

type Line = Record<string, unknown>

/** Delivers `event` and answers the log lines of that request, the access line left out. */
async function linesOf (app: FastifyInstance, lines: Line[], event: unknown, opts: DeliverOptions = {}): Promise<{ status: number, body: Record<string, unknown>, mine: Line[] }> {
  const r = await deliver(app, event, opts)
  const id = r.headers['x-request-id']
  return { status: r.statusCode, body: r.json(), mine: lines.filter((l) => l.reqId === id && l.msg !== 'request completed') }
}

t.test('each refused webhook is logged once at warn with its reason', async (t) => {
  const lines: Line[] = []
  const { app } = await buildTestApp(t, { logLines: lines, runJobs: false })
  const event = makeEvent('invoice.paid', { id: 'in_log_body_marker' })
  const old = Math.floor(Date.now() / 1000) - 3600
  const cases: Array<{ name: string, body: unknown, opts: DeliverOptions, code: string, reason: string, event?: string }> = [
    { name: 'no header', body: event, opts: { header: null }, code: 'invalid_signature', reason: 'no_header' },
    { name: 'malformed header', body: event, opts: { header: 'garbage-signature-header' }, code: 'invalid_signature', reason: 'malformed' },
    { name: 'old timestamp', body: event, opts: { timestamp: old }, code: 'invalid_signature', reason: 'stale' },
    { name: 'another secret', body: event, opts: { secret: 'whsec_someone_elses_secret' }, code: 'invalid_signature', reason: 'no_match' },
    { name: 'signed, not JSON', body: 'not json at all', opts: {}, code: 'invalid_event', reason: 'not_json' },
    { name: 'signed JSON, not an event', body: { id: 'evt_not_an_event', object: 'event' }, opts: {}, code: 'invalid_event', reason: 'not_an_event', event: 'evt_not_an_event' }
  ]
  for (const c of cases) {
    const { status, body, mine } = await linesOf(app, lines, c.body, c.opts)
    t.equal(status, 400, c.name)
    t.equal(body.error, c.code, c.name)
    t.equal(mine.length, 1, `${c.name}: one line`)
    t.match(mine[0], { level: 40, msg: 'webhook refused', code: c.code, reason: c.reason }, c.name)
    t.equal(mine[0]?.event, c.event, `${c.name}: the event id only once the signature held`)
  }
  const text = lines.map((l) => JSON.stringify(l)).join('\n')
  t.notOk(text.includes('garbage-signature-header'), 'no signature header in the logs')
  t.notOk(text.includes('v1='), 'no signature in the logs')
  t.notOk(text.includes('whsec_someone'), 'no secret in the logs')
  t.notOk(text.includes(TEST_WEBHOOK_SECRET), 'no configured secret in the logs')
  t.notOk(text.includes('in_log_body_marker') || text.includes('not json at all'), 'no body in the logs')
})

t.test('a webhook refused for want of a secret says so in the log', async (t) => {
  const lines: Line[] = []
  const { app } = await buildTestApp(t, { logLines: lines, runJobs: false, env: { STRIPE_WEBHOOK_SECRET: '' } })
  const { status, mine } = await linesOf(app, lines, makeEvent('invoice.paid', {}))
  t.equal(status, 400)
  t.match(mine, [{ level: 40, msg: 'webhook refused', code: 'invalid_signature', reason: 'no_secret' }])
})

t.test('a handled webhook is logged with its tenant and the state it is in', async (t) => {
  const lines: Line[] = []
  const { app } = await buildTestApp(t, { logLines: lines, runJobs: false, env: { WEBHOOK_WAIT_MS: '0' } })
  const tenant = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo' } })).json().tenant_id as string
  const { status, body, mine } = await linesOf(app, lines, makeEvent('checkout.session.completed', checkoutSession({ tenantId: tenant, plan: 'solo' })))
  t.equal(status, 200)
  const handled = mine.filter((l) => l.msg === 'webhook handled')
  t.equal(handled.length, 1)
  t.match(handled[0], { level: 30, type: 'checkout.session.completed', result: 'ok', tenant, tenant_state: body.tenant_state })
  t.type(handled[0]?.tenant_state, 'string')

  const unmatched = await linesOf(app, lines, makeEvent('invoice.paid', invoice({ subscription: 'sub_nobody' })))
  t.match(unmatched.mine.filter((l) => l.msg === 'webhook handled'), [{ result: 'unmatched' }])
  t.notOk('tenant' in unmatched.mine.find((l) => l.msg === 'webhook handled')!, 'no tenant when none matched')
})

// A price made by hand (a yearly one, say) is none of the catalogue's: the plan stays, and says so.
t.test("a subscription on a price outside the catalogue keeps the tenant's plan, with a warning", async (t) => {
  const lines: Line[] = []
  const { app } = await buildTestApp(t, { logLines: lines, runJobs: false, env: { WEBHOOK_WAIT_MS: '0' } })
  const tenant = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'standard' } })).json().tenant_id as string
  const warned = () => lines.filter((l) => String(l.msg).includes('names no price of the plan catalogue'))
  await deliver(app, makeEvent('customer.subscription.updated', subscription({ tenantId: tenant, status: 'active', lookupKey: 'ctfhive_standard_monthly' })))
  t.same(warned(), [], 'not for a price of ours')
  const yearly = makeEvent('customer.subscription.updated', subscription({ tenantId: tenant, status: 'active', lookupKey: 'ctfhive_pro_yearly', priceId: 'price_pro_yearly' }))
  t.equal((await deliver(app, yearly)).json().status, 'ok')
  t.equal((await app.inject(`/tenants/${tenant}/status`)).json().plan, 'standard', 'the plan is unchanged')
  t.match(warned(), [{ level: 40, event: yearly.id, tenant, plan: 'standard', prices: ['price_pro_yearly'] }])
})
