import t from 'tap'
import { buildTestApp } from '../helpers/build-app.ts'
import { checkoutSession, deliver, invoice, makeEvent, subscription } from '../helpers/stripe-events.ts'
import { sealCredential } from '../helpers/credential-seal.ts'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import type { CreateResult, ServerSpec } from '../../api/provisioning/executor.ts'
import { welcomeToken } from '../../api/tenants/welcome-token.ts'
import type { FastifyInstance } from 'fastify'
import { load } from 'cheerio'
import { buildTestSite } from '../helpers/site-build.ts'

const SECRET = 'credentials-test-secret-key-0123456789'

/** A FakeExecutor whose servers publish a sealed credential, as real ones do. */
class PublishingExecutor extends FakeExecutor {
  envelopes = new Map<string, string>()
  async fetchCredentialEnvelope (fqdn: string): Promise<string | undefined> {
    return this.envelopes.get(fqdn)
  }
}

/** And records the address each server's first administrator is set up with. */
class Recording extends PublishingExecutor {
  baked: string[] = []
  override async createOrAdopt (spec: ServerSpec, signal?: AbortSignal): Promise<CreateResult> {
    this.baked.push(spec.adminEmail)
    return await super.createOrAdopt(spec, signal)
  }
}

async function liveTenant (app: FastifyInstance): Promise<{ id: string, fqdn: string }> {
  const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Cred CTF', email: 'owner@cred.test' } })).json().tenant_id
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'solo' })))
  return { id, fqdn: (await app.inject(`/tenants/${id}/status`)).json().fqdn }
}

t.test('without an email at checkout, the credential names the address the server was set up with', async (t) => {
  const executor = new PublishingExecutor()
  const { app } = await buildTestApp(t, { executor, env: { SECRET_KEY: SECRET } })
  const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'No Mail CTF' } })).json().tenant_id
  await deliver(app, makeEvent('checkout.session.completed', { ...checkoutSession({ tenantId: id, plan: 'solo' }), customer_details: null }))
  const { fqdn } = (await app.inject(`/tenants/${id}/status`)).json()
  executor.envelopes.set(fqdn, sealCredential(SECRET, id, 'Correct-Horse-42'))
  const r = await app.inject(`/tenants/${id}/credentials?token=${welcomeToken(SECRET, id)}`)
  t.equal(r.statusCode, 200, r.body)
  t.equal(r.json().admin_email, `admin@${fqdn}`, "CTFd's administrator address, not an empty one")
})

t.test('an invoice paid before the checkout completes brings the buyer\'s address: the server and the credential name the same one', async (t) => {
  const executor = new Recording()
  const { app, store } = await buildTestApp(t, { executor, env: { SECRET_KEY: SECRET } })
  const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Invoice First CTF' } })).json().tenant_id
  // Stripe's usual order for a subscription: the invoice before the session.
  await deliver(app, makeEvent('invoice.paid', { ...invoice({ subscription: 'sub_first', tenantId: id }), customer_email: 'buyer@example.org' }))
  t.equal((await store.getTenant(id))?.email, 'buyer@example.org', 'the tenant takes the invoice\'s address')
  await deliver(app, makeEvent('checkout.session.completed', { ...checkoutSession({ tenantId: id, plan: 'solo', subscription: 'sub_first' }), customer_details: { email: 'buyer@example.org' } }))
  const { fqdn } = (await app.inject(`/tenants/${id}/status`)).json()
  executor.envelopes.set(fqdn, sealCredential(SECRET, id, 'Correct-Horse-42'))
  const r = await app.inject(`/tenants/${id}/credentials?token=${welcomeToken(SECRET, id)}`)
  t.same(executor.baked, ['buyer@example.org'], 'the server was set up with the buyer\'s address')
  t.equal(r.json().admin_email, executor.baked[0], 'and the credential names that one')
})

t.test('an address that reaches the tenant after its server was set up is kept, but the credential names the one the server has', async (t) => {
  const executor = new Recording()
  const { app, store } = await buildTestApp(t, { executor, env: { SECRET_KEY: SECRET } })
  const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Sub First CTF' } })).json().tenant_id
  // An active subscription carries no address: the server is set up with a made-up one.
  await deliver(app, makeEvent('customer.subscription.created', subscription({ id: 'sub_early', tenantId: id, status: 'active', plan: 'solo' })))
  const { fqdn, state } = (await app.inject(`/tenants/${id}/status`)).json()
  t.equal(state, 'active')
  t.same(executor.baked, [`admin@${fqdn}`])
  await deliver(app, makeEvent('checkout.session.completed', { ...checkoutSession({ tenantId: id, plan: 'solo', subscription: 'sub_early' }), customer_details: { email: 'late@example.org' } }))
  t.equal((await store.getTenant(id))?.email, 'late@example.org', 'the tenant has the buyer\'s address now (support needs it)')
  executor.envelopes.set(fqdn, sealCredential(SECRET, id, 'Correct-Horse-42'))
  const r = await app.inject(`/tenants/${id}/credentials?token=${welcomeToken(SECRET, id)}`)
  t.equal(r.json().admin_email, `admin@${fqdn}`, 'the credential names the address CTFd has')
})

