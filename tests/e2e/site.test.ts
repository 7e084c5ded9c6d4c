// The marketing site in a real browser (Debian's Chromium through playwright-core) against the
// app listening on 127.0.0.1: every page renders without console errors; sign-up with and
// without script; the welcome page follows the order to "live" after a signed webhook.
import t from 'tap'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { LOGIN_ERRORS, REGISTER_ERRORS, PROGRESS_TEXT, fillText } from '../../api/web/buyer-text.ts'
import { SITE_PAGES } from '../../api/web/site-pages.ts'
import { buildTestApp } from '../helpers/build-app.ts'
import { chromiumUnavailable, distinctColours, launchBrowser, watchPage } from '../helpers/browser.ts'
import { buildTestSite } from '../helpers/site-build.ts'
import { checkoutSession, deliver, invoice, makeEvent, subscription } from '../helpers/stripe-events.ts'

const skip = chromiumUnavailable()
if (skip !== undefined) {
  t.test('browser tests', { skip }, () => {})
} else {
  await run()
}

interface Watched { page: Page, problems: string[] }

async function run (): Promise<void> {
  const site = buildTestSite(t)
  // The webhook answers at once: the page, not the webhook, is what follows the server here.
  const { app, executor } = await buildTestApp(t, { env: { ...site.env, WEBHOOK_WAIT_MS: '0' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const origin = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
  const browser: Browser = await launchBrowser(t)

  /** A page that records console errors, uncaught exceptions and requests to other origins. */
  async function open (context?: BrowserContext): Promise<Watched> {
    const ctx = context ?? await browser.newContext()
    if (context === undefined) t.teardown(() => ctx.close())
    const page = await ctx.newPage()
    return { page, problems: watchPage(page, origin) }
  }

  const blank = await (await browser.newContext()).newPage()
  t.teardown(() => blank.context().close())

  t.test('every page renders, with no console errors and nothing from other origins', async (t) => {
    const { page, problems } = await open()
    for (const path of [...SITE_PAGES.map((p) => p.path), '/no-such-page']) {
      const response = await page.goto(`${origin}${path}`, { waitUntil: 'networkidle' })
      t.equal(response?.status(), path === '/no-such-page' ? 404 : 200, path)
      t.ok(await page.locator('h1').isVisible(), `${path} shows its heading`)
      const stylesheetApplied = await page.locator('.site-header').evaluate((el) => (globalThis as any).getComputedStyle(el).backgroundColor)
      t.equal(stylesheetApplied, 'rgb(22, 24, 45)', `${path} has the stylesheet`)
      const shot = await page.screenshot({ fullPage: true })
      t.ok(await distinctColours(blank, shot) > 20, `${path} screenshot is not blank`)
      // Chrome reports the 404 page's own status as a failed load; that one is expected.
      const own = path === '/no-such-page' ? /status of 404/ : /^$/
      t.same(problems.splice(0).filter((p) => !own.test(p)), [], `${path} has no console errors`)
    }
  })

  t.test('keyboard users can skip to the content', async (t) => {
    const { page } = await open()
    await page.goto(`${origin}/pricing`)
    await page.keyboard.press('Tab')
    t.equal(await page.evaluate(() => (globalThis as any).document.activeElement?.textContent), 'Skip to content')
    await page.keyboard.press('Enter')
    // Following a fragment link updates the URL asynchronously; wait for it rather than race it.
    await page.waitForURL((url) => url.hash === '#main')
    t.equal(new URL(page.url()).hash, '#main')
  })

  t.test('the pricing buy button leads to the form with that plan chosen', async (t) => {
    const { page, problems } = await open()
    await page.goto(`${origin}/pricing`)
    await page.getByRole('link', { name: 'Choose Solo' }).click()
    await page.waitForURL(/\/register\?plan=solo$/)
    t.ok(await page.locator('#plan-solo').isChecked(), 'solo is chosen')
    t.notOk(await page.locator('#plan-standard').isChecked())
    t.same(problems, [])
  })

  t.test('sign up, then the welcome page follows the order until the CTF is live', async (t) => {
    const { page, problems } = await open()
    await page.goto(`${origin}/register?plan=pro`)
    await page.getByLabel('Event name').fill('Spring CTF')
    await page.getByLabel('Email').fill('organiser@example.org')
    await page.getByRole('button', { name: 'Continue to payment' }).click()
    await page.waitForURL(/\/welcome\?tenant=[0-9a-f]{32}&token=[0-9a-f]{40}$/)
    const tenantId = new URL(page.url()).searchParams.get('tenant')!
    await page.locator('#progress[data-key="awaiting_payment"]').waitFor()
    t.equal(await page.locator('#progress-headline').textContent(), PROGRESS_TEXT.awaiting_payment.headline)

    // Paid, but the server is still booting: the page moves on by itself.
    executor.unhealthyChecks = Number.MAX_SAFE_INTEGER
    const event = makeEvent('checkout.session.completed', checkoutSession({ tenantId, plan: 'pro' }))
    t.equal((await deliver(app, event)).statusCode, 200)
    await page.locator('#progress[data-key="setting_up"]').waitFor({ timeout: 30_000 })
    t.match(await page.locator('#progress-detail').textContent(), /\.ctfhive\.example/)
    t.equal(await page.locator('#progress-steps li.current').textContent(), 'Server set up (in progress)')

    executor.unhealthyChecks = 0
    await page.locator('#progress[data-key="live"]').waitFor({ timeout: 30_000 })
    const status = (await app.inject(`/tenants/${tenantId}/status`)).json()
    t.equal(status.state, 'active')
    t.equal(await page.locator('#progress-headline').textContent(), PROGRESS_TEXT.live.headline)
    t.equal(await page.getByRole('link', { name: 'Open your CTF' }).getAttribute('href'), status.url)
    t.equal(await page.locator('#progress-steps li.done').count(), 4)
    // The script keeps the order number the contact page asks for.
    t.ok(await page.locator('#order-ref').isVisible(), 'the order number is shown')
    t.equal(await page.locator('#order-id').textContent(), tenantId)
    t.same(problems.splice(0), [], 'no console errors while following the order')

    // The administrator details are only fetched on request; the fake executor has none.
    await page.getByRole('button', { name: 'Show administrator sign-in details' }).click()
    await page.locator('#admin-message:not([hidden])').waitFor()
    t.match(await page.locator('#admin-message').textContent(), /no real server/)
  })

  t.test('the script fills in the billing address and the grace period, as the server does', async (t) => {
    const { page, problems } = await open()
    const created = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Late CTF' } })).json()
    const base = Math.floor(Date.now() / 1000)
    const sub = `sub_e2e_${created.tenant_id.slice(0, 8)}`
    await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: created.tenant_id, plan: 'solo', subscription: sub }), { created: base }))
    t.equal((await deliver(app, makeEvent('invoice.payment_failed', invoice({ subscription: sub }), { created: base + 5 }))).json().tenant_state, 'past_due')

    await page.goto(`${origin}${created.welcome_url}`)
    await page.locator('#progress[data-key="past_due"]').waitFor()
    // Blank what the server wrote: only the script's next poll (every 2 s while past due) can put it back.
    await page.evaluate(() => {
      const { document } = globalThis as any
      document.getElementById('progress-detail').textContent = ''
      document.getElementById('order-id').textContent = ''
      document.getElementById('order-ref').hidden = true
    })
    await page.waitForFunction(() => (globalThis as any).document.getElementById('progress-detail').textContent !== '')
    t.equal(await page.locator('#progress-detail').textContent(), fillText(PROGRESS_TEXT.past_due.detail, { billing: 'billing@ctfhive.example' }))
    t.ok(await page.locator('#order-ref').isVisible(), 'the script shows the order number too')
    t.equal(await page.locator('#order-id').textContent(), created.tenant_id)

    // Canceled while the page is open: the script says when the server goes (72 hours in the test build).
    t.equal((await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: sub, status: 'canceled' }), { created: base + 10 }))).json().tenant_state, 'canceled')
    await page.locator('#progress[data-key="canceled"]').waitFor()
    t.match(await page.locator('#progress-detail').textContent(), 'it stays online until its server and data are deleted, 3 days after the cancellation.')
    t.equal(await page.locator('#order-id').textContent(), created.tenant_id, 'the order number stays')
    t.same(problems, [])
  })

  t.test('API errors are shown next to the field they concern', async (t) => {
    const { page } = await open()
    await page.goto(`${origin}/register`)
    await page.getByLabel('Event name').fill('Typo CTF')
    await page.getByLabel('Email').fill('organiser@localhost')
    await page.getByRole('button', { name: 'Continue to payment' }).click()
    await page.locator('#email-error:not([hidden])').waitFor()
    t.equal(await page.locator('#email-error').textContent(), REGISTER_ERRORS.invalid_email!.message)
    t.equal(await page.locator('#email').getAttribute('aria-invalid'), 'true')
    t.equal(await page.evaluate(() => (globalThis as any).document.activeElement?.id), 'email', 'focus moves to the field')
    t.ok(await page.getByRole('button', { name: 'Continue to payment' }).isEnabled(), 'the button is usable again')

    // A plan the API refuses: the message goes to the plan group.
    await page.getByLabel('Email').fill('organiser@example.org')
    await page.locator('#plan-solo').evaluate((el) => { (el as any).value = 'enterprise' })
    await page.locator('#plan-solo').check()
    await page.getByRole('button', { name: 'Continue to payment' }).click()
    await page.locator('#plan-error:not([hidden])').waitFor()
    t.equal(await page.locator('#plan-error').textContent(), REGISTER_ERRORS.plan_requires_contact!.message)
    t.ok(await page.locator('#email-error').isHidden(), 'the old message is cleared')
  })

  t.test('without JavaScript the form still signs up', async (t) => {
    const context = await browser.newContext({ javaScriptEnabled: false })
    t.teardown(() => context.close())
    const { page, problems } = await open(context)
    await page.goto(`${origin}/register`)
    await page.getByLabel('Event name').fill('No Script CTF')
    await page.getByLabel('Email').fill('organiser@example')
    await page.getByLabel(/^Solo/).check()
    await page.getByRole('button', { name: 'Continue to payment' }).click()
    // The browser's own check passes "organiser@example"; the server's does not.
    await page.waitForURL(/\/register\?plan=solo&error=invalid_request&field=email$/)
    t.equal(await page.locator('#email-error').textContent(), REGISTER_ERRORS.invalid_email!.message)
    t.equal(await page.getByLabel('Event name').inputValue(), 'No Script CTF', 'what was typed is still there')
    t.equal(await page.getByLabel('Email').inputValue(), 'organiser@example')
    t.ok(await page.getByLabel(/^Solo/).isChecked())
    await page.getByLabel('Email').fill('organiser@example.org')
    await page.getByRole('button', { name: 'Continue to payment' }).click()
    await page.waitForURL(/\/welcome\?tenant=/)
    t.equal(await page.locator('#progress').getAttribute('data-key'), 'awaiting_payment', 'the server filled in the state')
    t.same(problems, [])
  })

  t.test('sign-in sends the buyer to their own running CTF', async (t) => {
    const created = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Login CTF' } })).json()
    await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: created.tenant_id, plan: 'solo' })))
    const slug = (await app.inject(`/tenants/${created.tenant_id}/status`)).json().fqdn.split('.')[0]
    const { page } = await open()
    await page.route('https://*.ctfhive.example/**', (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<title>tenant</title>' }))
    await page.goto(`${origin}/login`)
    await page.getByLabel("Your CTF's address").fill(slug)
    await page.getByRole('button', { name: 'Go to sign-in' }).click()
    await page.waitForURL(`https://${slug}.ctfhive.example/login`)
    t.equal(page.url(), `https://${slug}.ctfhive.example/login`)

    for (const [typed, code] of [['evil.com', 'invalid_address'], ['spring-ctf-1a2b3c', 'unknown_address']] as const) {
      await page.goto(`${origin}/login`)
      await page.getByLabel("Your CTF's address").fill(typed)
      await page.getByRole('button', { name: 'Go to sign-in' }).click()
      await page.waitForURL(new RegExp(`/login\\?error=${code}&`))
      t.equal(await page.locator('#address-error').textContent(), LOGIN_ERRORS[code], typed)
      t.equal(await page.getByLabel("Your CTF's address").inputValue(), typed, 'what was typed is still there')
    }
  })
}
