// The pricing page's plan cards in a real browser at the desktop widths where four cards share
// a row and each is narrowest: no line of a card (the address under BASE_DOMAIN above all)
// runs past the card's edge.
import t from 'tap'
import { buildTestApp } from '../helpers/build-app.ts'
import { chromiumUnavailable, launchBrowser } from '../helpers/browser.ts'
import { buildTestSite } from '../helpers/site-build.ts'

// A realistic operator domain longer than the tests' usual one: "your-event.<it>" is one word.
const LONG_DOMAIN = 'events.ctfhive-platform.com'
const WIDTHS = [1100, 1180, 1280, 1024, 360]

const skip = chromiumUnavailable()
if (skip !== undefined) {
  t.test('browser tests', { skip }, () => {})
} else {
  const site = buildTestSite(t, { baseDomain: LONG_DOMAIN })
  const { app } = await buildTestApp(t, { env: site.env })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const origin = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
  const browser = await launchBrowser(t)

  for (const width of WIDTHS) {
    t.test(`at ${width} px every card line stays inside its card`, async (t) => {
      const context = await browser.newContext({ viewport: { width, height: 900 } })
      t.teardown(() => context.close())
      const page = await context.newPage()
      await page.goto(`${origin}/pricing`, { waitUntil: 'networkidle' })
      const cards = await page.evaluate(() => {
        const doc = (globalThis as any).document
        return [...doc.querySelectorAll('li.plan')].map((card: any) => {
          const box = card.getBoundingClientRect()
          const style = (globalThis as any).getComputedStyle(card)
          const inner = box.right - parseFloat(style.paddingRight) - parseFloat(style.borderRightWidth)
          let worst = { over: -Infinity, text: '' }
          for (const li of card.querySelectorAll('.ticks li')) {
            const range = doc.createRange()
            range.selectNodeContents(li)
            for (const rect of range.getClientRects()) {
              if (rect.right - inner > worst.over) worst = { over: rect.right - inner, text: String(li.textContent) }
            }
          }
          return { id: String(card.id), ...worst }
        })
      })
      t.equal(cards.length, 4, 'four plan cards')
      for (const card of cards) t.ok(card.over <= 0.5, `${card.id}: "${card.text}" is ${card.over.toFixed(1)} px past the card's padding`)
      t.match(await page.locator('#plan-card-solo').innerText(), `your-event.${LONG_DOMAIN}`, 'the address is shown whole')
    })
  }
}