t.test('the signed welcome link reveals the sealed admin credential, and nothing else does', async (t) => {
  const executor = new PublishingExecutor()
  const lines: Array<Record<string, unknown>> = []
  const { app, store } = await buildTestApp(t, { executor, logLines: lines, env: { SECRET_KEY: SECRET } })
  const { id, fqdn } = await liveTenant(app)
  const token = welcomeToken(SECRET, id)
  const url = `/tenants/${id}/credentials?token=${token}`

  const early = await app.inject(url)
  t.equal(early.statusCode, 404)
  t.equal(early.json().error, 'credential_unavailable', 'not published yet')

  executor.envelopes.set(fqdn, sealCredential(SECRET, id, 'Correct-Horse-42'))
  const r = await app.inject(url)
  t.equal(r.statusCode, 200)
  t.equal(r.headers['cache-control'], 'no-store')
  t.same(r.json(), { tenant_id: id, login_url: `https://${fqdn}/login`, admin_name: 'admin', admin_email: 'owner@cred.test', password: 'Correct-Horse-42' })

  const wrong = await app.inject(`/tenants/${id}/credentials?token=${'0'.repeat(40)}`)
  t.equal(wrong.statusCode, 403)
  t.equal(wrong.json().error, 'forbidden')
  const other = await liveTenant(app)
  const crossed = await app.inject(`/tenants/${other.id}/credentials?token=${token}`)
  t.equal(crossed.statusCode, 403, 'one tenant’s link never opens another’s')
  t.equal((await app.inject(`/tenants/${id}/credentials`)).statusCode, 400, 'no token')

  executor.envelopes.set(other.fqdn, sealCredential(SECRET, id, 'not-for-you'))
  const misdirected = await app.inject(`/tenants/${other.id}/credentials?token=${welcomeToken(SECRET, other.id)}`)
  t.equal(misdirected.statusCode, 502)
  t.equal(misdirected.json().error, 'credential_unreadable', 'an envelope sealed for another tenant does not open')

  const everywhere = JSON.stringify(lines) + JSON.stringify(await store.listAudit({})) + (await app.inject(`/tenants/${id}/status`)).body
  t.notOk(everywhere.includes('Correct-Horse-42'), 'never in logs, audit entries or the status')
})

t.test('an envelope sealed under another SECRET_KEY (a restore without the env file): the warning names SECRET_KEY, never a secret', async (t) => {
  const executor = new PublishingExecutor()
  const lines: Array<Record<string, unknown>> = []
  const { app } = await buildTestApp(t, { executor, logLines: lines, env: { SECRET_KEY: SECRET } })
  const { id, fqdn } = await liveTenant(app)
  const before = 'the-key-the-server-was-set-up-under-0123'
  executor.envelopes.set(fqdn, sealCredential(before, id, 'Correct-Horse-42'))
  const r = await app.inject(`/tenants/${id}/credentials?token=${welcomeToken(SECRET, id)}`)
  t.equal(r.statusCode, 502)
  t.equal(r.json().error, 'credential_unreadable')
  const warned = lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('credential envelope did not open'))
  t.equal(warned.length, 1, 'one warning')
  t.match(warned[0], { level: 40, tenant: id, msg: /another SECRET_KEY/ }, 'names the likely cause')
  const logged = JSON.stringify(lines)
  for (const secret of [SECRET, before, 'Correct-Horse-42']) t.notOk(logged.includes(secret), 'no secret value in the log')
})

t.test('no credential before the CTF is live, or with the development executor', async (t) => {
  const { app } = await buildTestApp(t, { env: { SECRET_KEY: SECRET } })
  const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo' } })).json().tenant_id
  const pending = await app.inject(`/tenants/${id}/credentials?token=${welcomeToken(SECRET, id)}`)
  t.equal(pending.statusCode, 409)
  t.equal(pending.json().error, 'tenant_not_ready')
  const { id: live } = await liveTenant(app)
  const fake = await app.inject(`/tenants/${live}/credentials?token=${welcomeToken(SECRET, live)}`)
  t.equal(fake.statusCode, 404)
  t.match(fake.json().message, /fake executor/)
  const unknown = '1'.repeat(32)
  t.equal((await app.inject(`/tenants/${unknown}/credentials?token=${welcomeToken(SECRET, unknown)}`)).statusCode, 404)
})

