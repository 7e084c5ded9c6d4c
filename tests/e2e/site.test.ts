// The marketing site in a real browser (Debian's Chromium through playwright-core) against the
// app listening on 127.0.0.1: every page renders without console errors; sign-up with and
// without script; the welcome page follows the order to "live" after a signed webhook, and
// polls gently (on a fake clock) while an order waits.
import t from 'tap'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { ADMIN_LINK_REFUSED, LOGIN_ERRORS, REGISTER_ERRORS, PROGRESS_TEXT, RECONNECTING, fillText, shutdownText } from '../../api/web/buyer-text.ts'
import { SITE_PAGES } from '../../api/web/site-pages.ts'
import { buildTestApp } from '../helpers/build-app.ts'
import { axeViolations, CHROMIUM_ARGS, CHROMIUM_PATH, chromiumUnavailable, distinctColours, launchBrowser, watchPage } from '../helpers/browser.ts'
import { buildTestSite } from '../helpers/site-build.ts'
import { checkoutSession, deliver, invoice, makeEvent, subscription } from '../helpers/stripe-events.ts'
import { until } from '../helpers/until.ts'

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
  const { app, executor, store } = await buildTestApp(t, { env: { ...site.env, WEBHOOK_WAIT_MS: '0' } })
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
      t.same(await axeViolations(page), [], `axe: nothing on ${path}`)
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
    // Blank what the server wrote: only the script's next poll (every 2 s at first) can put it back.
    await page.evaluate(() => {
      const { document } = globalThis as any
      document.getElementById('progress-detail').textContent = ''
      document.getElementById('order-id').textContent = ''
      document.getElementById('order-ref').hidden = true
    })
    await page.waitForFunction(() => (globalThis as any).document.getElementById('progress-detail').textContent !== '')
    t.equal(await page.locator('#progress-detail').textContent(), fillText(PROGRESS_TEXT.past_due.detail, { billing: 'billing@ctfhive.example', grace: '3 days after the cancellation' }))
    t.ok(await page.locator('#order-ref').isVisible(), 'the script shows the order number too')
    t.equal(await page.locator('#order-id').textContent(), created.tenant_id)
    const url = (await app.inject(`/tenants/${created.tenant_id}/status`)).json().url
    // "Keeps running for now": the script links to it, as the server did.
    await page.locator('#live-link').evaluate((el) => { (el as any).hidden = true })
    await page.locator('#live-link:not([hidden])').waitFor()
    t.equal(await page.getByRole('link', { name: 'Open your CTF' }).getAttribute('href'), url)
    t.equal(await page.locator('#progress-steps li.done').count(), 4)

    // Canceled while the page is open: still online, and the script says until when (72 hours in the test build).
    t.equal((await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: sub, status: 'canceled' }), { created: base + 10 }))).json().tenant_state, 'canceled')
    await page.locator('#progress[data-key="canceled_running"]').waitFor()
    const canceledAt = (await app.inject(`/tenants/${created.tenant_id}/status`)).json().canceled_at
    t.equal(await page.locator('#progress-detail').textContent(),
      fillText(PROGRESS_TEXT.canceled_running.detail, { reason: 'The subscription was canceled.', until: shutdownText(canceledAt, 72) }))
    t.equal(await page.getByRole('link', { name: 'Open your CTF' }).getAttribute('href'), url, 'the server /login/go still sends the buyer to')
    t.equal(await page.locator('#progress-steps li.done').count(), 4, 'its server is not shown as stopped')
    t.equal(await page.locator('#order-id').textContent(), created.tenant_id, 'the order number stays')

    // Torn down at the end of the grace period: the page, still polling, drops the link.
    await store.updateTenant(created.tenant_id, { infra: 'deprovisioned' })
    await page.locator('#progress[data-key="canceled"]').waitFor({ timeout: 30_000 })
    t.ok(await page.locator('#live-link').isHidden(), 'no link to a torn-down server')
    t.match(await page.locator('#progress-detail').textContent(), 'shut down and its data deleted 3 days after the cancellation.')
    t.same(problems, [])
  })

  t.test('while an order waits, the welcome page polls less and less, never while hidden, and says it may be left', async (t) => {
    const created = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Bank Transfer CTF' } })).json()
    const { page, problems } = await open()
    // The page's own record of its polls, on its (fake) clock, and of the answers it acted on.
    await page.addInitScript(() => {
      const w = globalThis as any
      w.__polls = []
      w.__handled = 0
      const fetch = w.fetch.bind(w)
      w.fetch = (url: unknown, init: unknown) => {
        if (String(url).includes('/status')) w.__polls.push(w.Date.now())
        return fetch(url, init)
      }
      // Every answer either renders the order (data-key is set) or says it is reconnecting.
      w.document.addEventListener('DOMContentLoaded', () => {
        new w.MutationObserver(() => { w.__handled++ }).observe(w.document.getElementById('progress'),
          { subtree: true, childList: true, attributes: true, attributeFilter: ['data-key'] })
      })
    })
    const start = Date.now()
    await page.clock.install({ time: start })
    await page.clock.pauseAt(start + 1000)
    const settled = () => page.waitForFunction(() => { const w = globalThis as any; return w.__handled >= w.__polls.length })
    const polls = async (): Promise<number[]> => (await page.evaluate(() => (globalThis as any).__polls as number[])).map((at) => at - start)
    /** Moves the page's clock on in steps, letting the page act on each answer before the next. */
    const advance = async (ms: number, step = 1000): Promise<void> => {
      for (let left = ms; left > 0; left -= step) {
        await page.clock.runFor(Math.min(step, left))
        await settled()
      }
    }
    const clockAt = async (): Promise<number> => (await page.evaluate(() => (globalThis as any).Date.now() as number)) - start
    const setHidden = (hidden: boolean) => page.evaluate((h) => {
      const d = (globalThis as any).document
      Object.defineProperty(d, 'hidden', { configurable: true, get: () => h })
      Object.defineProperty(d, 'visibilityState', { configurable: true, get: () => (h ? 'hidden' : 'visible') })
      d.dispatchEvent(new (globalThis as any).Event('visibilitychange'))
    }, hidden)
    const key = () => page.locator('#progress').getAttribute('data-key')

    await page.goto(`${origin}${created.welcome_url}`)
    await settled()
    t.equal(await key(), 'awaiting_payment')
    t.match(await page.locator('#progress-detail').textContent(), 'a bank payment can take a few days')

    // The first minute: every 2 s, as a card payment confirms in seconds.
    await advance(60_000)
    const first = await polls()
    t.same(first.slice(1).map((at, i) => at - first[i]!), Array(first.length - 1).fill(2000), 'every 2 s at first')

    // Still unpaid after a few minutes: a bank payment, then. The page says it may be closed.
    await advance(4 * 60_000)
    t.equal(await key(), 'payment_delayed')
    t.equal(await page.locator('#progress-headline').textContent(), PROGRESS_TEXT.payment_delayed.headline)
    t.match(await page.locator('#progress-detail').textContent(), 'You can close this page: open the same link again')
    t.notMatch(await page.locator('#progress-detail').textContent(), /keep this page open/i)

    // Then about once a minute, not 30 times.
    const before = (await polls()).length
    await advance(10 * 60_000)
    const later = (await polls()).slice(before - 1)
    t.ok(later.length - 1 >= 5 && later.length - 1 <= 11, `${later.length - 1} polls in 10 minutes`)
    t.ok(later.slice(1).every((at, i) => at - later[i]! >= 30_000), 'at least 30 s apart once backed off')

    // A hidden tab does not poll at all; shown again, it looks at once.
    await setHidden(true)
    const hiddenAt = (await polls()).length
    await advance(30 * 60_000, 10_000)
    t.equal((await polls()).length, hiddenAt, 'no polls while hidden')
    await setHidden(false)
    const shownAt = await clockAt()
    await settled()
    t.same((await polls()).slice(hiddenAt), [shownAt], 'one poll the moment the tab is shown')

    // The server (or a proxy) asks for a pause: the page waits as long as it says.
    await page.route('**/tenants/*/status', (route) => route.fulfill({ status: 503, headers: { 'retry-after': '120' }, contentType: 'application/json', body: '{"error":"unavailable"}' }))
    const okCount = (await polls()).length
    while ((await polls()).length === okCount) await advance(1000)
    t.equal(await page.locator('#progress-detail').textContent(), RECONNECTING)
    const refusedAt = (await polls()).at(-1)!
    await page.unroute('**/tenants/*/status')
    await advance(refusedAt + 119_000 - await clockAt())
    t.equal((await polls()).length, okCount + 1, 'nothing before Retry-After is over')
    await advance(2000)
    t.equal((await polls()).length, okCount + 2, 'and a poll once it is')
    t.equal(await key(), 'payment_delayed')
    t.match(await page.locator('#progress-detail').textContent(), 'You can close this page', 'the message is back')
    t.same(problems.filter((p) => !/status of 503/.test(p)), [])
  })

  t.test('a status poll failing again and again does not rewrite the live region', async (t) => {
    const created = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Offline CTF' } })).json()
    const { page, problems, polls } = await openOnFakeClock()
    // Every change under the live region is one a screen reader may read out again.
    await page.addInitScript(() => {
      const w = globalThis as any
      w.__liveChanges = 0
      w.document.addEventListener('DOMContentLoaded', () => {
        new w.MutationObserver((records: unknown[]) => { w.__liveChanges += records.length })
          .observe(w.document.querySelector('#progress [aria-live]'), { subtree: true, childList: true, characterData: true })
      })
    })
    await page.route('**/tenants/*/status', (route) => route.fulfill({ status: 503, contentType: 'application/json', body: '{"error":"unavailable"}' }))
    await page.goto(`${origin}${created.welcome_url}`)
    // The next poll is scheduled only once a failure is handled: five polls, four failures seen.
    for (let i = 0; i < 300 && await polls() < 5; i++) await page.clock.runFor(1000)
    t.ok(await polls() >= 5, `${await polls()} failed polls`)
    t.equal(await page.locator('#progress-detail').textContent(), RECONNECTING)
    t.equal(await page.evaluate(() => (globalThis as any).__liveChanges), 1, 'the reconnecting sentence is written once')
    t.same(problems.filter((p) => !/status of 503/.test(p)), [])
  })

  t.test('an event name of only spaces is refused in the form, not sent as no name', async (t) => {
    const { page } = await open()
    let posted = 0
    page.on('request', (r) => { if (r.method() === 'POST') posted++ })
    await page.goto(`${origin}/register`)
    await page.getByLabel('Event name').fill('    ')
    await page.getByLabel('Email').fill('organiser@example.org')
    await page.getByRole('button', { name: 'Continue to payment' }).click()
    t.equal(await page.getByLabel('Event name').evaluate((el) => (el as any).validity.patternMismatch), true, 'the browser says why')
    t.equal(posted, 0, 'nothing was posted')
    t.match(page.url(), /\/register$/)
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
    // The fieldset's description is not read with the radio that takes the focus: the radios carry it.
    t.equal(await page.evaluate(() => (globalThis as any).document.activeElement?.id), 'plan-solo', 'focus moves to the plan chosen')
    const planDescriptions = () => page.locator('input[name="plan"]').evaluateAll((els) => els.map((el) => el.getAttribute('aria-describedby')))
    t.same(await planDescriptions(), ['plan-error', 'plan-error', 'plan-error'], 'each radio is described by the message')

    // Refused for another field: the plan's message goes, from the radios too.
    await page.locator('#plan-solo').evaluate((el) => { (el as any).value = 'solo' })
    await page.getByLabel('Email').fill('organiser@localhost')
    await page.getByRole('button', { name: 'Continue to payment' }).click()
    await page.locator('#email-error:not([hidden])').waitFor()
    t.ok(await page.locator('#plan-error').isHidden())
    t.same(await planDescriptions(), [null, null, null], 'and no radio points at it')
  })

  t.test('while the checkout starts, the keyboard focus stays on the button and a status region says so', async (t) => {
    const { page, problems } = await open()
    await page.goto(`${origin}/register`)
    await page.getByLabel('Event name').fill('Keyboard CTF')
    await page.getByLabel('Email').fill('organiser@example.org')
    // The checkout is held until the checks below are done: the page is then as a slow one leaves it.
    let posted = 0
    const waiting: Array<() => void> = []
    const held = new Promise<void>((resolve) => {
      void page.route('**/billing/checkout', async (route) => {
        posted++
        resolve()
        await new Promise<void>((resolve) => { waiting.push(resolve) })
        await route.continue()
      })
    })
    const submit = page.locator('#register-submit')
    await submit.focus()
    await page.keyboard.press('Space')
    // The script sets its busy state before it sends: once the request is seen, it is there.
    await held
    const focused = () => page.evaluate(() => (globalThis as any).document.activeElement?.id)
    t.equal(await focused(), 'register-submit', 'the focus stays on the button, not on the page')
    t.equal(await submit.getAttribute('aria-disabled'), 'true', 'the button says it is busy')
    t.equal(await submit.evaluate((el) => (el as any).disabled), false, 'but is not disabled, which would drop the focus')
    t.equal(await submit.textContent(), 'Continue to payment', 'the focused button keeps its name')
    const status = page.getByRole('status')
    t.equal(await status.count(), 1, 'one status region')
    t.equal(await status.textContent(), 'Starting your checkout…', 'which holds the progress, to be announced')
    // Pressed again (or Enter in a field) while the first is on its way: not a second checkout.
    await page.keyboard.press('Space')
    await page.getByLabel('Email').press('Enter')
    for (const release of waiting) release()
    await page.waitForURL(/\/welcome\?tenant=/)
    t.equal(posted, 1, 'one checkout')
    t.same(problems, [])
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

  t.test('back from Checkout, the sign-up form restored from the back-forward cache can be sent again', async (t) => {
    // Playwright turns the back-forward cache off by default; a buyer's browser has it on.
    const cached = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true, timeout: 60_000, ignoreDefaultArgs: ['--disable-back-forward-cache'] })
    t.teardown(() => cached.close())
    const { page, problems } = await open(await cached.newContext())
    await page.goto(`${origin}/register`)
    // Listeners run in order: once this one has seen the page shown again, the site's has too.
    await page.evaluate(() => {
      const w = globalThis as any
      w.addEventListener('pageshow', (event: any) => { if (event.persisted) w.__restored = true })
    })
    await page.getByLabel('Event name').fill('Second Thoughts CTF')
    await page.getByLabel('Email').fill('organiser@example.org')
    await page.getByRole('button', { name: 'Continue to payment' }).click()
    // Without Stripe the form leads to the welcome page; with it, to Checkout: the same way back.
    await page.waitForURL(/\/welcome\?tenant=/)
    // A page restored from the cache fires no load event.
    await page.goBack({ waitUntil: 'commit' })
    await page.waitForFunction(() => (globalThis as any).__restored === true)
    t.equal(page.url(), `${origin}/register`, 'the page came back from the cache, as it was left')
    const submit = page.locator('#register-submit')
    t.ok(await submit.isEnabled(), 'the button can be pressed again')
    t.equal(await submit.textContent(), 'Continue to payment')
    t.same(problems, [])
  })

  t.test('at 320 px a long address wraps: the welcome page never scrolls sideways', async (t) => {
    // Live before the page loads: the webhook answers before the (fake) server is up.
    const created = await liveOrder('Internationalcybersecuritychallengechampionship')
    const context = await browser.newContext({ viewport: { width: 320, height: 640 } })
    t.teardown(() => context.close())
    const { page } = await open(context)
    await page.goto(`${origin}${created.welcome_url}`)
    t.equal(await page.locator('#progress').getAttribute('data-key'), 'live')
    t.match(await page.locator('#progress-detail').textContent(), /https:\/\/internationalcybersecuritychallen[a-z-]*-[0-9a-f]+\.ctfhive\.example\//)
    const { scrollWidth, clientWidth } = await page.evaluate(() => {
      const root = (globalThis as any).document.documentElement
      return { scrollWidth: root.scrollWidth as number, clientWidth: root.clientWidth as number }
    })
    t.ok(scrollWidth <= clientWidth, `page ${scrollWidth} px wide in a ${clientWidth} px window`)
  })

  t.test('the administrator details are offered only for a link that can be the signed one, and a refusal is said plainly', async (t) => {
    // Live before the page loads: the webhook answers before the (fake) server is up.
    const created = await liveOrder('Token CTF')
    const { page, problems } = await open()
    // The script offers the section right after it renders its first answer: count renders.
    await page.addInitScript(() => {
      const w = globalThis as any
      w.__rendered = 0
      w.document.addEventListener('DOMContentLoaded', () => {
        new w.MutationObserver(() => { w.__rendered++ }).observe(w.document.getElementById('progress'), { attributes: true, attributeFilter: ['data-key'] })
      })
    })
    const rendered = () => page.waitForFunction(() => (globalThis as any).__rendered >= 1)
    for (const token of ['nonsense', '0'.repeat(39), `${'a'.repeat(40)}x`]) {
      await page.goto(`${origin}/welcome?tenant=${created.tenant_id}&token=${token}`)
      await rendered()
      t.equal(await page.locator('#progress').getAttribute('data-key'), 'live')
      t.ok(await page.locator('#admin-details').isHidden(), `token ${token}: no section, as the server renders none`)
    }
    // A token of the right form that is not this order's: the API refuses it, in the buyer's words.
    await page.goto(`${origin}/welcome?tenant=${created.tenant_id}&token=${'0'.repeat(40)}`)
    await rendered()
    await page.getByRole('button', { name: 'Show administrator sign-in details' }).click()
    await page.locator('#admin-message:not([hidden])').waitFor()
    t.equal(await page.locator('#admin-message').textContent(), ADMIN_LINK_REFUSED)
    t.ok(await page.getByRole('button', { name: 'Show administrator sign-in details' }).isEnabled(), 'and it may be asked again')
    t.same(problems.filter((p) => !/status of 403/.test(p)), [])
  })

  t.test('the script stops thanking for an order that ends unpaid, and says no CTF was set up', async (t) => {
    const created = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Expiring CTF' } })).json()
    const { page, problems } = await open()
    await page.goto(`${origin}${created.welcome_url}`)
    t.equal(await page.locator('h1').textContent(), PROGRESS_TEXT.awaiting_payment.heading)
    t.equal(await page.title(), `${PROGRESS_TEXT.awaiting_payment.heading} · CTFHive`)
    const session = checkoutSession({ tenantId: created.tenant_id, plan: 'solo', status: 'expired', paymentStatus: 'unpaid' })
    t.equal((await deliver(app, makeEvent('checkout.session.expired', session))).json().tenant_state, 'canceled')
    await page.locator('#progress[data-key="canceled_unpaid"]').waitFor({ timeout: 30_000 })
    t.equal(await page.locator('h1').textContent(), 'Your order')
    t.equal(await page.title(), 'Your order · CTFHive')
    t.equal(await page.locator('#progress-detail').textContent(), fillText(PROGRESS_TEXT.canceled_unpaid.detail, { reason: 'The checkout expired before payment.' }))
    t.equal(await page.locator('#progress-steps li.stopped').textContent(), 'No payment (stopped)', 'the step says where it stopped, not what it would have said')
    t.same(problems, [])
  })

  /** A paid order, once its (fake) server is up: the webhook answers before provisioning ends. */
  async function liveOrder (name: string): Promise<{ tenant_id: string, welcome_url: string }> {
    const created = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name } })).json()
    await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: created.tenant_id, plan: 'solo' })))
    await until(async () => (await app.inject(`/tenants/${created.tenant_id}/status`)).json().state === 'active', `${name} live`, 30_000)
    return created
  }

  /** Counts the page's status polls and the answers it acted on (every answer sets data-key, or the reconnecting text). */
  async function countPolls (page: Page): Promise<{ polls: () => Promise<number>, settled: () => Promise<unknown> }> {
    await page.addInitScript(() => {
      const w = globalThis as any
      w.__polls = 0
      w.__handled = 0
      const fetch = w.fetch.bind(w)
      w.fetch = (url: unknown, init: unknown) => {
        if (String(url).includes('/status')) w.__polls++
        return fetch(url, init)
      }
      w.document.addEventListener('DOMContentLoaded', () => {
        new w.MutationObserver(() => { w.__handled++ }).observe(w.document.getElementById('progress'),
          { subtree: true, childList: true, attributes: true, attributeFilter: ['data-key'] })
      })
    })
    return {
      polls: () => page.evaluate(() => (globalThis as any).__polls as number),
      settled: () => page.waitForFunction(() => { const w = globalThis as any; return w.__polls >= 1 && w.__handled >= w.__polls })
    }
  }

  /** A page on a paused fake clock, so that a minute between polls takes no minute. */
  async function openOnFakeClock (): Promise<Watched & { polls: () => Promise<number>, settled: () => Promise<unknown> }> {
    const watched = await open()
    const counted = await countPolls(watched.page)
    const start = Date.now()
    await watched.page.clock.install({ time: start })
    await watched.page.clock.pauseAt(start + 1000)
    return { ...watched, ...counted }
  }

  t.test('a first payment that failed: the script says so as the server does, with nothing set up', async (t) => {
    const created = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Declined CTF' } })).json()
    const failed = await deliver(app, makeEvent('invoice.payment_failed', invoice({ subscription: `sub_declined_${created.tenant_id.slice(0, 8)}`, tenantId: created.tenant_id })))
    t.equal(failed.json().tenant_state, 'past_due')
    const { page, problems } = await open()
    await page.goto(`${origin}${created.welcome_url}`)
    t.equal(await page.locator('#progress').getAttribute('data-key'), 'payment_failed', 'the server rendered it')
    const stepTexts = () => page.locator('#progress-steps li').allTextContents()
    const server = { detail: await page.locator('#progress-detail').textContent(), steps: await stepTexts() }
    t.same(server.steps, ['Order received (done)', 'Payment confirmed (in progress)', 'Server set up (not started yet)', 'CTF live (not started yet)'])
    // Blank what the server wrote: only the script's next poll can put it back.
    await page.evaluate(() => {
      const { document } = globalThis as any
      document.getElementById('progress-detail').textContent = ''
      for (const li of document.querySelectorAll('#progress-steps li')) { li.className = 'step'; li.lastChild.textContent = '' }
    })
    await page.waitForFunction(() => (globalThis as any).document.getElementById('progress-detail').textContent !== '')
    t.equal(await page.locator('#progress-detail').textContent(), server.detail, 'the script says what the server said')
    t.equal(server.detail, fillText(PROGRESS_TEXT.payment_failed.detail, { billing: 'billing@ctfhive.example' }))
    t.notMatch(server.detail, /keeps running/)
    t.same(await stepTexts(), server.steps, 'and shows the same steps')
    t.ok(await page.locator('#live-link').isHidden(), 'no link: nothing runs')
    t.same(problems, [])
  })

  t.test('a failed order is still followed, once a minute: a retry that succeeds shows without a reload', async (t) => {
    const created = await liveOrder('Retried CTF')
    await store.updateTenant(created.tenant_id, { infra: 'failed' })
    const { page, problems, polls, settled } = await openOnFakeClock()
    await page.goto(`${origin}${created.welcome_url}`)
    await settled()
    t.equal(await page.locator('#progress').getAttribute('data-key'), 'failed')
    t.equal(await page.locator('#progress-steps li.stopped').count(), 1, 'shown where it stopped, not as in progress')
    t.equal(await page.locator('#progress-steps li.current').count(), 0)
    await page.clock.runFor(59_000)
    await settled()
    t.equal(await polls(), 1, 'no fast polling: nothing moves unless the operator acts')
    // What an operator's successful retry leaves (`ctfhive retry`): the server is up again.
    await store.updateTenant(created.tenant_id, { infra: 'ready' })
    await page.clock.runFor(2_000)
    await settled()
    t.equal(await polls(), 2, 'a poll a minute on')
    await page.locator('#progress[data-key="live"]').waitFor()
    t.ok(await page.getByRole('link', { name: 'Open your CTF' }).isVisible())
    t.same(problems, [])
  })

  t.test('a canceled order whose server is still being set up is followed until it comes up', async (t) => {
    const created = (await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: 'Late Cancel CTF' } })).json()
    // Paid, canceled while its server was being made: the server still comes up, for the grace period.
    const now = new Date().toISOString()
    await store.updateTenant(created.tenant_id, { billing: 'canceled', paidAt: now, canceledAt: now, infra: 'provisioning', error: 'The subscription was canceled.' })
    const { page, problems, polls, settled } = await openOnFakeClock()
    await page.goto(`${origin}${created.welcome_url}`)
    await settled()
    t.equal(await page.locator('#progress').getAttribute('data-key'), 'canceled')
    t.equal(await page.locator('#progress').getAttribute('data-final'), 'false', 'not the end of it')
    await store.updateTenant(created.tenant_id, { infra: 'ready', readyAt: new Date().toISOString() })
    await page.clock.runFor(61_000)
    await settled()
    t.equal(await polls(), 2)
    await page.locator('#progress[data-key="canceled_running"]').waitFor()
    t.ok(await page.getByRole('link', { name: 'Open your CTF' }).isVisible(), 'the server it runs until the teardown is linked to')

    // Torn down: now nothing more can come, and the page stops asking.
    await store.updateTenant(created.tenant_id, { infra: 'deprovisioned' })
    await page.clock.runFor(10 * 60_000)
    await settled()
    await page.locator('#progress[data-key="canceled"][data-final="true"]').waitFor()
    const last = await polls()
    await page.clock.runFor(10 * 60_000)
    await settled()
    t.equal(await polls(), last, 'no polls once nothing can follow')
    t.same(problems, [])
  })

  t.test('on a live order the administrator button is there at once, whatever the status requests do', async (t) => {
    const created = await liveOrder('Offline Status CTF')
    const { page } = await open()
    await page.route('**/tenants/*/status', (route) => route.abort())
    await page.goto(`${origin}${created.welcome_url}`)
    await page.locator('#admin-show').waitFor({ state: 'visible' })
    t.ok(await page.locator('#admin-show').isVisible(), 'offered by the page the server rendered, not after the first status answer')
  })

  t.test('showing the administrator details keeps the keyboard focus', async (t) => {
    const created = await liveOrder('Focus CTF')
    const { page, problems } = await open()
    await page.goto(`${origin}${created.welcome_url}`)
    const button = page.locator('#admin-show')
    await button.waitFor({ state: 'visible' })
    const focused = () => page.evaluate(() => { const el = (globalThis as any).document.activeElement; return el.id || el.tagName })
    // The fake executor publishes no credential: the API says why, and the button keeps the focus.
    await button.focus()
    await page.keyboard.press('Enter')
    await page.locator('#admin-message:not([hidden])').waitFor()
    t.equal(await focused(), 'admin-show', 'after a refusal, on the button, to ask again')
    t.equal(await button.getAttribute('aria-disabled'), null, 'usable again')

    await page.route('**/tenants/*/credentials?*', (route) => route.fulfill({
      status: 200,
      contentType: 'application/json',
      body: JSON.stringify({ tenant_id: created.tenant_id, login_url: 'https://focus.ctfhive.example/login', admin_name: 'admin', admin_email: 'organiser@example.org', password: 'Focus-Pass-7' })
    }))
    // Pressed on the button itself: a status poll landing meanwhile must not swallow the key.
    await button.press('Enter')
    await page.locator('#admin-credentials:not([hidden])').waitFor()
    t.ok(await button.isHidden(), 'the button has done its work')
    t.equal(await focused(), 'admin-credentials', 'the focus moves to the details')
    t.equal(await page.locator('#admin-password').textContent(), 'Focus-Pass-7')
    t.same(problems.filter((p) => !/status of 4\d\d/.test(p)), [])
  })

  t.test('without JavaScript the administrator details are offered by the link alone', async (t) => {
    const created = await liveOrder('Plain CTF')
    const context = await browser.newContext({ javaScriptEnabled: false })
    t.teardown(() => context.close())
    const { page } = await open(context)
    await page.goto(`${origin}${created.welcome_url}`)
    t.ok(await page.locator('#admin-details').isVisible(), 'the section is offered')
    t.ok(await page.locator('#admin-show').isHidden(), 'no button that would do nothing')
    t.ok(await page.getByRole('link', { name: 'Show the details without JavaScript' }).isVisible())
  })

  t.test('sign-in sends the buyer to their own running CTF', async (t) => {
    // Live before the page loads: the webhook answers before the (fake) server is up.
    const created = await liveOrder('Login CTF')
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