t.test('while the CTF still runs (past due, or canceled until its teardown) its buyer can still get the credential; once torn down, not', async (t) => {
  const site = buildTestSite(t)
  const executor = new PublishingExecutor()
  const { app, store } = await buildTestApp(t, { executor, env: { ...site.env, SECRET_KEY: SECRET } })
  const id = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Late Export CTF', email: 'owner@cred.test' } })).json().tenant_id
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'solo', subscription: 'sub_late' })))
  const { fqdn } = (await app.inject(`/tenants/${id}/status`)).json()
  executor.envelopes.set(fqdn, sealCredential(SECRET, id, 'Export-Pass-9'))
  const token = welcomeToken(SECRET, id)
  const ask = () => app.inject(`/tenants/${id}/credentials?token=${token}`)
  const offered = async (): Promise<boolean> => load((await app.inject(`/welcome?tenant=${id}&token=${token}`)).body)('#admin-details').attr('hidden') === undefined

  const base = Math.floor(Date.now() / 1000)
  await deliver(app, makeEvent('invoice.payment_failed', invoice({ subscription: 'sub_late', tenantId: id }), { created: base + 10 }))
  t.equal((await app.inject(`/tenants/${id}/status`)).json().state, 'past_due')
  t.equal((await ask()).json().password, 'Export-Pass-9', 'past due: still running, still given')
  t.ok(await offered(), 'and the welcome page offers it')

  await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: 'sub_late', tenantId: id, status: 'canceled', plan: 'solo' }), { created: base + 20 }))
  t.match(await store.getTenant(id), { billing: 'canceled', infra: 'ready' })
  t.equal((await ask()).json().password, 'Export-Pass-9', 'canceled within its grace period: given, to sign in and export')
  t.ok(await offered())

  await store.updateTenant(id, { infra: 'deprovisioned', serverId: null })
  const gone = await ask()
  t.equal(gone.statusCode, 409)
  t.match(gone.json(), { error: 'tenant_not_ready', message: 'The CTF is not online now (torn down, or being set up again), so neither is its credential.' })
  t.notOk(await offered(), 'torn down: nothing offered')
})

t.test('without JavaScript, the welcome page shows the credential on a page load of its own', async (t) => {
  const site = buildTestSite(t)
  const executor = new PublishingExecutor()
  const { app } = await buildTestApp(t, { executor, env: { ...site.env, SECRET_KEY: SECRET } })
  const { id, fqdn } = await liveTenant(app)
  const token = welcomeToken(SECRET, id)
  const page = async (query: string) => {
    const r = await app.inject(`/welcome?tenant=${id}${query}`)
    t.equal(r.statusCode, 200)
    return { r, $: load(r.body) }
  }

  // Live, the right link: the section is offered, with a link for visitors without script.
  const offered = await page(`&token=${token}`)
  t.equal(offered.$('#admin-details').attr('hidden'), undefined, 'the section is offered')
  const link = load(offered.$('#admin-details noscript').html() ?? '')('a').attr('href')
  t.equal(link, `/welcome?tenant=${id}&token=${token}&show=admin#admin-details`, 'a plain link opens the details')
  t.equal(offered.$('#admin-credentials').attr('hidden'), 'hidden', 'not shown until asked')

  // Asked, but the server has not published it yet: the reason, no details.
  const early = await page(`&token=${token}&show=admin`)
  t.match(early.$('#admin-message').text(), /has not published its credential yet/)
  t.equal(early.$('#admin-message').attr('hidden'), undefined)
  t.equal(early.$('#admin-credentials').attr('hidden'), 'hidden')

  executor.envelopes.set(fqdn, sealCredential(SECRET, id, 'No-Script-Pass-7'))
  const shown = await page(`&token=${token}&show=admin`)
  t.equal(shown.$('#admin-password').text(), 'No-Script-Pass-7')
  t.equal(shown.$('#admin-name').text(), 'admin')
  t.equal(shown.$('#admin-email').text(), 'owner@cred.test')
  t.equal(shown.$('#admin-login').attr('href'), `https://${fqdn}/login`)
  t.equal(shown.$('#admin-credentials').attr('hidden'), undefined, 'the details are shown')
  t.equal(shown.$('#admin-show').attr('hidden'), 'hidden', 'the button has nothing left to do')
  t.equal(shown.r.headers['cache-control'], 'no-store', 'never cached')
  t.equal(shown.r.headers['referrer-policy'], 'no-referrer')

  // Anything short of the right link on a live order reveals nothing, not even the section.
  for (const query of ['', `&token=${'0'.repeat(40)}&show=admin`, `&token=${welcomeToken('another-secret-key-0123456789abcdef', id)}&show=admin`]) {
    const other = await page(query)
    t.equal(other.$('#admin-details').attr('hidden'), 'hidden', `section hidden for ${query || 'no token'}`)
    t.notMatch(other.r.body, /No-Script-Pass-7/)
    t.equal(other.$('#admin-details noscript').length, 0)
  }
})
